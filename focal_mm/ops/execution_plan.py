# Copyright (c) focal_mm contributors. All rights reserved.
"""How the window attention runs on a device.

The arithmetic of focal attention is the same everywhere; what suits a
device is how it is cut up:

- **CPU**: attention over chunks of a few windows whose gathered keys and
  values stay in cache (2 MB in inference, 4 MB in training: measured on a
  2-core EPYC); the backward pass recomputes each chunk's weights
  (:class:`~focal_mm.ops.chunked_attention.ChunkedWindowAttention`),
  since PyTorch's fused CPU attention gives no gradient for the additive
  position bias and plain autograd would keep every weight of the map in
  main memory; rows of windows attend only the key slots they keep
  (``FocalGeometry.slot_groups``), which saves arithmetic for a few more
  small operations.
- **CUDA**: every operation is a kernel launch costing microseconds of host
  time whatever its size, so the attention of a block runs as one chunk
  (the budget is a share of the device's memory) and the slot groups are
  not used. Training takes plain autograd through PyTorch's memory-efficient
  attention, which accepts a float bias and returns its gradient: its fused
  backward kernel replaces the recomputing backward's dozen operations per
  chunk (gathers, five matrix products, the softmax backward, scatters),
  keeping the weights out of memory all the same. What it keeps instead
  are the gathered keys and values of each block until the backward pass;
  ``with_cp`` trades them for recomputation.

``attn_chunk_bytes`` (a backbone and attention argument) overrides the
chunk budget on any device; :func:`forced_plan` runs another device's plan,
e.g. to count the CUDA plan's operations on a CPU.
"""
import sys
from contextlib import contextmanager
from functools import lru_cache
from typing import Iterator, NamedTuple, Optional

import torch

from .versions import is_exporting

CPU_CHUNK_BYTES = 2 * 2**20
CPU_TRAINING_CHUNK_BYTES = 4 * 2**20
# A chunk's largest tensor may take this share of a CUDA device's memory:
# 4.4 GB on an H200, enough for a stage-1 block of Focal-T at 2 x 800x1344
# (about 0.85 GB of gathered keys and values) in one chunk, 1 GB on a 32 GB
# V100.
CUDA_MEMORY_SHARE = 1 / 32


class ExecutionPlan(NamedTuple):
    """How the window attention of one call runs.

    Attributes:
        chunk_bytes (int): Inference budget of a chunk's largest per-window
            tensor (gathered keys and values, or attention weights).
        training_chunk_bytes (int): The same in training.
        recompute_backward (bool): Training uses the recomputing backward;
            otherwise plain autograd over one chunk.
        crop_slots (bool): Rows of windows attend only the key slots on the
            pooled grid (Focal's slot groups).
        fused_qkv (bool): One projection of the map with the whole ``qkv``
            layer (and one of the pooled tokens), read through strided views,
            instead of one per query, key and value part.
    """
    chunk_bytes: int
    training_chunk_bytes: int
    recompute_backward: bool
    crop_slots: bool
    fused_qkv: bool

    def windows_per_chunk(self, channels: int, heads: int, queries: int,
                          keys: int, element_size: int) -> int:
        """How many windows fill a chunk, sized by the largest per-window
        tensor. Under ``torch.export`` (ONNX export) every window is in one
        chunk: a graph holds a copy of the loop body per chunk (Focal-T at
        800x1216: 20,000 nodes instead of 1,300)."""
        if is_exporting():
            return sys.maxsize
        per_window = max(2 * channels, heads * queries) * keys * element_size
        budget = self.training_chunk_bytes if torch.is_grad_enabled() \
            else self.chunk_bytes
        return max(budget // per_window, 1)


CPU_PLAN = ExecutionPlan(
    chunk_bytes=CPU_CHUNK_BYTES,
    training_chunk_bytes=CPU_TRAINING_CHUNK_BYTES,
    recompute_backward=True,
    crop_slots=True,
    fused_qkv=False)


@lru_cache(maxsize=None)
def cuda_plan(total_memory: int) -> ExecutionPlan:
    """The plan of a CUDA device with ``total_memory`` bytes."""
    budget = int(total_memory * CUDA_MEMORY_SHARE)
    return ExecutionPlan(
        chunk_bytes=budget,
        training_chunk_bytes=budget,
        recompute_backward=False,
        crop_slots=False,
        fused_qkv=True)


@lru_cache(maxsize=None)
def _cuda_total_memory(index: int) -> int:
    # Device properties come from the driver: no synchronisation.
    return torch.cuda.get_device_properties(index).total_memory


_FORCED: Optional[ExecutionPlan] = None


@contextmanager
def forced_plan(plan: ExecutionPlan) -> Iterator[None]:
    """Runs every window attention with ``plan``, whatever its device
    (``attn_chunk_bytes`` still overrides its budget)."""
    global _FORCED
    previous, _FORCED = _FORCED, plan
    try:
        yield
    finally:
        _FORCED = previous


def check_chunk_bytes(value: Optional[int]) -> Optional[int]:
    """Returns ``value`` if it is None or a positive int, else raises
    ValueError naming ``attn_chunk_bytes``."""
    if value is not None and (isinstance(value, bool)
                              or not isinstance(value, int) or value < 1):
        raise ValueError('attn_chunk_bytes must be None (the default of the '
                         'device) or a positive number of bytes, got '
                         f'{value!r}')
    return value


def execution_plan(device: torch.device,
                   chunk_bytes: Optional[int] = None) -> ExecutionPlan:
    """The plan of ``device`` (or the forced one), with ``chunk_bytes``
    (when given) as its budget in inference and training."""
    if _FORCED is not None:
        plan = _FORCED
    elif device.type == 'cuda':
        index = device.index if device.index is not None \
            else torch.cuda.current_device()
        plan = cuda_plan(_cuda_total_memory(index))
    else:
        plan = CPU_PLAN
    if chunk_bytes is not None:
        plan = plan._replace(
            chunk_bytes=chunk_bytes, training_chunk_bytes=chunk_bytes)
    return plan
