"""The backbones reproduce the official models of both families on every
reference case.

Each reference case (the compact set in ``tests/data/reference`` and, where
it is present, the full set in ``shared/reference``; see ``conftest.py``)
holds an official model's weights, inputs and outputs: Focal
(``focal_v1``) or Focal-fast (``focal_v2``). The model is built through
``mmpretrain_model_cfg(config, version)`` and loaded through
``official_to_mmpretrain`` (strictly, apart from the official per-size
buffers), then compared in float64 (logits and stage features within 1e-6
relative, gradients within 1e-4) and float32 (1e-4).
"""
import json

import pytest
import torch
from mmpretrain.registry import MODELS

import focal_mm  # noqa: F401
from focal_mm.checkpoints.official import (OFFICIAL_BUFFERS, mmpretrain_key,
                                           mmpretrain_model_cfg,
                                           official_to_mmpretrain,
                                           official_version)
from conftest import (COMPACT_CASES, FULL_CASES, FULL_ROOT, case_ids,
                      full_set_present, load_case, rel_err)

FAMILIES = {'focal_v1': 1, 'focal_v2': 2}
CASES = [
    pytest.param(family, case_id, id=f'{family}/{case_id}')
    for family in FAMILIES for case_id in case_ids(family)
]
# Cases that hold gradients of the official model.
GRADIENT_CASES = ('pool_conv_224', 'tiny_shape_224', 'v2_pool_conv_224',
                  'v2_tiny_shape_224')
GRAD_CASES = [c for c in CASES if c.values[1].split('/')[1] in GRADIENT_CASES]


def build_official_equivalent(case, family):
    model = MODELS.build(
        mmpretrain_model_cfg(case['config'], version=FAMILIES[family]))
    converted = official_to_mmpretrain(case['state_dict'])
    missing, unexpected = model.load_state_dict(converted, strict=True)
    assert not missing and not unexpected
    return model


def run_with_stages(model, images):
    """Logits, and each stage's output before the following downsample."""
    stages = []
    hooks = [
        stage.register_forward_hook(lambda m, i, o: stages.append(o[0]))
        for stage in model.backbone.stages
    ]
    try:
        logits = model(images, mode='tensor')
    finally:
        for h in hooks:
            h.remove()
    return logits, [s.permute(0, 3, 1, 2) for s in stages]


def test_reference_cases_present():
    """Every expected case is there, and no unexpected one (a case added to
    the data must be added to the tests)."""
    for family in FAMILIES:
        for name in COMPACT_CASES[family]:
            # Fails naming what is missing.
            load_case(f'compact/{name}', family)
        if full_set_present():
            found = sorted(p.stem for p in (FULL_ROOT / family).glob('*.pt'))
            assert found == FULL_CASES[family], (family, found)


@pytest.mark.parametrize('family, case_id', CASES)
def test_conversion_drops_only_buffers(family, case_id):
    case = load_case(case_id, family)
    assert official_version(case['state_dict']) == FAMILIES[family]
    converted = official_to_mmpretrain(case['state_dict'])
    params = {k for k in case['state_dict'] if not OFFICIAL_BUFFERS.search(k)}
    assert len(converted) == len(params)
    # The compact set has no buffers left; the full one names them all.
    assert all(
        k.rsplit('.', 1)[-1].startswith((
            'relative_position_index', 'valid_ind_', 'attn_mask',
            'window_coords', 'topk_cloest_'))
        for k in set(case['state_dict']) - params)


@pytest.mark.parametrize('family, case_id', CASES)
def test_float64_matches_official(family, case_id):
    case = load_case(case_id, family)
    model = build_official_equivalent(case, family).double().eval()
    images = case['input'].double()
    with torch.no_grad():
        logits, stages = run_with_stages(model, images)
    errors = {'logits': rel_err(logits, case['logits'])}
    for i, (ours, ref) in enumerate(zip(stages, case['stages'])):
        assert ours.shape == ref.shape, (i, ours.shape, ref.shape)
        errors[f'stage{i}'] = rel_err(ours, ref)
    print(family, case_id, json.dumps(errors))
    assert max(errors.values()) < 1e-6, errors


@pytest.mark.parametrize('family, case_id', CASES)
def test_float32_matches_official(family, case_id):
    case = load_case(case_id, family)
    model = build_official_equivalent(case, family).eval()
    with torch.no_grad():
        logits, stages = run_with_stages(model, case['input'])
    assert rel_err(logits, case['logits']) < 1e-4
    for ours, ref in zip(stages, case['stages']):
        assert rel_err(ours, ref) < 1e-4


@pytest.mark.parametrize('family, case_id', GRAD_CASES)
def test_gradients_match_official(family, case_id):
    case = load_case(case_id, family)
    assert 'grads' in case, f'{family}/{case_id} has no gradients'
    model = build_official_equivalent(case, family).double().train()
    images = case['input'].double().requires_grad_()
    logits = model(images, mode='tensor')
    (logits * case['grad_projection']).sum().backward()
    params = dict(model.named_parameters())
    errors = {'input': rel_err(images.grad, case['grads']['input'])}
    for official_name, ref in case['grads'].items():
        if official_name == 'input':
            continue
        ours = mmpretrain_key(official_name)
        errors[official_name] = rel_err(params[ours].grad, ref)
    print(family, case_id, 'largest gradient error', max(errors.values()))
    assert max(errors.values()) < 1e-4, {
        k: v
        for k, v in errors.items() if v >= 1e-4
    }
