# Copyright (c) focal_mm contributors. All rights reserved.
from .focal_attention import FocalAttention
from .focal_transformer import FocalBlock, FocalTransformer

__all__ = ['FocalAttention', 'FocalBlock', 'FocalTransformer']
