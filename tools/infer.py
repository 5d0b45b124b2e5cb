#!/usr/bin/env python
"""Runs a model on one image and draws what it sees: boxes and masks
(mmdet), a segmentation map (mmseg) or the top-5 labels (mmpretrain). The
config's ``default_scope`` picks the library.

    python tools/infer.py CONFIG CHECKPOINT IMAGE --out OUT.png
"""
import argparse

import numpy as np
from mmengine.config import Config
from PIL import Image, ImageDraw

import focal_mm  # noqa: F401  (registers the modules; checkpoint loading fix)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('image')
    parser.add_argument('--out', required=True, help='PNG to write')
    parser.add_argument('--device', default='cpu')
    parser.add_argument(
        '--score-thr',
        type=float,
        default=0.3,
        help='detection: draw boxes above this score')
    return parser.parse_args(argv)


def detect(args) -> np.ndarray:
    from mmdet.apis import DetInferencer
    inferencer = DetInferencer(
        model=args.config,
        weights=args.checkpoint,
        device=args.device,
        show_progress=False)
    result = inferencer(
        args.image,
        return_vis=True,
        no_save_vis=True,
        pred_score_thr=args.score_thr)
    return result['visualization'][0]


def segment(args) -> np.ndarray:
    from mmseg.apis import MMSegInferencer
    inferencer = MMSegInferencer(
        model=args.config, weights=args.checkpoint, device=args.device)
    return inferencer(args.image, return_vis=True)['visualization']


def classify(args) -> np.ndarray:
    from mmpretrain.apis import ImageClassificationInferencer
    inferencer = ImageClassificationInferencer(
        model=args.config, pretrained=args.checkpoint, device=args.device)
    result = inferencer(args.image)[0]
    scores = result['pred_scores']
    classes = inferencer.classes or [str(i) for i in range(len(scores))]
    image = Image.open(args.image).convert('RGB')
    canvas = Image.new('RGB', (image.width + 220, max(image.height, 110)),
                       'white')
    canvas.paste(image, (0, 0))
    draw = ImageDraw.Draw(canvas)
    for rank, index in enumerate(np.argsort(-scores)[:5]):
        draw.text((image.width + 10, 10 + 20 * rank),
                  f'{rank + 1}. {classes[index]}: {scores[index]:.3f}',
                  fill='black')
    return np.asarray(canvas)


TASKS = {'mmdet': detect, 'mmseg': segment, 'mmpretrain': classify}


def main(argv=None):
    args = parse_args(argv)
    scope = Config.fromfile(args.config).get('default_scope')
    if scope not in TASKS:
        raise SystemExit(f'{args.config}: default_scope must be one of '
                         f'{sorted(TASKS)}, got {scope!r}')
    picture = TASKS[scope](args)
    Image.fromarray(picture).save(args.out)
    print(f'Wrote {args.out}')


if __name__ == '__main__':
    main()
