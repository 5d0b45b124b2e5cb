# Copyright (c) focal_mm contributors. All rights reserved.
"""Attention: the focal self-attention modules of a block.

:class:`FocalAttention` and :class:`FocalFastAttention` own the
projections, pooling layers and position-bias parameters; each asks the
geometry layer which token fills which key slot and hands the gathered
attention to the ops layer. May import :mod:`focal_mm.models.geometry` and
:mod:`focal_mm.ops`, never a backbone.
"""
from .focal_attention import FocalAttention
from .focal_fast_attention import FocalFastAttention

__all__ = ['FocalAttention', 'FocalFastAttention']
