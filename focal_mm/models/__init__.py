# Copyright (c) focal_mm contributors. All rights reserved.
from .execution_plan import ExecutionPlan, execution_plan, forced_plan
from .focal_attention import FocalAttention
from .focal_backbone import FocalBackbone, FocalBlock
from .focal_fast_attention import FocalFastAttention
from .focal_fast_transformer import FocalFastTransformer
from .focal_transformer import FocalTransformer
from .geometry_cache import clear_geometry_caches, geometry_cache_info

__all__ = [
    'ExecutionPlan', 'FocalAttention', 'FocalBackbone', 'FocalBlock',
    'FocalFastAttention', 'FocalFastTransformer', 'FocalTransformer',
    'clear_geometry_caches', 'execution_plan', 'forced_plan',
    'geometry_cache_info'
]
