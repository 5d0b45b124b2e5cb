# Copyright (c) focal_mm contributors. All rights reserved.
"""Keeps mmengine 0.10.7 checkpoints loadable under torch >= 2.6.

torch 2.6 made ``torch.load`` default to ``weights_only=True``, and mmengine
0.10.7 (its last release) does not pass the argument. Its own checkpoints
hold a few non-tensor types, so ``--resume``, ``load_from`` and
``tools/test.py`` fail with "Unsupported global". Rather than switching safe
loading off, this allow-lists exactly those types
(:mod:`focal_mm.checkpoints.safe_globals`): anything else a pickle asks for
is still refused.

Before torch 2.6 there is nothing to do here (and the ``getattr`` stand-in
could not be registered): ``torch.load`` defaults to ``weights_only=False``
there, so mmengine reads its checkpoints as it always did, with the trust in
the file that implies. focal_mm's own reader refuses pickled code on every
torch (:func:`focal_mm.checkpoints.pretrained.read_checkpoint`).
"""
from .checkpoints.safe_globals import register_with_torch
from .ops.versions import SAFE_GLOBALS_TORCH, TORCH

if TORCH >= SAFE_GLOBALS_TORCH:
    register_with_torch()
