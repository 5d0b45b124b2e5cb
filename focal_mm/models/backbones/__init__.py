# Copyright (c) focal_mm contributors. All rights reserved.
"""Backbones: the registered modules users build from configs.

:class:`FocalBackbone` (patch embedding, stages of blocks, norms and
outputs) and its two families, :class:`FocalTransformer` and
:class:`FocalFastTransformer`. May import the attention, geometry and ops
layers and :mod:`focal_mm.checkpoints`; nothing below imports it.
"""
from .focal_backbone import FocalBackbone, FocalBlock
from .focal_fast_transformer import FocalFastTransformer
from .focal_transformer import FocalTransformer

__all__ = [
    'FocalBackbone', 'FocalBlock', 'FocalFastTransformer', 'FocalTransformer'
]
