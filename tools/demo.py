#!/usr/bin/env python
"""The main job: a Focal-T Mask R-CNN learns the generated shapes dataset.

    python tools/demo.py [--work-dir work_dirs/demo] [--epochs N]

Generates ``data/shapes_coco`` (drawn squares, circles and triangles with
boxes and polygon masks, COCO format) unless it is there, trains
``configs/demo/mask_rcnn_focal_tiny_shapes.py`` on CPU, evaluates it with the
COCO metric on the held-out images and draws its predictions on one of them.
"""
import argparse
import json
import os.path as osp
import sys
import time

from mmengine.config import Config
from mmengine.runner import Runner
from PIL import Image

import focal_mm  # noqa: F401
from focal_mm.synthetic_data import make_coco

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
import infer  # noqa: E402  (tools/infer.py)

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = osp.join(ROOT, 'configs', 'demo', 'mask_rcnn_focal_tiny_shapes.py')


def showcase_image(data_root: str) -> str:
    """The held-out image with the most different shapes (the first one)."""
    with open(osp.join(data_root, 'annotations', 'instances_val.json')) as f:
        coco = json.load(f)
    kinds = {image['id']: set() for image in coco['images']}
    for ann in coco['annotations']:
        kinds[ann['image_id']].add(ann['category_id'])
    best = max(sorted(kinds), key=lambda i: len(kinds[i]))
    return next(im['file_name'] for im in coco['images'] if im['id'] == best)


def enlarged(image: str, work_dir: str, factor: int = 3) -> str:
    """A copy of ``image`` ``factor`` times larger, for a legible drawing
    (the test pipeline resizes it back, so the model sees the same input)."""
    img = Image.open(image)
    out = osp.join(work_dir, 'heldout_image.png')
    img.resize((img.width * factor, img.height * factor),
               Image.NEAREST).save(out)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument('--data-root', default='data/shapes_coco')
    parser.add_argument(
        '--epochs',
        type=int,
        default=None,
        help='override the config\'s number of epochs')
    args = parser.parse_args(argv)

    if not osp.exists(
            osp.join(args.data_root, 'annotations', 'instances_val.json')):
        make_coco(args.data_root, num_train=64, num_val=16)
        print(f'Generated the shapes dataset in {args.data_root}')
    cfg = Config.fromfile(CONFIG)
    cfg.work_dir = args.work_dir
    for loader in (cfg.train_dataloader, cfg.val_dataloader,
                   cfg.test_dataloader):
        loader.dataset.data_root = args.data_root
    cfg.val_evaluator.ann_file = osp.join(args.data_root, 'annotations',
                                          'instances_val.json')
    cfg.test_evaluator = cfg.val_evaluator
    if args.epochs:
        cfg.train_cfg.max_epochs = cfg.train_cfg.val_interval = args.epochs
        cfg.default_hooks.checkpoint.interval = args.epochs
        cfg.param_scheduler[1].end = args.epochs
    # The held-out images are evaluated once, by runner.val() after
    # training: the training loop's own validation would repeat it.
    cfg.train_cfg.val_begin = cfg.train_cfg.max_epochs + 1

    start = time.time()
    runner = Runner.from_cfg(cfg)
    runner.train()
    metrics = runner.val()
    minutes = (time.time() - start) / 60
    with open(osp.join(args.work_dir, 'last_checkpoint')) as f:
        checkpoint = f.read().strip()

    image = osp.join(args.data_root, 'val', showcase_image(args.data_root))
    picture = osp.join(args.work_dir, 'prediction.png')
    infer.main([
        CONFIG, checkpoint,
        enlarged(image, args.work_dir), '--out', picture, '--score-thr', '0.5'
    ])
    print('\n' + '=' * 70)
    print(f'Focal-T Mask R-CNN trained in {minutes:.1f} min on CPU')
    print(f"COCO box mAP {metrics['coco/bbox_mAP']:.3f}, "
          f"mask mAP {metrics['coco/segm_mAP']:.3f} "
          f'on {len(runner.val_dataloader.dataset)} held-out images')
    print(f'Checkpoint: {checkpoint}')
    print(f'Predictions drawn on {image}: {picture}')
    print('=' * 70)


if __name__ == '__main__':
    main()
