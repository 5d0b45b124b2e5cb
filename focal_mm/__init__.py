# Copyright (c) focal_mm contributors. All rights reserved.
"""focal_mm: Focal Transformer backbones for OpenMMLab 2.x.

Importing the package registers the backbones of both official families,
:class:`FocalTransformer` and :class:`FocalFastTransformer`, and their
attention modules :class:`FocalAttention` and :class:`FocalFastAttention`
in MMEngine's root ``MODELS`` registry, and
:class:`RNGStateHook` in its ``HOOKS`` registry, where mmdet, mmseg and
mmpretrain configs find them by their plain names.
"""
from . import compat  # noqa: F401  (patches before anything loads checkpoints)
from .engine import RNGStateHook
from .models import (FocalAttention, FocalBackbone, FocalBlock,
                     FocalFastAttention, FocalFastTransformer,
                     FocalTransformer)

__version__ = '0.1.0'
__all__ = [
    'FocalAttention', 'FocalBackbone', 'FocalBlock', 'FocalFastAttention',
    'FocalFastTransformer', 'FocalTransformer', 'RNGStateHook', '__version__'
]
