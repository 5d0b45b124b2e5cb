#!/usr/bin/env python
"""Converts an official Focal Transformer checkpoint to focal_mm's format.

    python tools/model_converters/focal2mm.py focal-tiny-is224-ws7.pth out.pth
    python tools/model_converters/focal2mm.py IN OUT --backbone-only

``IN`` is an official release file (local or URL) or PaddleViT's port of one
(a local ``.pdparams`` file, read without Paddle: docs/paddle_checkpoints.md).

By default the output holds a whole mmpretrain ``ImageClassifier``
(``backbone.*``, ``head.fc.*``), ready for ``tools/test.py`` with the
``configs/focal_*_in1k.py`` configs; ``--backbone-only`` writes just the
backbone, for ``init_cfg=dict(type='Pretrained', checkpoint=...)``. The output
is a plain dict of tensors under ``state_dict``: it loads with
``torch.load(..., weights_only=True)``.
"""
import argparse
import sys

import torch

from focal_mm.checkpoints.official import (is_official_state_dict,
                                           official_to_backbone,
                                           official_to_mmpretrain)
from focal_mm.checkpoints.pretrained import extract_state_dict, read_checkpoint


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        'src', help='official checkpoint (.pth or URL) or PaddleViT port '
        '(.pdparams)')
    parser.add_argument('dst', help='where to write the converted file')
    parser.add_argument(
        '--backbone-only',
        action='store_true',
        help='write only the backbone (no "backbone." prefix, no head)')
    parser.add_argument(
        '--trust-pickle',
        action='store_true',
        help='allow a checkpoint that carries pickled Python objects (this '
        'runs code from the file: only for files you trust)')
    return parser.parse_args(argv)


def load_official(path: str, trust_pickle: bool = False) -> dict:
    try:
        checkpoint = read_checkpoint(path, trust_pickle)
    except (ValueError, OSError) as err:  # OSError: missing file, download
        raise SystemExit(str(err)) from None
    state_dict = extract_state_dict(checkpoint)
    if not is_official_state_dict(state_dict):
        raise SystemExit(f'{path} is not an official Focal Transformer '
                         'checkpoint (no "layers.0.blocks." keys)')
    return state_dict


def main(argv=None) -> None:
    args = parse_args(argv)
    state_dict = load_official(args.src, args.trust_pickle)
    convert = official_to_backbone if args.backbone_only \
        else official_to_mmpretrain
    converted = {k: v.contiguous() for k, v in convert(state_dict).items()}
    torch.save({'state_dict': converted}, args.dst)
    print(f'Wrote {len(converted)} tensors to {args.dst}')


if __name__ == '__main__':
    sys.exit(main())
