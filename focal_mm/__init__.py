# Copyright (c) focal_mm contributors. All rights reserved.
"""focal_mm: Focal Transformer backbones for OpenMMLab 2.x.

Importing the package registers :class:`FocalTransformer` and
:class:`FocalAttention` in MMEngine's root ``MODELS`` registry, and
:class:`RNGStateHook` in its ``HOOKS`` registry, where mmdet, mmseg and
mmpretrain configs find them by their plain names.
"""
from . import compat  # noqa: F401  (patches before anything loads checkpoints)
from .engine import RNGStateHook
from .models import FocalAttention, FocalBlock, FocalTransformer

__version__ = '0.1.0'
__all__ = [
    'FocalAttention', 'FocalBlock', 'FocalTransformer', 'RNGStateHook',
    '__version__'
]
