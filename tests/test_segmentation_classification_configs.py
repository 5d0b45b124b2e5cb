"""UperNet (mmseg) and ImageNet classifier (mmpretrain) configs: they build
with the paper's / official parameter counts, and train and evaluate (mIoU,
top-1) on small generated datasets with only data settings overridden."""
import math

import pytest
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.runner import Runner

from focal_mm.synthetic_data import make_ade20k, make_imagenet
from conftest import ARCHS, ARCHS_V2, REPO_ROOT
from toy_configs import toy_classification, toy_segmentation

CONFIG_DIR = REPO_ROOT / 'configs'
SEG_PARAMS = {  # millions, 150 classes, paper
    'upernet_focal_tiny_512x512_160k_ade20k': 62,
    'upernet_focal_small_512x512_160k_ade20k': 85,
    'upernet_focal_base_512x512_160k_ade20k': 126,
    'upernet_focal_large_640x640_160k_ade20k': 240,
}
CLS_CONFIGS = {  # config -> official variant
    f'focal_{arch}{conv}_in1k': f'{arch}{conv}'
    for arch in ('tiny', 'small', 'base')
    for conv in ('', '_useconv')
}
FAST_CLS_CONFIGS = {  # Focal-fast config -> official variant
    f'focal_fast_{arch}_in1k': f'{arch}_useconv'
    for arch in ('tiny', 'small', 'base')
}


def build(scope, cfg):
    import importlib
    importlib.import_module(f'{scope}.utils').register_all_modules(False)
    registry = importlib.import_module(f'{scope}.registry').MODELS
    with DefaultScope.overwrite_default_scope(scope):
        return registry.build(cfg.model)


def count(model):
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize('name', sorted(SEG_PARAMS))
def test_upernet_parameter_count_matches_paper(name):
    model = build('mmseg', Config.fromfile(str(CONFIG_DIR / f'{name}.py')))
    params = count(model) / 1e6
    print(f'{name}: {params:.2f} M (paper {SEG_PARAMS[name]} M)')
    assert abs(params - SEG_PARAMS[name]) / SEG_PARAMS[name] < 0.02


@pytest.mark.parametrize('name',
                         sorted(CLS_CONFIGS) + sorted(FAST_CLS_CONFIGS))
def test_classifier_parameter_count_equals_official(name):
    cfg = Config.fromfile(str(CONFIG_DIR / f'{name}.py'))
    official = ARCHS_V2[FAST_CLS_CONFIGS[name]] if name in FAST_CLS_CONFIGS \
        else ARCHS[CLS_CONFIGS[name]]
    assert count(build('mmpretrain', cfg)) == official['params']


@pytest.fixture(scope='module')
def ade_root(tmp_path_factory):
    return make_ade20k(
        str(tmp_path_factory.mktemp('ade')), num_train=4, num_val=2)


@pytest.fixture(scope='module')
def imagenet_root(tmp_path_factory):
    return make_imagenet(
        str(tmp_path_factory.mktemp('imagenet')),
        per_class_train=2,
        per_class_val=2)


def train_and_validate(cfg: Config) -> dict:
    """Trains a few iterations; checks the loss; returns the metrics."""
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert math.isfinite(runner.message_hub.get_scalar('train/loss').current())
    return runner.val()


@pytest.mark.slow
@pytest.mark.parametrize(
    'name',
    sorted(SEG_PARAMS) + ['upernet_focal_fast_tiny_512x512_160k_ade20k'])
def test_upernet_trains_and_evaluates(name, ade_root, tmp_path):
    metrics = train_and_validate(
        toy_segmentation(
            Config.fromfile(str(CONFIG_DIR / f'{name}.py')), ade_root,
            str(tmp_path)))
    assert 0 <= metrics['mIoU'] <= 100, metrics


@pytest.mark.slow
@pytest.mark.parametrize('name',
                         sorted(CLS_CONFIGS) + ['focal_fast_tiny_in1k'])
def test_classifier_trains_and_evaluates(name, imagenet_root, tmp_path):
    metrics = train_and_validate(
        toy_classification(
            Config.fromfile(str(CONFIG_DIR / f'{name}.py')), imagenet_root,
            str(tmp_path)))
    assert 0 <= metrics['accuracy/top1'] <= 100, metrics
