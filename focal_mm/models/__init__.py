# Copyright (c) focal_mm contributors. All rights reserved.
from .focal_attention import FocalAttention
from .focal_backbone import FocalBackbone, FocalBlock
from .focal_fast_attention import FocalFastAttention
from .focal_fast_transformer import FocalFastTransformer
from .focal_transformer import FocalTransformer

__all__ = [
    'FocalAttention', 'FocalBackbone', 'FocalBlock', 'FocalFastAttention',
    'FocalFastTransformer', 'FocalTransformer'
]
