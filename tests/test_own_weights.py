"""Weights of one's own, where no official file survives (docs/weights.md,
"Your own pretraining"): tools/train.py pretrains an ImageNet classifier
config, the documented --cfg-options line starts a Mask R-CNN's and an
UperNet's backbone from that run's checkpoint, and tools/test.py evaluates
the classifier. Both families, at tiny widths on 64-pixel images of the
synthetic ImageNet-format set (two epochs of two iterations)."""
import importlib
import importlib.util
import math
import pickle

import pytest
import torch
import torch.nn.functional as F
from mmengine.registry import DefaultScope

from focal_mm.synthetic_data import make_imagenet
from conftest import REPO_ROOT
from test_tools import last_checkpoint, run

pytestmark = pytest.mark.slow
CONFIG_DIR = REPO_ROOT / 'configs'
TINY_ARCH = [
    'model.backbone.arch._delete_=True', 'model.backbone.arch.embed_dims=16',
    'model.backbone.arch.depths=[1,1,2,1]',
    'model.backbone.arch.num_heads=[1,2,2,4]'
]
# The stage channels of TINY_ARCH (16, 32, 64, 128) where the dense configs'
# necks and heads take them.
NECK = ['model.neck.in_channels=[16,32,64,128]']
UPERNET_HEADS = [
    'model.decode_head.in_channels=[16,32,64,128]',
    'model.auxiliary_head.in_channels=64'
]
# What a dense backbone has and the 224 classifier's lacks: output norms for
# the neck's first three stages (the classifier has stage 4's), and for
# Focal the neighbour table of stage 4, whose map fits one window at 224.
OUTPUT_NORMS = {f'norm{i}.{p}' for i in range(3) for p in ('weight', 'bias')}
STAGE4_NEIGHBOURS = {
    'stages.3.blocks.0.attn.relative_position_bias_table_to_neighbors'
}


def classifier_options(root):
    """--cfg-options that shrink an ImageNet config: tiny arch, the data at
    ``root`` read in batches of 3 without workers, 64-pixel crops, two
    epochs (one of warm-up, one of cosine decay)."""
    options = TINY_ARCH + [
        'model.head.in_channels=128',
        'train_dataloader.dataset.pipeline.1.scale=64',
        'train_cfg.max_epochs=2', 'train_cfg.val_interval=2',
        'param_scheduler.0.end=1', 'param_scheduler.1.begin=1'
    ]
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        options += [
            f'{loader}.dataset.data_root={root}', f'{loader}.batch_size=3',
            f'{loader}.num_workers=0', f'{loader}.persistent_workers=False'
        ]
    for loader in ('val_dataloader', 'test_dataloader'):
        options += [
            f'{loader}.dataset.pipeline.1.scale=72',
            f'{loader}.dataset.pipeline.2.crop_size=64'
        ]
    return options


def train_tool():
    spec = importlib.util.spec_from_file_location(
        'train_tool', REPO_ROOT / 'tools' / 'train.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_model(cfg):
    """The model of ``cfg`` from its library's registry, as the runner
    builds it."""
    scope = cfg.default_scope
    importlib.import_module(f'{scope}.utils').register_all_modules(False)
    registry = importlib.import_module(f'{scope}.registry').MODELS
    with DefaultScope.overwrite_default_scope(scope):
        return registry.build(cfg.model)


@pytest.mark.parametrize(
    'classifier, dense, added, enlarged', [
        ('focal_tiny_in1k', {
            'mask_rcnn_focal_tiny_3x': NECK
        }, OUTPUT_NORMS | STAGE4_NEIGHBOURS, True),
        ('focal_fast_tiny_in1k', {
            'mask_rcnn_focal_fast_tiny_1x': NECK,
            'upernet_focal_fast_tiny_512x512_160k_ade20k': UPERNET_HEADS
        }, OUTPUT_NORMS, False),
    ],
    ids=['focal', 'focal_fast'])
def test_pretrain_then_start_dense_models(tmp_path, classifier, dense, added,
                                          enlarged):
    """``added``: the dense backbones' tensors that the classifier lacks;
    ``enlarged``: the dense configs enlarge the focal windows (Focal's
    detectors), so the pooled-window bias tables are resized."""
    root = make_imagenet(
        str(tmp_path / 'imagenet'),
        per_class_train=2,
        per_class_val=1,
        size=(64, 64))
    options = classifier_options(root)
    config = CONFIG_DIR / f'{classifier}.py'
    work = tmp_path / classifier
    run('train.py', config, '--work-dir', work, '--cfg-options', *options)
    checkpoint = last_checkpoint(work)
    assert checkpoint.endswith('epoch_2.pth')
    trained = {
        k[len('backbone.'):]: v
        for k, v in torch.load(checkpoint, weights_only=True)
        ['state_dict'].items() if k.startswith('backbone.')
    }

    tool = train_tool()
    for name, head_options in dense.items():
        args = tool.parse_args([
            str(CONFIG_DIR / f'{name}.py'), '--work-dir',
            str(tmp_path / name), '--cfg-options',
            f'model.backbone.init_cfg.checkpoint={checkpoint}', *TINY_ARCH,
            *head_options
        ])
        model = build_model(tool.build_config(args))
        model.init_weights()
        loaded = model.backbone.state_dict()
        assert set(loaded) == set(trained) | added, name
        resized = {k for k in trained if loaded[k].shape != trained[k].shape}
        assert resized == ({
            k
            for k in trained
            if k.endswith('relative_position_bias_table_to_windows.0')
        } if enlarged else set()), name
        for key in set(trained) - resized:
            assert torch.equal(loaded[key], trained[key]), (name, key)
        for key in resized:  # (heads, side**2) grids, bicubically
            heads, cells = loaded[key].shape
            side = math.isqrt(cells)
            old = math.isqrt(trained[key].shape[1])
            grid = trained[key].reshape(heads, 1, old, old)
            expected = F.interpolate(
                grid, size=(side, side), mode='bicubic', align_corners=False)
            assert torch.allclose(
                loaded[key], expected.reshape(heads, -1), atol=1e-6), key

    preds = tmp_path / 'preds.pkl'
    out = run('test.py', config, checkpoint, '--work-dir', work, '--out',
              preds, '--cfg-options', *options)
    assert 'accuracy/top1' in out
    assert 'do not match exactly' not in out  # every weight loaded
    with open(preds, 'rb') as f:
        scores = [p['pred_score'] for p in pickle.load(f)]
    assert len(scores) == 3 and scores[0].shape == (1000, )
