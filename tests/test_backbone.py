"""The FocalTransformer backbone: architectures, official parameter counts and
keys, dense-prediction behaviour, checkpoint loading and argument checks."""
import pytest
import torch
from mmpretrain.registry import MODELS

from focal_mm import FocalFastTransformer, FocalTransformer
from focal_mm.checkpoints.official import (mmpretrain_key,
                                           mmpretrain_model_cfg,
                                           official_to_backbone)
from conftest import ARCHS, ARCHS_V2, load_case

TINY = dict(embed_dims=16, depths=(1, 1, 2, 1), num_heads=(1, 2, 2, 4))


@pytest.mark.parametrize(
    'version, name', [(1, name) for name in sorted(ARCHS)] +
    [(2, name) for name in sorted(ARCHS_V2)])
def test_parameter_count_and_keys_equal_official(version, name):
    arch = (ARCHS if version == 1 else ARCHS_V2)[name]
    model = MODELS.build(mmpretrain_model_cfg(arch['config'], version))
    assert sum(p.numel() for p in model.parameters()) == arch['params']
    ours = model.state_dict()
    converted = set()
    for key, shape in arch['keys'].items():
        new_key = mmpretrain_key(key)
        if new_key is None:  # an official index buffer
            continue
        assert list(ours[new_key].shape) == list(shape), key
        converted.add(new_key)
    assert converted == set(ours)


@pytest.mark.parametrize('arch, embed_dims, depths',
                         [('tiny', 96, (2, 2, 6, 2)),
                          ('small', 96, (2, 2, 18, 2)),
                          ('base', 128, (2, 2, 18, 2)),
                          ('large', 192, (2, 2, 18, 2))])
def test_arch_zoo(arch, embed_dims, depths):
    settings = FocalTransformer.arch_zoo[arch]
    assert settings['embed_dims'] == embed_dims
    assert tuple(settings['depths']) == depths


def stage_outputs(model, images):
    """Each stage's output before the following downsample, NCHW (what
    the reference cases store)."""
    stages = []
    hooks = [
        stage.register_forward_hook(lambda m, i, o: stages.append(o[0]))
        for stage in model.stages
    ]
    with torch.no_grad():
        model(images)
    for hook in hooks:
        hook.remove()
    return [s.permute(0, 3, 1, 2) for s in stages]


# What both families share (FocalBackbone) is tested on both.
FAMILIES = pytest.mark.parametrize('backbone',
                                   [FocalTransformer, FocalFastTransformer])


@FAMILIES
def test_any_input_size_gives_dense_outputs(backbone):
    model = backbone(arch=TINY, img_size=None).eval()
    with torch.no_grad():
        outs = model(torch.randn(2, 3, 97, 131))
    assert [tuple(o.shape) for o in outs] == [(2, 16, 25, 33), (2, 32, 13, 17),
                                              (2, 64, 7, 9), (2, 128, 4, 5)]
    assert all(torch.isfinite(o).all() for o in outs)


def test_img_size_none_builds_surroundings_everywhere():
    dense = FocalTransformer(arch=TINY, img_size=None)
    cls = FocalTransformer(arch=TINY, img_size=224)
    key = 'stages.3.blocks.0.attn.relative_position_bias_table_to_neighbors'
    assert key in dense.state_dict() and key not in cls.state_dict()


@FAMILIES
def test_output_norms_only_for_out_indices(backbone):
    model = backbone(arch=TINY, out_indices=(1, 2, 3))
    assert not hasattr(model, 'norm0')
    assert all(hasattr(model, f'norm{i}') for i in (1, 2, 3))
    outs = model(torch.randn(1, 3, 64, 64))
    assert len(outs) == 3


@FAMILIES
def test_frozen_stages(backbone):
    model = backbone(arch=TINY, frozen_stages=2)
    model.train()
    for name, p in model.named_parameters():
        frozen = name.startswith(
            ('patch_embed', 'stages.0.', 'stages.1.', 'norm0', 'norm1'))
        assert p.requires_grad != frozen, name
    assert not model.stages[1].training and model.stages[2].training


@FAMILIES
def test_with_cp_gives_same_outputs_and_gradients(backbone):
    torch.manual_seed(0)
    plain = backbone(arch=TINY, img_size=None, drop_path_rate=0.)
    cp = backbone(arch=TINY, img_size=None, drop_path_rate=0., with_cp=True)
    cp.load_state_dict(plain.state_dict())
    x = torch.randn(1, 3, 64, 80)
    out_plain, out_cp = plain(x)[-1], cp(x)[-1]
    assert torch.allclose(out_plain, out_cp)
    out_plain.sum().backward()
    out_cp.sum().backward()
    g1 = plain.stages[0].blocks[0].attn.qkv.weight.grad
    g2 = cp.stages[0].blocks[0].attn.qkv.weight.grad
    assert torch.allclose(g1, g2, atol=1e-6)


