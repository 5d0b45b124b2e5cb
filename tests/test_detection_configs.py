"""Every detection config builds through mmdet's registry with the paper's
parameter count, and trains and evaluates (real COCO metric) on a small
generated COCO-format dataset with only data paths and sizes overridden."""
import math

import pytest
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.runner import Runner

from focal_mm.synthetic_data import make_coco
from conftest import REPO_ROOT
from toy_configs import toy_detection

CONFIG_DIR = REPO_ROOT / 'configs'

# Parameters (millions) reported in the paper, 80 classes.
PAPER_PARAMS = {
    'mask_rcnn_focal_tiny': 48.8,
    'mask_rcnn_focal_small': 71.2,
    'mask_rcnn_focal_base': 110.0,
    'retinanet_focal_tiny': 39.4,
    'retinanet_focal_small': 61.7,
    'retinanet_focal_base': 100.8,
    'cascade_mask_rcnn_focal_tiny': 86.7,
    'atss_focal_tiny': 36.8,
    'sparse_rcnn_focal_tiny': 110.8,
}
DETECTION_CONFIGS = sorted(
    p.stem for p in CONFIG_DIR.glob('*.py')
    if p.stem.split('_focal_')[0] in ('mask_rcnn', 'retinanet',
                                      'cascade_mask_rcnn', 'atss', 'reppoints',
                                      'sparse_rcnn'))


def test_all_paper_detectors_have_configs():
    expected = [
        f'{d}_focal_{s}_{x}' for d in ('mask_rcnn', 'retinanet')
        for s in ('tiny', 'small', 'base') for x in ('1x', '3x')
    ]
    expected += [
        f'{d}_focal_tiny_3x'
        for d in ('cascade_mask_rcnn', 'atss', 'reppoints', 'sparse_rcnn')
    ]
    expected += [
        'mask_rcnn_focal_fast_tiny_1x', 'mask_rcnn_focal_fast_tiny_3x',
        'retinanet_focal_fast_tiny_1x'
    ]
    assert sorted(expected) == DETECTION_CONFIGS


def build_detector(cfg):
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    with DefaultScope.overwrite_default_scope('mmdet'):
        return MODELS.build(cfg.model)


@pytest.mark.parametrize('model_name', sorted(PAPER_PARAMS))
def test_parameter_count_matches_paper(model_name):
    """The model of each schedule's config (1x, 3x: one model, built
    once)."""
    names = [n for n in DETECTION_CONFIGS if n.rsplit('_', 1)[0] == model_name]
    models = [
        Config.fromfile(str(CONFIG_DIR / f'{n}.py')).model for n in names
    ]
    assert names and all(m == models[0] for m in models), names
    model = build_detector(Config(dict(model=models[0])))
    params = sum(p.numel() for p in model.parameters()) / 1e6
    paper = PAPER_PARAMS[model_name]
    print(f'{names}: {params:.2f} M (paper {paper} M)')
    assert abs(params - paper) / paper < 0.02


@pytest.fixture(scope='module')
def coco_root(tmp_path_factory):
    # Two training images: one batch of the configs' two.
    return make_coco(
        str(tmp_path_factory.mktemp('coco')), num_train=2, num_val=1)


@pytest.mark.slow
@pytest.mark.parametrize('name', DETECTION_CONFIGS)
def test_config_trains_and_evaluates(name, coco_root, tmp_path):
    cfg = toy_detection(
        Config.fromfile(str(CONFIG_DIR / f'{name}.py')), coco_root,
        str(tmp_path))
    runner = Runner.from_cfg(cfg)
    runner.train()
    losses = {
        k: v
        for k, v in runner.message_hub.log_scalars.items()
        if k.startswith('train/') and 'loss' in k
    }
    assert losses and all(math.isfinite(v.current())
                          for v in losses.values()), losses
    metrics = runner.val()
    assert 0 <= metrics['coco/bbox_mAP'] <= 1, metrics
    if 'mask' in name:
        assert 0 <= metrics['coco/segm_mAP'] <= 1, metrics
