"""Batch sizes that the 3x detection recipe feeds the backbone: images drawn
through the training pipeline of ``configs/mask_rcnn_focal_tiny_3x.py``
(mmdet's own ``RandomFlip``, ``RandomChoice`` of ``RandomChoiceResize``
480-800 and ``RandomCrop``), batched as its ``AspectRatioBatchSampler``
batches them (portrait and landscape apart, by the source image) and
padded as its data preprocessor pads them (to the largest image, then to a
multiple of 32)."""
import random
from pathlib import Path
from typing import List, Tuple

import numpy as np

CONFIG = Path(__file__).resolve().parents[2] / 'configs' / \
    'mask_rcnn_focal_tiny_3x.py'
# Shapes (H, W) of COCO train2017 images: most are 640 on the long side.
SOURCE_SHAPES = ((480, 640), (427, 640), (640, 480), (640, 427), (424, 640),
                 (612, 612), (375, 500), (640, 640))
# What the pipeline needs to run without files.
LOADERS = ('LoadImageFromFile', 'LoadAnnotations', 'PackDetInputs')


def multiscale_batch_sizes(num_batches: int,
                           batch: int = 2,
                           seed: int = 0) -> List[Tuple[int, int]]:
    """``(H, W)`` of ``num_batches`` padded batches of ``batch`` images of
    :data:`SOURCE_SHAPES`, through the 3x training pipeline; the same for
    the same ``seed``."""
    from mmdet.registry import TRANSFORMS
    from mmdet.structures.bbox import HorizontalBoxes
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    init_default_scope('mmdet')
    cfg = Config.fromfile(str(CONFIG))
    transforms = [
        TRANSFORMS.build(t) for t in cfg.train_dataloader.dataset.pipeline
        if t['type'] not in LOADERS
    ]
    divisor = cfg.model.data_preprocessor.pad_size_divisor
    random.seed(seed)
    np.random.seed(seed)
    sizes, buckets = [], {True: [], False: []}
    while len(sizes) < num_batches:
        h, w = SOURCE_SHAPES[np.random.randint(len(SOURCE_SHAPES))]
        results = dict(
            img=np.zeros((h, w, 3), np.uint8),
            img_shape=(h, w),
            ori_shape=(h, w),
            gt_bboxes=HorizontalBoxes(
                np.array([[w * .2, h * .2, w * .6, h * .7]], np.float32)),
            gt_bboxes_labels=np.zeros(1, np.int64),
            gt_ignore_flags=np.zeros(1, bool))
        for transform in transforms:
            results = transform(results)
        bucket = buckets[w < h]
        bucket.append(results['img_shape'])
        if len(bucket) == batch:
            sizes.append(
                tuple(-(-max(s[i] for s in bucket) // divisor) * divisor
                      for i in (0, 1)))
            bucket.clear()
    return sizes
