#!/usr/bin/env python
"""Draws what one query token of a Focal Transformer block attends: its
fine surroundings and the pooled regions of each focal level, shaded by the
attention weight, with the share of attention each level receives.

    python tools/analysis/visualize_focal_attention.py CONFIG IMAGE \\
        --checkpoint CKPT --stage 0 --block 0 --query 20 28 --out attn.png

``--query`` is a token position (row, column) in that stage's map; without
it the centre token is used. Weights are averaged over heads unless
``--head`` picks one.
"""
import argparse

import numpy as np
import torch
from mmengine.config import Config
from mmengine.registry import MODELS
from PIL import Image, ImageDraw

import focal_mm  # noqa: F401
from focal_mm.checkpoints.pretrained import load_pretrained

COLOURS = [(40, 120, 255), (40, 200, 80), (255, 150, 30), (200, 60, 200)]
MEAN = np.array([123.675, 116.28, 103.53])
STD = np.array([58.395, 57.12, 57.375])


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('image')
    parser.add_argument('--checkpoint', help='official or converted weights')
    parser.add_argument('--stage', type=int, default=0)
    parser.add_argument('--block', type=int, default=0)
    parser.add_argument('--query', type=int, nargs=2, metavar=('ROW', 'COL'))
    parser.add_argument('--head', type=int, help='one head (default: mean)')
    parser.add_argument(
        '--size', type=int, nargs=2, default=[224, 224], metavar=('H', 'W'))
    parser.add_argument('--out', required=True, help='PNG to write')
    return parser.parse_args(argv)


def build_backbone(config: str, checkpoint=None):
    cfg = Config.fromfile(config).model.backbone
    cfg.pop('init_cfg', None)
    backbone = MODELS.build(cfg)
    backbone.init_weights()
    if checkpoint:
        load_pretrained(backbone, checkpoint)
    return backbone.eval()


def attended(backbone, image: np.ndarray, stage: int, block: int, query):
    """Runs the backbone and asks the chosen block who the query attends."""
    attn = backbone.stages[stage].blocks[block].attn
    captured = {}
    handle = attn.register_forward_pre_hook(
        lambda m, args: captured.setdefault('x', args[0]))
    tensor = torch.from_numpy((image - MEAN) / STD).permute(2, 0, 1)
    with torch.no_grad():
        backbone(tensor[None].float())
    handle.remove()
    x = captured['x']
    if query is None:
        query = (x.shape[1] // 2, x.shape[2] // 2)
    return attn.query_attention(x, *query), query


def draw(image: np.ndarray, info: dict, query, stride: int, head=None):
    weights = info['weights'][head] if head is not None else \
        info['weights'].mean(0)
    scale = max(1, 448 // max(image.shape[:2]))
    canvas = Image.fromarray(image.astype(np.uint8)).resize(
        (image.shape[1] * scale, image.shape[0] * scale), Image.NEAREST)
    overlay = Image.new('RGBA', canvas.size, (0, 0, 0, 0))
    shade = ImageDraw.Draw(overlay)
    px = stride * scale
    levels = info['levels']
    for level in sorted(set(levels.tolist()) - {-1}, reverse=True):
        chosen = levels == level
        top = weights[chosen].max().item()
        for box, weight in zip(info['boxes'][chosen], weights[chosen]):
            y0, x0, y1, x1 = (int(v) * px for v in box)
            alpha = int(20 + 150 * weight.item() / top)
            shade.rectangle((x0, y0, x1 - 1, y1 - 1),
                            fill=COLOURS[level % len(COLOURS)] + (alpha, ),
                            outline=COLOURS[level % len(COLOURS)] + (255, ))
    qy, qx = query
    shade.rectangle((qx * px, qy * px, (qx + 1) * px - 1, (qy + 1) * px - 1),
                    outline=(255, 0, 0, 255),
                    width=3)
    canvas = Image.alpha_composite(canvas.convert('RGBA'), overlay)
    legend = Image.new('RGBA', (canvas.width, 20 * (levels.max() + 2)),
                       'white')
    text = ImageDraw.Draw(legend)
    for level in range(int(levels.max()) + 1):
        share = weights[levels == level].sum().item()
        name = 'fine tokens' if level == 0 else f'pooled level {level}'
        text.rectangle((6, 6 + 20 * level, 18, 18 + 20 * level),
                       fill=COLOURS[level % len(COLOURS)])
        text.text((26, 6 + 20 * level),
                  f'{name}: {100 * share:.1f}% of the attention',
                  fill='black')
    out = Image.new('RGBA', (canvas.width, canvas.height + legend.height))
    out.paste(canvas, (0, 0))
    out.paste(legend, (0, canvas.height))
    return out.convert('RGB')


def main(argv=None):
    args = parse_args(argv)
    backbone = build_backbone(args.config, args.checkpoint)
    image = np.asarray(
        Image.open(args.image).convert('RGB').resize(args.size[::-1]),
        dtype=np.float64)
    info, query = attended(backbone, image, args.stage, args.block, args.query)
    stride = backbone.patch_embed.projection.stride[0] * 2**args.stage
    draw(image, info, query, stride, args.head).save(args.out)
    print(f'Query {tuple(query)} of stage {args.stage} block {args.block}: '
          f'wrote {args.out}')


if __name__ == '__main__':
    main()
