"""Whole detectors for ``benchmark.py``: Mask R-CNN and RetinaNet with Focal-T,
Focal-fast-T or Swin-T, built from the configs as users run them (this
repository's Focal configs, mmdet's own Swin configs), with random weights
and a fixed synthetic batch.

With random weights the heads' work would depend on each backbone's random
features (how many boxes pass the score threshold, hence how many RoIs the
mask head crops). The benchmark sets the test score threshold to 0, so that
every model runs its heads on the configs' maximum number of detections per
image (100): the same head workload for all, as on a crowded image.
"""
import logging
from contextlib import nullcontext
from pathlib import Path
from typing import Callable, Dict

import torch

CONFIGS = Path(__file__).resolve().parents[2] / 'configs'

DETECTOR_CONFIGS: Dict[str, Dict[str, str]] = {
    'mask_rcnn': {
        'focal': str(CONFIGS / 'mask_rcnn_focal_tiny_1x.py'),
        'focal_fast': str(CONFIGS / 'mask_rcnn_focal_fast_tiny_1x.py'),
        'swin': 'mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py',
    },
    'retinanet': {
        'focal': str(CONFIGS / 'retinanet_focal_tiny_1x.py'),
        'focal_fast': str(CONFIGS / 'retinanet_focal_fast_tiny_1x.py'),
        'swin': 'mmdet::swin/retinanet_swin-t-p4-w7_fpn_1x_coco.py',
    },
}


def detector_config(detector: str, model: str, attn_impl: str = 'auto'):
    """The config of the ``detector`` of ``DETECTOR_CONFIGS`` with the
    ``model`` backbone, whose ``init_cfg`` is dropped (random weights);
    ``attn_impl`` for a Focal backbone."""
    from mmengine.config import Config
    from mmengine.hub import get_config
    from mmengine.registry import init_default_scope

    import focal_mm  # noqa: F401  (registers the Focal backbones)
    path = DETECTOR_CONFIGS[detector][model]
    cfg = get_config(path) if '::' in path else Config.fromfile(path)
    init_default_scope('mmdet')
    cfg.model.backbone.init_cfg = None
    if model != 'swin':
        cfg.model.backbone.attn_impl = attn_impl
    return cfg


def build_backbone(detector: str, model: str,
                   attn_impl: str = 'auto') -> torch.nn.Module:
    """The backbone alone of :func:`build_detector`."""
    from mmdet.registry import MODELS
    cfg = detector_config(detector, model, attn_impl)
    return initialised(MODELS.build(cfg.model.backbone))


def build_detector(detector: str,
                   model: str,
                   attn_impl: str = 'auto') -> torch.nn.Module:
    """The ``detector`` of ``DETECTOR_CONFIGS`` with the ``model`` backbone
    (random weights) and its heads' score threshold at 0."""
    from mmdet.registry import MODELS
    cfg = detector_config(detector, model, attn_impl)
    test_cfg = cfg.model.test_cfg
    for head_cfg in (test_cfg.get('rcnn'), test_cfg):
        if head_cfg is not None and 'score_thr' in head_cfg:
            head_cfg.score_thr = 0.
    return initialised(MODELS.build(cfg.model))


def initialised(net: torch.nn.Module) -> torch.nn.Module:
    """``net`` after ``init_weights()``, without mmengine's log of how
    every parameter was initialised (thousands of lines per detector when
    there is no log file)."""
    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        net.init_weights()
    finally:
        logger.setLevel(level)
    return net


def detector_batch(num_images: int, size: tuple, device: str) -> dict:
    """A fixed batch of uint8 images with five boxes and masks each, in the
    format of mmdet's data loader (before the data preprocessor)."""
    from mmdet.structures import DetDataSample
    from mmdet.structures.mask import BitmapMasks
    from mmengine.structures import InstanceData

    gen = torch.Generator().manual_seed(0)
    h, w = size
    inputs, samples = [], []
    for _ in range(num_images):
        inputs.append(
            torch.randint(0, 256, (3, h, w), generator=gen,
                          dtype=torch.uint8).to(device))
        corner = torch.rand(
            5, 2, generator=gen) * torch.tensor([w * .6, h * .6])
        extent = torch.rand(
            5, 2, generator=gen) * torch.tensor([w * .3, h * .3]) + 16
        boxes = torch.cat([corner, corner + extent], dim=1)
        masks = torch.zeros(5, h, w, dtype=torch.uint8)
        for i, (x0, y0, x1, y1) in enumerate(boxes.long().tolist()):
            masks[i, y0:y1, x0:x1] = 1
        sample = DetDataSample(
            metainfo=dict(
                img_shape=size,
                ori_shape=size,
                pad_shape=size,
                scale_factor=(1., 1.)))
        sample.gt_instances = InstanceData(
            bboxes=boxes,
            labels=torch.randint(0, 80, (5, ), generator=gen),
            masks=BitmapMasks(masks.numpy(), h, w)).to(device)
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def detector_step(net: torch.nn.Module, batch: dict, train: bool,
                  autocast) -> Callable[[], None]:
    """One training step (losses and backward, no optimiser update) or one
    inference (``test_step``: preprocessing, heads, post-processing)."""
    autocast = autocast or nullcontext()
    net.train(train)

    def step():
        if train:
            with autocast:
                data = net.data_preprocessor(batch, True)
                loss, _ = net.parse_losses(net(**data, mode='loss'))
            loss.backward()
            net.zero_grad(set_to_none=True)
        else:
            with torch.no_grad(), autocast:
                net.test_step(batch)

    return step
