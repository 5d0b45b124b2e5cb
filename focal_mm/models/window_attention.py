# Copyright (c) focal_mm contributors. All rights reserved.
"""Attention of query windows over gathered keys, a chunk of windows at a
time, with a backward pass that recomputes each chunk's weights.

Gathering the keys of a whole map at once costs more than attending them
(about 4.7 times the map, most of it fresh memory being paged in); per chunk
they stay in cache and the allocator reuses them. Plain autograd would also
keep the ``windows x heads x L x N`` weights of the whole map and run every
step of the backward over them in main memory; here the forward runs the
fused kernel, and the backward recomputes each chunk's weights and sums the
gradient of the additive bias chunk by chunk.
"""
from typing import Callable, Iterator, List, NamedTuple, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

Chunks = List[Tuple[int, int]]


def window_chunks(num_windows: int, per_image: int,
                  size: int) -> Iterator[Tuple[int, int]]:
    """``(start, stop)`` ranges of at most ``size`` windows (at least one)
    that either lie in one image or hold whole images, so that per-window
    masks can be sliced or repeated for them (:func:`of_windows`)."""
    size = max(size, 1)
    if size < per_image:
        for image in range(0, num_windows, per_image):
            for start in range(image, image + per_image, size):
                yield start, min(start + size, image + per_image)
    else:
        step = size // per_image * per_image
        for start in range(0, num_windows, step):
            yield start, min(start + step, num_windows)


