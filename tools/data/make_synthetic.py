#!/usr/bin/env python
"""Generates a small synthetic dataset (no download needed).

    python tools/data/make_synthetic.py coco data/shapes_coco
    python tools/data/make_synthetic.py ade20k data/shapes_ade20k
    python tools/data/make_synthetic.py imagenet data/shapes_imagenet
"""
import argparse

from focal_mm import synthetic_data

MAKERS = {
    'coco': synthetic_data.make_coco,
    'ade20k': synthetic_data.make_ade20k,
    'imagenet': synthetic_data.make_imagenet,
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('layout', choices=sorted(MAKERS))
    parser.add_argument('out', help='folder to write')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    root = MAKERS[args.layout](args.out, seed=args.seed)
    print(f'Wrote a synthetic {args.layout}-layout dataset to {root}')


if __name__ == '__main__':
    main()
