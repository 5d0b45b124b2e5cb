# Copyright (c) focal_mm contributors. All rights reserved.
"""The registered models, in layers that import one way only:
:mod:`.backbones` -> :mod:`.attention` -> :mod:`.geometry` ->
:mod:`focal_mm.ops`, with :mod:`focal_mm.checkpoints` beside them."""
from ..ops.execution_plan import ExecutionPlan, execution_plan, forced_plan
from .attention import FocalAttention, FocalFastAttention
from .backbones import (FocalBackbone, FocalBlock, FocalFastTransformer,
                        FocalTransformer)
from .geometry import clear_geometry_caches, geometry_cache_info

__all__ = [
    'ExecutionPlan', 'FocalAttention', 'FocalBackbone', 'FocalBlock',
    'FocalFastAttention', 'FocalFastTransformer', 'FocalTransformer',
    'clear_geometry_caches', 'execution_plan', 'forced_plan',
    'geometry_cache_info'
]