def test_pretrained_official_checkpoint_loads_and_reports(tmp_path, mm_log):
    case = load_case('odd_228x260')
    path = tmp_path / 'focal-official.pth'
    # As released: under 'model', here also with DataParallel prefixes.
    torch.save(
        {'model': {
            'module.' + k: v
            for k, v in case['state_dict'].items()
        }}, path)
    cfg = mmpretrain_model_cfg(case['config'])['backbone']
    cfg.pop('type')
    cfg['out_indices'] = (0, 1, 2, 3)
    model = FocalTransformer(
        **cfg, init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    model.init_weights()
    text = mm_log.text()
    # The official model has no output norms for stages 0-2.
    assert 'missing from the checkpoint' in text and 'norm0.weight' in text
    expected = official_to_backbone(case['state_dict'])
    for key, value in expected.items():
        assert torch.equal(model.state_dict()[key], value), key
    stages = stage_outputs(model.eval(), case['input'])
    err = (stages[3] - case['stages'][3]).norm() / case['stages'][3].norm()
    assert err < 1e-4


def test_pretrained_tables_resized_and_missing_neighbours_reported(
        tmp_path, mm_log):
    case = load_case('pool_conv_224')
    path = tmp_path / 'focal.pth'
    torch.save({'model': case['state_dict']}, path)
    cfg = mmpretrain_model_cfg(case['config'])['backbone']
    cfg.pop('type')
    cfg.update(
        img_size=None,
        focal_windows=(9, 7, 5, 3),
        init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    model = FocalTransformer(**cfg)
    model.init_weights()
    text = mm_log.text()
    key = 'stages.0.blocks.0.attn.relative_position_bias_table_to_windows.0'
    assert f'Resized {key} from (1, 169) to (1, 225)' in text
    assert ('stages.3.blocks.0.attn.relative_position_bias_table_to_'
            'neighbors') in text
    # A 13x13 table resized to 15x15 keeps its corners.
    old = case['state_dict'][
        'layers.0.blocks.0.attn.relative_position_bias_table_to_windows.0']
    new = model.state_dict()[key]
    assert abs(new[0, 0] - old[0, 0]) < 0.5 * old.abs().max()
    outs = model(torch.randn(1, 3, 96, 96))
    assert all(torch.isfinite(o).all() for o in outs)


def test_official_mode_shrinks_windows_to_maps_that_fit():
    """As the official model: a block whose training-size map fits in one
    window takes the map's side as window (no surroundings, no shift)."""
    model = FocalTransformer(arch=TINY, img_size=(112, 160), use_shift=True)
    windows = [[b.attn.window_size for b in stage.blocks]
               for stage in model.stages]
    # Stage maps 28 x 40, 14 x 20, 7 x 10, 3 x 5.
    assert windows == [[7], [7], [7, 7], [3]]
    last = model.stages[3].blocks[0].attn
    assert last.expand_size == 0 and last.shift_size == 0
    assert model.stages[2].blocks[1].attn.shift_size == 0  # 7 x 10 fits
    assert model.stages[1].blocks[0].attn.expand_size == 3
    out = model(torch.randn(1, 3, 112, 160))[-1]
    assert out.shape == (1, 128, 3, 5)


@FAMILIES
def test_official_mode_drops_odd_rows_dense_mode_pads(backbone):
    """Official mode: the strided convolutions drop the last row / column of
    an odd map (official code); dense mode pads the bottom-right corner."""
    shapes = {}
    for img_size in (None, (228, 260)):
        model = backbone(arch=TINY, img_size=img_size).eval()
        with torch.no_grad():
            outs = model(torch.randn(1, 3, 228, 260))
        shapes[img_size] = [tuple(o.shape[2:]) for o in outs]
    assert shapes[(228, 260)] == [(57, 65), (28, 32), (14, 16), (7, 8)]
    assert shapes[None] == [(57, 65), (29, 33), (15, 17), (8, 9)]


def test_official_focal_fast_checkpoint_through_init_cfg(tmp_path, mm_log):
    """A Focal-fast release file (official keys, per-size buffers, under
    'model') loads into the dense backbone: every official parameter, and
    the official features at the official size."""
    case = load_case('v2_pool_conv_224', 'focal_v2')
    path = tmp_path / 'focalv2-official.pth'
    torch.save({'model': case['state_dict']}, path)
    cfg = mmpretrain_model_cfg(case['config'], version=2)['backbone']
    assert cfg.pop('type') == 'FocalFastTransformer'
    cfg.update(
        img_size=None,
        out_indices=(0, 1, 2, 3),
        init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    model = FocalFastTransformer(**cfg)
    model.init_weights()
    assert 'norm0.weight' in mm_log.text()  # dense outputs: not official
    for key, value in official_to_backbone(case['state_dict']).items():
        assert torch.equal(model.state_dict()[key], value), key
    for ours, ref in zip(stage_outputs(model.eval(), case['input']),
                         case['stages']):
        err = (ours - ref).norm() / ref.norm()
        assert err < 1e-4
