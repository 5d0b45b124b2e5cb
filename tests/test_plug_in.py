"""The README's recipe: a few lines turn unmodified mmdet and mmseg configs
into Focal ones, which then train (an iteration on generated data)."""
import math

import pytest
from mmengine.config import Config
from mmengine.runner import Runner

from focal_mm.synthetic_data import make_ade20k, make_coco
from toy_configs import toy_detection, toy_segmentation

pytestmark = pytest.mark.slow
BACKBONE = ("dict(_delete_=True, type='FocalTransformer', arch='tiny', "
            "img_size=None, init_cfg=dict(type='Pretrained', checkpoint="
            "'work_dirs/focal_tiny_in1k/epoch_300.pth'))")


def plug_in(tmp_path, base, head):
    config = tmp_path / 'focal_config.py'
    config.write_text(f"_base_ = '{base}'\n"
                      "custom_imports = dict(imports=['focal_mm'], "
                      "allow_failed_imports=False)\n"
                      f"model = dict(backbone={BACKBONE}, {head})\n")
    return Config.fromfile(str(config))


def train(cfg):
    runner = Runner.from_cfg(cfg)
    runner.train()
    losses = [
        v.current() for k, v in runner.message_hub.log_scalars.items()
        if k.startswith('train/') and 'loss' in k
    ]
    assert losses and all(math.isfinite(v) for v in losses)


def test_mmdet_faster_rcnn(tmp_path):
    cfg = plug_in(tmp_path,
                  'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py',
                  'neck=dict(in_channels=[96, 192, 384, 768])')
    root = make_coco(str(tmp_path / 'coco'), num_train=2, num_val=1)
    train(toy_detection(cfg, root, str(tmp_path / 'work')))


def test_mmseg_upernet(tmp_path):
    cfg = plug_in(
        tmp_path, 'mmseg::upernet/upernet_r50_4xb4-80k_ade20k-512x512.py',
        'pretrained=None, decode_head=dict(in_channels=[96, 192, 384, 768]), '
        'auxiliary_head=dict(in_channels=384)')
    root = make_ade20k(str(tmp_path / 'ade'), num_train=2, num_val=1)
    train(toy_segmentation(cfg, root, str(tmp_path / 'work')))
