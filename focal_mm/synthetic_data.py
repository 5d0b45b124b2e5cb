# Copyright (c) focal_mm contributors. All rights reserved.
"""Small synthetic datasets in the layouts OpenMMLab expects.

They let every config train and evaluate end to end with no download:

- :func:`make_coco`: images with drawn shapes, COCO-format boxes and polygon
  masks (``annotations/instances_{train,val}.json``, ``train/``, ``val/``).
- :func:`make_ade20k`: images and label PNGs in ADE20K's
  ``images/{training,validation}`` / ``annotations/...`` layout.
- :func:`make_imagenet`: class folders under ``train/`` and ``val/``.

Each class is a shape of its own colour, so a model can learn it in minutes.
"""
import json
import math
from pathlib import Path
from typing import List, Sequence, Tuple

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ('square', 'circle', 'triangle')
COLOURS = ((220, 60, 40), (40, 170, 60), (50, 90, 220))


def _polygon(shape: str, cx: float, cy: float, r: float) -> List[float]:
    """Outline of a shape centred at (cx, cy) with radius r, flat x, y."""
    if shape == 'square':
        corners = [(-r, -r), (r, -r), (r, r), (-r, r)]
    elif shape == 'triangle':
        corners = [(0, -r), (r, r), (-r, r)]
    else:
        corners = [(r * math.cos(2 * math.pi * i / 16),
                    r * math.sin(2 * math.pi * i / 16)) for i in range(16)]
    return [v for x, y in corners for v in (cx + x, cy + y)]


def _background(rng: np.random.Generator, size: Tuple[int, int]) -> Image:
    h, w = size
    noise = rng.integers(90, 170, size=(h, w, 3), dtype=np.uint8)
    return Image.fromarray(noise)


def _draw_objects(rng, image, max_objects, shapes=SHAPES):
    """Draws non-overlapping shapes; returns (shape index, polygon) pairs."""
    w, h = image.size
    draw = ImageDraw.Draw(image)
    placed, objects = [], []
    for _ in range(int(rng.integers(1, max_objects + 1))):
        for _ in range(20):  # a few tries to find a free spot
            r = float(rng.uniform(0.08, 0.2) * min(h, w))
            cx = float(rng.uniform(r + 1, w - r - 1))
            cy = float(rng.uniform(r + 1, h - r - 1))
            if all(
                    math.hypot(cx - x, cy - y) > r + q + 2
                    for x, y, q in placed):
                break
        else:
            continue
        label = int(rng.integers(len(shapes)))
        poly = _polygon(shapes[label], cx, cy, r)
        draw.polygon(poly, fill=COLOURS[label])
        placed.append((cx, cy, r))
        objects.append((label, poly))
    return objects


def make_coco(root: str,
              num_train: int = 24,
              num_val: int = 8,
              size: Tuple[int, int] = (160, 224),
              max_objects: int = 3,
              seed: int = 0) -> str:
    """Writes a COCO-format instance dataset with classes :data:`SHAPES`.

    Returns ``root``.
    """
    rng = np.random.default_rng(seed)
    root = Path(root)
    (root / 'annotations').mkdir(parents=True, exist_ok=True)
    categories = [dict(id=i + 1, name=n) for i, n in enumerate(SHAPES)]
    for split, count in (('train', num_train), ('val', num_val)):
        (root / split).mkdir(exist_ok=True)
        images, annotations = [], []
        for i in range(count):
            image = _background(rng, size)
            objects = _draw_objects(rng, image, max_objects)
            name = f'{split}_{i:04d}.jpg'
            image.save(root / split / name, quality=95)
            images.append(
                dict(id=i + 1, file_name=name, height=size[0], width=size[1]))
            for label, poly in objects:
                xs, ys = poly[0::2], poly[1::2]
                x0, y0 = min(xs), min(ys)
                bw, bh = max(xs) - x0, max(ys) - y0
                area = 0.5 * abs(
                    sum(xs[k] * ys[k - 1] - xs[k - 1] * ys[k]
                        for k in range(len(xs))))
                annotations.append(
                    dict(
                        id=len(annotations) + 1,
                        image_id=i + 1,
                        category_id=label + 1,
                        bbox=[x0, y0, bw, bh],
                        area=area,
                        segmentation=[poly],
                        iscrowd=0))
        with open(root / 'annotations' / f'instances_{split}.json', 'w') as f:
            json.dump(
                dict(
                    images=images,
                    annotations=annotations,
                    categories=categories), f)
    return str(root)


def make_ade20k(root: str,
                num_train: int = 16,
                num_val: int = 4,
                size: Tuple[int, int] = (128, 160),
                seed: int = 0) -> str:
    """Writes an ADE20K-layout segmentation set.

    Label PNGs hold 0 for background and ``k + 1`` for shape ``k`` (ADE20K's
    convention, read with ``reduce_zero_label=True``). Returns ``root``.
    """
    rng = np.random.default_rng(seed)
    root = Path(root)
    for split, count in (('training', num_train), ('validation', num_val)):
        img_dir = root / 'images' / split
        ann_dir = root / 'annotations' / split
        img_dir.mkdir(parents=True, exist_ok=True)
        ann_dir.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            image = _background(rng, size)
            label = Image.new('L', image.size, 0)
            objects = _draw_objects(rng, image, 4)
            draw = ImageDraw.Draw(label)
            for cls, poly in objects:
                draw.polygon(poly, fill=cls + 1)
            image.save(img_dir / f'{split}_{i:04d}.jpg', quality=95)
            label.save(ann_dir / f'{split}_{i:04d}.png')
    return str(root)


def make_imagenet(root: str,
                  per_class_train: int = 8,
                  per_class_val: int = 4,
                  size: Tuple[int, int] = (96, 96),
                  classes: Sequence[str] = SHAPES,
                  seed: int = 0) -> str:
    """Writes an ImageNet-layout classification set: ``{train,val}/<class>/``
    folders of images with one shape each, and ``meta/{train,val}.txt``
    annotation lists (``path label``, labels in ``classes`` order, as
    mmpretrain's ImageNet reads them). Returns ``root``."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    (root / 'meta').mkdir(parents=True, exist_ok=True)
    for split, count in (('train', per_class_train), ('val', per_class_val)):
        lines = []
        for label, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                image = _background(rng, size)
                h, w = size
                r = float(rng.uniform(0.2, 0.35) * min(h, w))
                cx = float(rng.uniform(r + 1, w - r - 1))
                cy = float(rng.uniform(r + 1, h - r - 1))
                ImageDraw.Draw(image).polygon(
                    _polygon(SHAPES[label % len(SHAPES)], cx, cy, r),
                    fill=COLOURS[label % len(COLOURS)])
                image.save(folder / f'{name}_{i:04d}.jpg', quality=95)
                lines.append(f'{name}/{name}_{i:04d}.jpg {label}\n')
        (root / 'meta' / f'{split}.txt').write_text(''.join(lines))
    return str(root)
