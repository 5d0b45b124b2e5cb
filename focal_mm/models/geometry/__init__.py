# Copyright (c) focal_mm contributors. All rights reserved.
"""Geometry: what depends only on an input size, computed once and cached.

For a padded map size and a block's options, the gather rows of every
query and key slot, the masks and the position-bias indices of both
families (:mod:`.focal_geometry`, :mod:`.focal_fast_geometry`), kept in one
bounded cache (:mod:`.geometry_cache`). Plain tensors and functions: may
import :mod:`focal_mm.ops` for the row and mask types, never a module of
the attention or backbone layers.
"""
from .geometry_cache import clear_geometry_caches, geometry_cache_info

__all__ = ['clear_geometry_caches', 'geometry_cache_info']
