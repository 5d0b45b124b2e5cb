# Copyright (c) focal_mm contributors. All rights reserved.
"""One least-recently-used cache for everything the attention computes per
input size (gather indices, masks, Focal-fast's nearest tokens), bounded by
the bytes of the tensors it holds rather than by a number of entries.

Multi-scale training (the 3x recipes) feeds hundreds of padded sizes, and
the tables of one size range from kilobytes (a classification stage) to
tens of megabytes (a detection stage at 800 x 1344 with a batch of 8): a
count of entries bounds neither memory nor reuse. A new size costs one
build per block kind and stage; :func:`clear_geometry_caches` frees
everything, e.g. between experiments in one process.
"""
import time
from collections import OrderedDict
from typing import Any, Callable, Hashable, NamedTuple

import torch

# Enough for the tables of every block of a Focal-T and a Focal-fast-T
# detection backbone at about 16 of the 3x recipe's largest sizes
# (1333 x 800, batch 2): see docs/benchmark.md, "Multi-scale training".
DEFAULT_MAX_BYTES = 1024 * 2**20


def tensor_bytes(value: Any) -> int:
    """Bytes of the tensors in ``value`` (tensors, tuples, lists, dicts)."""
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, (tuple, list)):
        return sum(tensor_bytes(v) for v in value)
    if isinstance(value, dict):
        return sum(tensor_bytes(v) for v in value.values())
    return 0


class CacheInfo(NamedTuple):
    entries: int
    bytes: int
    max_bytes: int
    hits: int
    misses: int
    build_seconds: float  # spent building the missed entries


class GeometryCache:
    """Least-recently-used cache of built values, bounded by their bytes.

    Args:
        max_bytes (int): The bound; the oldest entries are evicted when a
            new one would exceed it. An entry larger than the whole bound is
            returned without being kept.
    """

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self._entries: 'OrderedDict[Hashable, Any]' = OrderedDict()
        self._sizes = {}
        self._bytes = self._hits = self._misses = 0
        self._seconds = 0.

    def get(self, key: Hashable, build: Callable[[], Any]) -> Any:
        """The value of ``key``, built by ``build()`` on a miss."""
        if key in self._entries:
            self._hits += 1
            self._entries.move_to_end(key)
            return self._entries[key]
        self._misses += 1
        start = time.perf_counter()
        # Cached tensors built under inference_mode could never be saved
        # for a later backward: always build ordinary ones.
        with torch.inference_mode(False):
            value = build()
        self._seconds += time.perf_counter() - start
        size = tensor_bytes(value)
        if size <= self.max_bytes:
            while self._entries and self._bytes + size > self.max_bytes:
                old, _ = self._entries.popitem(last=False)
                self._bytes -= self._sizes.pop(old)
            self._entries[key] = value
            self._sizes[key] = size
            self._bytes += size
        return value

    def clear(self) -> None:
        self._entries.clear()
        self._sizes.clear()
        self._bytes = self._hits = self._misses = 0
        self._seconds = 0.

    def info(self) -> CacheInfo:
        return CacheInfo(
            len(self._entries), self._bytes, self.max_bytes, self._hits,
            self._misses, self._seconds)


GEOMETRY_CACHE = GeometryCache()


def clear_geometry_caches() -> None:
    """Frees every cached per-size table of both attention families."""
    GEOMETRY_CACHE.clear()


def geometry_cache_info() -> CacheInfo:
    """Entries, bytes held, the bound, hits, misses and the seconds spent
    building since the cache was last cleared."""
    return GEOMETRY_CACHE.info()
