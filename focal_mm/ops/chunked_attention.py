# Copyright (c) focal_mm contributors. All rights reserved.
"""Attention of query windows over gathered keys, a chunk of windows at a
time, and :class:`ChunkedWindowAttention`, whose backward pass recomputes
each chunk's weights.

On a CPU, gathering the keys of a whole map at once costs more than
attending them (about 4.7 times the map, most of it fresh memory being paged
in); per chunk they stay in cache and the allocator reuses them. Plain
autograd would also keep the ``windows x heads x L x N`` weights of the
whole map and run every step of the backward over them in main memory;
here the forward runs the fused kernel, and the backward recomputes each
chunk's weights and sums the gradient of the additive bias chunk by chunk.

Both attention families use it. Focal attention adds one position bias
``(1, heads, L, N)`` to every window (plus constant masks); Focal-fast
attention gives every window its own bias, gathered per chunk from a small
``(heads, L, D)`` table by a per-window column index (:func:`chunk_bias`),
broadcast where a chunk's windows share their index row.
"""
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from .window_chunks import Chunk, Chunks
from .window_masks import (WindowMasks, add_bias_grad, chunk_bias,
                           cropped_biases)


def gather_windows(table: Tensor, rows: Tensor, num: int,
                   heads: int) -> Tensor:
    """``(num, heads, len, d)`` from the rows of a ``(T, heads * d)`` table."""
    out = table.index_select(0, rows)
    return out.view(num, -1, heads, table.shape[1] // heads).transpose(1, 2)


def windows_to_rows(x: Tensor) -> Tensor:
    """``(num, heads, len, d)`` to ``(num * len, heads * d)`` rows."""
    return x.transpose(1, 2).reshape(-1, x.shape[1] * x.shape[3])


# attend(q, k, v, bias, chunk): attention of the (n, heads, L, d) queries
# of the windows of chunk over their (n, heads, N, d) keys and values, with
# their position bias (of chunk_bias).
Attend = Callable[[Tensor, Tensor, Tensor, Tensor, Chunk], Tensor]


def attention_weights(q: Tensor, k: Tensor, bias: Tensor, masks: WindowMasks,
                      chunk: Chunk) -> Tensor:
    """``softmax(q k^T + bias + masks)`` of the windows of ``chunk`` from
    scaled queries (the masks go in place: no second logits-sized tensor)."""
    logits = torch.add(q @ k.transpose(-2, -1), bias)
    return masks.add_to(logits, chunk).softmax(-1)


def attend_chunks(queries: Tensor,
                  keys: Tensor,
                  values: Tensor,
                  query_rows: Tensor,
                  key_rows: Tensor,
                  heads: int,
                  chunks: Chunks,
                  attend: Attend,
                  bias: Tensor,
                  bias_index: Optional[Tensor] = None) -> Tensor:
    """Runs ``attend`` chunk by chunk on the gathered windows and writes
    each chunk's output straight to its rows of a query-sized table."""
    out = queries.new_empty(queries.shape)
    cropped = cropped_biases(bias, chunks) if bias_index is None else None
    for chunk, q_rows, k_rows in _chunk_rows(query_rows, key_rows, chunks):
        n = chunk.stop - chunk.start
        out.index_copy_(
            0, q_rows,
            windows_to_rows(
                attend(
                    gather_windows(queries, q_rows, n, heads),
                    gather_windows(keys, k_rows, n, heads),
                    gather_windows(values, k_rows, n, heads),
                    chunk_bias(bias, bias_index, chunk, cropped), chunk)))
    return out


def fused_attention(masks: WindowMasks,
                    scale: float,
                    dropout: float = 0.) -> Attend:
    """PyTorch's fused attention with the position bias and masks (a
    gradient for the bias only on devices whose kernel gives one, see
    ``window_attention.fused_bias_grad``)."""

    def attend(q, k, v, bias, chunk):
        return F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=masks.with_bias(bias, chunk),
            dropout_p=dropout,
            scale=scale)

    return attend


def plain_attention(masks: WindowMasks,
                    scale: float,
                    dropout: float = 0.) -> Attend:
    """Attention in plain autograd (gradients for everything; PyTorch's math
    fallback would add checks for fully masked rows, which cannot occur
    here)."""

    def attend(q, k, v, bias, chunk):
        attn = attention_weights(q * scale, k, bias, masks, chunk)
        if dropout:
            attn = F.dropout(attn, dropout)
        return attn @ v

    return attend


