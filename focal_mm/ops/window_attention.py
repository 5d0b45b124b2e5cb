# Copyright (c) focal_mm contributors. All rights reserved.
"""The window attention of one call, run as its execution plan says: the
entry point that both attention families call with their token tables,
gather indices, position bias and masks."""
from contextlib import nullcontext
from typing import Optional

import torch
from torch import Tensor

from .chunked_attention import (ChunkedWindowAttention, attend_chunks,
                                fused_attention, plain_attention)
from .execution_plan import ExecutionPlan
from .versions import (autocast_enabled, efficient_or_math_attention,
                       is_compiling)
from .window_chunks import Chunk, Chunks
from .window_masks import WindowMasks


def can_recompute(x: Tensor, attn_drop_rate: float, training: bool) -> bool:
    """Whether training can use :class:`ChunkedWindowAttention`: not with
    attention dropout (its backward would need the same mask), autocast
    (its backward runs outside it), while compiling or while tracing (the
    trace would hold an opaque Python op)."""
    return not (training and attn_drop_rate > 0 or autocast_enabled(
        x.device.type) or is_compiling() or torch.jit.is_tracing())


def fused_bias_grad(device: torch.device) -> bool:
    """Whether PyTorch's fused attention on ``device`` returns the gradient
    of a float ``attn_mask``: CUDA's memory-efficient kernel does, the CPU
    kernels do not."""
    return device.type == 'cuda'


def attend_windows(queries: Tensor,
                   keys: Tensor,
                   values: Tensor,
                   query_rows: Tensor,
                   key_rows: Tensor,
                   bias: Tensor,
                   masks: WindowMasks,
                   heads: int,
                   scale: float,
                   chunks: Chunks,
                   attn_drop_rate: float,
                   training: bool,
                   plan: ExecutionPlan,
                   bias_index: Optional[Tensor] = None) -> Tensor:
    """``softmax(scale * q k^T + bias + masks) v`` of every window, as rows
    of the query table, by the fastest path of ``plan`` that gives the
    gradients needed: the fused kernel chunk by chunk without gradients;
    :class:`ChunkedWindowAttention` in training where the plan recomputes
    and it can (:func:`can_recompute`); otherwise autograd over one chunk
    (the backward of every gather writes a gradient the size of the whole
    token table), through the fused kernel where it gives the gradients
    needed (:func:`fused_bias_grad`). Arguments as for
    :class:`ChunkedWindowAttention`."""
    if not torch.is_grad_enabled():
        return attend_chunks(queries, keys, values, query_rows,
                             key_rows, heads, chunks,
                             fused_attention(masks, scale), bias, bias_index)
    if plan.recompute_backward and can_recompute(queries, attn_drop_rate,
                                                 training):
        return ChunkedWindowAttention.apply(queries, keys, values, bias, masks,
                                            query_rows, key_rows, heads, scale,
                                            chunks, bias_index)
    dropout = attn_drop_rate if training else 0.
    backends = nullcontext()
    if not bias.requires_grad:
        attend = fused_attention(masks, scale, dropout)
    elif fused_bias_grad(queries.device):
        attend = fused_attention(masks, scale, dropout)
        # The kernel that returns the bias gradient (math where it cannot
        # run, e.g. a head size it does not support).
        backends = efficient_or_math_attention()
    else:
        attend = plain_attention(masks, scale, dropout)
    with backends:
        return attend_chunks(queries, keys, values, query_rows, key_rows,
                             heads, [Chunk(0, query_rows.shape[0])], attend,
                             bias, bias_index)