def of_windows(x: Tensor, start: int, stop: int) -> Tensor:
    """Windows ``start:stop`` (batch-major) of a per-window tensor of one
    image ``(nW, ...)``, sliced or repeated."""
    per_image = x.shape[0]
    first = start % per_image
    if first + stop - start <= per_image:
        return x[first:first + stop - start]
    return x.repeat((stop - start) // per_image, *(1, ) * (x.dim() - 1))


class WindowMasks(NamedTuple):
    """Constant additive logit masks of the windows of one image.

    ``key`` ``(nW, N)`` masks key slots of a window (padded pooled slots),
    ``region`` ``(nW, L, L)`` masks own-window keys from queries of another
    shifted-window region (the first ``L`` key slots); either may be None.
    They stay per window and are added chunk by chunk, so the shared
    position bias ``(1, heads, L, N)`` is never expanded to the whole map.
    """
    key: Optional[Tensor] = None
    region: Optional[Tensor] = None

    def add_to(self, logits: Tensor, start: int, stop: int) -> Tensor:
        """Adds the masks of windows ``start:stop`` to ``(n, heads, L, N)``
        logits in place."""
        if self.key is not None:
            logits += self._key(start, stop)
        return self._add_region(logits, start, stop)

    def with_bias(self, bias: Tensor, start: int, stop: int) -> Tensor:
        """``bias`` ``(1, heads, L, N)`` plus the masks of windows
        ``start:stop``: ``(n, heads, L, N)``, or ``bias`` itself when there
        are no masks (a fused kernel broadcasts it)."""
        if self.key is None and self.region is None:
            return bias
        out = bias.repeat(stop - start, 1, 1, 1) if self.key is None \
            else bias + self._key(start, stop)
        return self._add_region(out, start, stop)

    def _key(self, start: int, stop: int) -> Tensor:
        return of_windows(self.key, start, stop)[:, None, None]

    def _add_region(self, logits: Tensor, start: int, stop: int) -> Tensor:
        if self.region is not None:
            region = of_windows(self.region, start, stop)[:, None]
            logits[..., :region.shape[-1]] += region
        return logits


def gather_windows(table: Tensor, rows: Tensor, num: int,
                   heads: int) -> Tensor:
    """``(num, heads, len, d)`` from the rows of a ``(T, heads * d)`` table."""
    out = table.index_select(0, rows)
    return out.view(num, -1, heads, table.shape[1] // heads).transpose(1, 2)


def windows_to_rows(x: Tensor) -> Tensor:
    """``(num, heads, len, d)`` to ``(num * len, heads * d)`` rows."""
    return x.transpose(1, 2).reshape(-1, x.shape[1] * x.shape[3])


# attend(q, k, v, start, stop): attention of the (n, heads, L, d) queries of
# windows start:stop over their (n, heads, N, d) keys and values.
Attend = Callable[[Tensor, Tensor, Tensor, int, int], Tensor]


def attention_weights(q: Tensor, k: Tensor, bias: Tensor, masks: WindowMasks,
                      start: int, stop: int) -> Tensor:
    """``softmax(q k^T + bias + masks)`` of windows ``start:stop`` from
    scaled queries (the masks go in place: no second logits-sized tensor)."""
    logits = torch.add(q @ k.transpose(-2, -1), bias)
    return masks.add_to(logits, start, stop).softmax(-1)


def attend_chunks(queries: Tensor, keys: Tensor, values: Tensor,
                  query_rows: Tensor, key_rows: Tensor, heads: int,
                  chunks: Chunks, attend: Attend) -> Tensor:
    """Runs ``attend`` chunk by chunk on the gathered windows and writes
    each chunk's output straight to its rows of a query-sized table."""
    out = queries.new_empty(queries.shape)
    for start, stop, q_rows, k_rows in _chunk_rows(query_rows, key_rows,
                                                   chunks):
        n = stop - start
        out.index_copy_(
            0, q_rows,
            windows_to_rows(
                attend(
                    gather_windows(queries, q_rows, n, heads),
                    gather_windows(keys, k_rows, n, heads),
                    gather_windows(values, k_rows, n, heads), start, stop)))
    return out


def fused_attention(bias: Tensor, masks: WindowMasks, scale: float) -> Attend:
    """PyTorch's fused attention with the position bias and masks (no
    gradient for the bias)."""

    def attend(q, k, v, start, stop):
        return F.scaled_dot_product_attention(
            q, k, v, attn_mask=masks.with_bias(bias, start, stop), scale=scale)

    return attend


class ChunkedWindowAttention(torch.autograd.Function):
    """``softmax(scale * q k^T + bias) v`` for every window, chunk by chunk.

    Inputs are the token tables (queries ``(B * HW, heads * d)``, keys and
    values ``(B * T, heads * d)``), the position bias ``(1, heads, L, N)``,
    the constant :class:`WindowMasks`, the table row of every query and key
    slot (``(B * nW, L)`` and ``(B * nW, N)``) and the chunks of
    :func:`window_chunks`. Returns the outputs as rows of the query table.
    """

    @staticmethod
    def forward(ctx, queries, keys, values, bias, masks: WindowMasks,
                query_rows, key_rows, heads: int, scale: float,
                chunks: Chunks):
        # The forward needs no weights: the fused kernel computes them.
        out = attend_chunks(queries, keys, values, query_rows, key_rows, heads,
                            chunks, fused_attention(bias, masks, scale))
        ctx.save_for_backward(queries, keys, values, bias, query_rows,
                              key_rows)
        ctx.masks, ctx.heads, ctx.scale = masks, heads, scale
        ctx.chunks = chunks
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        queries, keys, values, bias, query_rows, key_rows = ctx.saved_tensors
        heads, scale = ctx.heads, ctx.scale
        grad_q = torch.empty_like(queries)
        grad_k, grad_v = torch.zeros_like(keys), torch.zeros_like(values)
        grad_bias = torch.zeros_like(bias)
        grad_out = grad_out.contiguous()
        for start, stop, q_rows, k_rows in _chunk_rows(query_rows, key_rows,
                                                       ctx.chunks):
            q, k, attn = _chunk_weights(queries, keys, bias, ctx.masks, q_rows,
                                        k_rows, heads, scale, start, stop)
            v = gather_windows(values, k_rows, stop - start, heads)
            d_out = gather_windows(grad_out, q_rows, stop - start, heads)
            grad_v.index_add_(0, k_rows,
                              windows_to_rows(attn.transpose(-2, -1) @ d_out))
            d_logits = torch._softmax_backward_data(
                d_out @ v.transpose(-2, -1), attn, -1, attn.dtype)
            grad_bias += d_logits.sum(0, keepdim=True)
            # Every query slot is a different row: a copy, not a sum.
            grad_q.index_copy_(0, q_rows,
                               windows_to_rows(d_logits @ k) * scale)
            grad_k.index_add_(0, k_rows,
                              windows_to_rows(d_logits.transpose(-2, -1) @ q))
        return (grad_q, grad_k, grad_v, grad_bias) + (None, ) * 6


def _chunk_rows(query_rows: Tensor, key_rows: Tensor, chunks: Chunks):
    """Each chunk with the rows of its query and key slots, flat."""
    for start, stop in chunks:
        yield (start, stop, query_rows[start:stop].view(-1),
               key_rows[start:stop].view(-1))


def _chunk_weights(queries, keys, bias, masks, q_rows, k_rows, heads, scale,
                   start, stop):
    """Scaled queries, keys and attention weights of windows
    ``start:stop``."""
    n = stop - start
    q = gather_windows(queries, q_rows, n, heads) * scale
    k = gather_windows(keys, k_rows, n, heads)
    return q, k, attention_weights(q, k, bias, masks, start, stop)
