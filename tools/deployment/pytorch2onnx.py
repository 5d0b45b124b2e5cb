#!/usr/bin/env python
"""Exports a Focal model to ONNX for one fixed input size, runs the file in
ONNX Runtime (CPU) and compares it with PyTorch on the same random input.

    python tools/deployment/pytorch2onnx.py CONFIG CHECKPOINT --shape H W \\
        --out FILE.onnx [--batch B] [--benchmark N]

What is exported, for either Focal family (FocalTransformer,
FocalFastTransformer):

- an mmpretrain config (configs/focal_*_in1k.py): the whole classifier,
  ``image`` ``(B, 3, H, W)`` to ``logits`` ``(B, classes)``;
- an mmdet or mmseg config: the backbone only, ``image`` to one output per
  stage in ``out_indices``, named ``stage{i}``, ``(B, C_i, H_i, W_i)``.
  Whole detectors and segmentors do not export with this tool: their
  post-processing (RoI heads, NMS, mask pasting, resizing to the original
  image) is left to mmdet / mmseg.

The image is normalised as the config's data preprocessor does; that step is
not in the graph.

Fixed size: the gather indices of the attention windows, the masks and the
position-bias indices depend on the map size; they are computed once in
PyTorch and stored in the graph as constants. That is why ``--shape`` is
required: the file accepts inputs of exactly ``(B, 3, H, W)`` and no other
(no dynamic shapes; export one file per size).

CHECKPOINT: an official ImageNet release file (for an mmpretrain config,
converted as tools/test.py does), a converted or trained whole-model
checkpoint, a local path or an http(s) URL; for a detection or segmentation
backbone anything its init_cfg takes. ``none`` exports the weights as
constructed (random), to check the export itself.

Check: the largest absolute difference ``max|onnx - torch|`` of each output
and the relative one, ``max|onnx - torch| / max|torch|`` (per output, over
all its elements). The tool exits with status 1 when a relative difference
is above ``--tolerance`` (default 1e-4). ``--benchmark N`` adds a timing line:
N paired repeats of PyTorch eager and ONNX Runtime on the same input.
"""
import argparse
import os
import os.path as osp
import sys

import torch

from focal_mm.checkpoints.pretrained import missing_local_file
from focal_mm.deployment import (benchmark_onnx, build_exportable, compare,
                                 export_onnx, run_onnx)
from focal_mm.deployment.runtime import make_session

RANDOM_WEIGHTS = 'none'


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f'expected a positive integer, got {text!r}') from None
    if value < 1:
        raise argparse.ArgumentTypeError(
            f'expected a positive integer, got {value}')
    return value


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog='The graph is for the --shape it was exported at only: the '
        'per-size index tables (window gathers, masks, position-bias '
        'indices) are constants of the graph.')
    parser.add_argument('config', help='mmpretrain, mmdet or mmseg config')
    parser.add_argument(
        'checkpoint',
        help='checkpoint file or URL (official release, converted or trained '
        f'model), or "{RANDOM_WEIGHTS}" for the weights as constructed')
    parser.add_argument(
        '--shape',
        type=positive_int,
        nargs=2,
        required=True,
        metavar=('H', 'W'),
        help='input height and width; the graph is for this size only')
    parser.add_argument('--out', required=True, help='the .onnx file to write')
    parser.add_argument(
        '--batch', type=positive_int, default=1, help='batch size')
    parser.add_argument(
        '--tolerance',
        type=float,
        default=1e-4,
        help='largest accepted relative difference to PyTorch')
    parser.add_argument(
        '--seed', type=int, default=0, help='seed of the random input')
    parser.add_argument(
        '--benchmark',
        type=int,
        default=0,
        metavar='N',
        help='also time N paired repeats of PyTorch eager and ONNX Runtime')
    parser.add_argument('--opset', type=int, default=18, help='ONNX opset')
    args = parser.parse_args(argv)
    if not args.out.endswith('.onnx'):
        parser.error(f'--out must be a .onnx file, got {args.out}')
    if args.benchmark < 0:
        parser.error(f'--benchmark must be >= 0, got {args.benchmark}')
    if not osp.isfile(args.config):
        parser.error(f'config {args.config} does not exist')
    if args.checkpoint == RANDOM_WEIGHTS:
        args.checkpoint = None
    elif missing_local_file(args.checkpoint):
        parser.error(f'checkpoint {args.checkpoint} does not exist (give '
                     f'"{RANDOM_WEIGHTS}" to export random weights)')
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    exportable = build_exportable(args.config, args.checkpoint)
    height, width = args.shape
    image = torch.randn(
        args.batch,
        3,
        height,
        width,
        generator=torch.Generator().manual_seed(args.seed))
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    reference = export_onnx(exportable.model, image, args.out,
                            exportable.output_names, args.opset)
    print(f'Wrote {args.out}: {type(exportable.backbone).__name__} '
          f'{exportable.kind}, input "image" {tuple(image.shape)} (this size '
          'only)')

    session = make_session(args.out)
    differences = compare(
        run_onnx(session, image), reference, exportable.output_names)
    print('ONNX Runtime against PyTorch (relative: max|onnx - torch| / '
          'max|torch| per output):')
    for d, ref in zip(differences, reference):
        print(f'  {d.name} {tuple(ref.shape)}: max abs {d.max_abs:.3g}, '
              f'max rel {d.max_rel:.3g}')
    bad = [d for d in differences if not d.max_rel <= args.tolerance]
    if bad:  # (NaN is never <= the tolerance)
        sys.exit(f'FAILED: relative difference of {bad[0].name} '
                 f'{bad[0].max_rel:.3g} above the tolerance '
                 f'{args.tolerance:g}')
    print(f'OK: largest relative difference '
          f'{max(d.max_rel for d in differences):.3g} <= '
          f'{args.tolerance:g}')
    if args.benchmark:
        speed = benchmark_onnx(
            exportable.model, session, image, repeats=args.benchmark)
        print(f'Speed: {speed.summary()}')


if __name__ == '__main__':
    main()
