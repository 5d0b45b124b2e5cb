"""The backbone reproduces the official model on every reference case.

Each reference case (the compact set in ``tests/data/reference`` and, where
it is present, the full set in ``shared/reference``; see ``conftest.py``)
holds an official model's weights, inputs and outputs. The model is built through ``mmpretrain_model_cfg`` and
loaded through ``official_to_mmpretrain`` (strictly, apart from the official
index buffers), then compared in float64 (logits and stage features within
1e-6 relative, gradients within 1e-4) and float32 (1e-4).
"""
import json

import pytest
import torch
from mmpretrain.registry import MODELS

import focal_mm  # noqa: F401
from focal_mm.official import (OFFICIAL_BUFFERS, mmpretrain_key,
                               mmpretrain_model_cfg, official_to_mmpretrain)
from conftest import (COMPACT_CASES, FULL_CASES, FULL_ROOT, case_ids,
                      full_set_present, load_case)

CASES = case_ids('focal_v1')


def rel_err(actual: torch.Tensor, expected: torch.Tensor) -> float:
    expected = expected.double()
    return ((actual.double() - expected).norm() /
            expected.norm().clamp_min(1e-300)).item()


def build_official_equivalent(case):
    model = MODELS.build(mmpretrain_model_cfg(case['config']))
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
    for family in ('focal_v1', 'focal_v2'):
        for name in COMPACT_CASES[family]:
            load_case(f'compact/{name}', family)  # fails naming what is missing
        if full_set_present():
            found = sorted(p.stem for p in (FULL_ROOT / family).glob('*.pt'))
            assert found == FULL_CASES[family], (family, found)


@pytest.mark.parametrize('name', CASES)
def test_conversion_drops_only_buffers(name):
    case = load_case(name)
    converted = official_to_mmpretrain(case['state_dict'])
    params = {k for k in case['state_dict'] if not OFFICIAL_BUFFERS.search(k)}
    assert len(converted) == len(params)
    dropped = set(case['state_dict']) - params
    assert all(
        k.endswith(('relative_position_index', 'valid_ind_rolled',
                    'attn_mask')) or '_index_' in k or 'valid_ind_unfold' in k
        for k in dropped)


@pytest.mark.parametrize('name', CASES)
def test_float64_matches_official(name):
    case = load_case(name)
    model = build_official_equivalent(case).double().eval()
    images = case['input'].double()
    with torch.no_grad():
        logits, stages = run_with_stages(model, images)
    errors = {'logits': rel_err(logits, case['logits'])}
    for i, (ours, ref) in enumerate(zip(stages, case['stages'])):
        assert ours.shape == ref.shape, (i, ours.shape, ref.shape)
        errors[f'stage{i}'] = rel_err(ours, ref)
    print(name, json.dumps(errors))
    assert max(errors.values()) < 1e-6, errors


@pytest.mark.parametrize('name', CASES)
def test_float32_matches_official(name):
    case = load_case(name)
    model = build_official_equivalent(case).eval()
    with torch.no_grad():
        logits, stages = run_with_stages(model, case['input'])
    assert rel_err(logits, case['logits']) < 1e-4
    for ours, ref in zip(stages, case['stages']):
        assert rel_err(ours, ref) < 1e-4


GRAD_CASES = [
    c for c in CASES if c.split('/')[1] in ('pool_conv_224', 'tiny_shape_224')
]


@pytest.mark.parametrize('name', GRAD_CASES)
def test_gradient_cases_have_gradients(name):
    assert 'grads' in load_case(name)


@pytest.mark.parametrize('name', GRAD_CASES)
def test_gradients_match_official(name):
    case = load_case(name)
    model = build_official_equivalent(case).double().train()
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
    print(name, 'largest gradient error', max(errors.values()))
    assert max(errors.values()) < 1e-4, {
        k: v
        for k, v in errors.items() if v >= 1e-4
    }