class ChunkedWindowAttention(torch.autograd.Function):
    """``softmax(scale * q k^T + bias) v`` for every window, chunk by chunk.

    Inputs are the token tables (queries ``(B * HW, heads * d)``, keys and
    values ``(B * T, heads * d)``), the position bias (``(1, heads, L, N)``
    shared by all windows, or a ``(heads, L, D)`` table with ``bias_index``,
    see :func:`chunk_bias`), the constant :class:`WindowMasks`, the table row
    of every query and key slot (``(B * nW, L)`` and ``(B * nW, N)``), the
    chunks (of :func:`window_chunks` or :func:`run_chunks`) and the optional
    ``(B * nW, N)`` bias index. Returns the outputs as rows of the query
    table.
    """

    @staticmethod
    def forward(ctx,
                queries,
                keys,
                values,
                bias,
                masks: WindowMasks,
                query_rows,
                key_rows,
                heads: int,
                scale: float,
                chunks: Chunks,
                bias_index=None):
        # The forward needs no weights: the fused kernel computes them.
        out = attend_chunks(queries, keys, values, query_rows,
                            key_rows, heads, chunks,
                            fused_attention(masks, scale), bias, bias_index)
        ctx.save_for_backward(queries, keys, values, bias, query_rows,
                              key_rows, bias_index)
        ctx.masks, ctx.heads, ctx.scale = masks, heads, scale
        ctx.chunks = chunks
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        (queries, keys, values, bias, query_rows, key_rows,
         bias_index) = ctx.saved_tensors
        heads, scale = ctx.heads, ctx.scale
        grad_q = torch.empty_like(queries)
        grad_k, grad_v = torch.zeros_like(keys), torch.zeros_like(values)
        grad_bias = torch.zeros_like(bias)
        grad_out = grad_out.contiguous()
        cropped = cropped_biases(bias, ctx.chunks) \
            if bias_index is None else None
        for chunk, q_rows, k_rows in _chunk_rows(query_rows, key_rows,
                                                 ctx.chunks):
            n = chunk.stop - chunk.start
            q, k, attn = _chunk_weights(
                queries, keys, chunk_bias(bias, bias_index, chunk, cropped),
                ctx.masks, q_rows, k_rows, heads, scale, chunk)
            v = gather_windows(values, k_rows, n, heads)
            d_out = gather_windows(grad_out, q_rows, n, heads)
            grad_v.index_add_(0, k_rows,
                              windows_to_rows(attn.transpose(-2, -1) @ d_out))
            d_logits = torch._softmax_backward_data(
                d_out @ v.transpose(-2, -1), attn, -1, attn.dtype)
            add_bias_grad(grad_bias, d_logits, bias_index, chunk)
            # Every query slot is a different row: a copy, not a sum.
            grad_q.index_copy_(0, q_rows,
                               windows_to_rows(d_logits @ k) * scale)
            grad_k.index_add_(0, k_rows,
                              windows_to_rows(d_logits.transpose(-2, -1) @ q))
        return (grad_q, grad_k, grad_v, grad_bias) + (None, ) * 7


def _chunk_rows(query_rows: Tensor, key_rows: Tensor, chunks: Chunks):
    """Each chunk with the rows of its query and key slots, flat."""
    for chunk in chunks:
        k_rows = key_rows[chunk.start:chunk.stop]
        if chunk.cols is not None:
            k_rows = k_rows.index_select(1, chunk.cols)
        yield (chunk, query_rows[chunk.start:chunk.stop].view(-1),
               k_rows.reshape(-1))


def _chunk_weights(queries, keys, bias, masks, q_rows, k_rows, heads, scale,
                   chunk):
    """Scaled queries, keys and attention weights of the windows of
    ``chunk`` (``bias`` is theirs, of :func:`chunk_bias`)."""
    n = chunk.stop - chunk.start
    q = gather_windows(queries, q_rows, n, heads) * scale
    k = gather_windows(keys, k_rows, n, heads)
    return q, k, attention_weights(q, k, bias, masks, chunk)
