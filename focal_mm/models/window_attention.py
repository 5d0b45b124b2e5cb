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

Both attention families use it. Focal attention adds one position bias
``(1, heads, L, N)`` to every window (plus constant masks); Focal-fast
attention gives every window its own bias, gathered per chunk from a small
``(heads, L, D)`` table by a per-window column index (:func:`chunk_bias`),
broadcast where a chunk's windows share their index row.
"""
import sys
from typing import (Callable, Dict, Iterator, List, NamedTuple, Optional,
                    Sequence)

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor


class Chunk(NamedTuple):
    """Windows ``start:stop`` (rows of the query and key row tables),
    attended together. With a per-window bias index (see
    :func:`chunk_bias`), ``shared_bias`` says that all of them have the
    index row of the first, whose bias is then broadcast. ``cols`` (with a
    shared bias) are the key slots the windows attend, leaving out slots
    that all of them mask (None: every slot); ``group`` numbers the slot
    group they come from, whose bias is cropped once per call
    (:func:`cropped_biases`)."""
    start: int
    stop: int
    shared_bias: bool = False
    cols: Optional[Tensor] = None
    group: Optional[int] = None


Chunks = List[Chunk]


class SlotGroup(NamedTuple):
    """Windows ``start:stop`` of an image that attend the key slot columns
    ``cols`` (None: all of them)."""
    start: int
    stop: int
    cols: Optional[Tensor]


def window_chunks(
        num_windows: int,
        per_image: int,
        size: int,
        slot_groups: Optional[Sequence[SlotGroup]] = None) -> Iterator[Chunk]:
    """Chunks of at most ``size`` windows (at least one) of batch-major
    windows that either lie in one image or hold whole images, so that
    per-window masks can be sliced or repeated for them
    (:func:`of_windows`). Where chunks lie in one image and ``slot_groups``
    are given, no chunk crosses a group, and each attends its group's
    columns."""
    size = max(size, 1)
    if size < per_image:
        groups = slot_groups or [SlotGroup(0, per_image, None)]
        for image in range(0, num_windows, per_image):
            for group, (first, stop, cols) in enumerate(groups):
                for start in range(image + first, image + stop, size):
                    yield Chunk(
                        start,
                        min(start + size, image + stop),
                        cols=cols,
                        group=group)
    else:
        step = size // per_image * per_image
        for start in range(0, num_windows, step):
            yield Chunk(start, min(start + step, num_windows))


def run_chunks(runs: Sequence[int], batch: int, size: int) -> Chunks:
    """Chunks of at most ``size`` windows (at least one) of window-major
    windows (the ``batch`` images of a window next to each other) whose
    windows come in ``runs`` that share one bias index row. A run that
    fills at least half a chunk gets chunks of its own, which broadcast one
    bias; smaller runs are grouped and gather theirs."""
    size = max(size, 1)
    chunks: Chunks = []
    start = pos = grouped = 0
    for run in runs:
        rows = run * batch
        if 2 * rows >= size or pos + rows - start > size:
            if pos > start:
                chunks.append(Chunk(start, pos, grouped == 1))
            start, grouped = pos, 0
        if 2 * rows >= size:
            parts = -(-rows // size)
            chunks.extend(
                Chunk(pos + rows * i // parts, pos + rows *
                      (i + 1) // parts, True) for i in range(parts))
            start = pos + rows
        else:
            grouped += 1
        pos += rows
    if pos > start:
        chunks.append(Chunk(start, pos, grouped == 1))
    return chunks


def batched_rows(index: Tensor, batch: int, rows_per_item: int) -> Tensor:
    """``(nW, n)`` ``index`` repeated for every batch item, offset to its
    rows: ``(B * nW, n)``, batch-major."""
    if batch == 1:
        return index
    offsets = torch.arange(batch, device=index.device) * rows_per_item
    return (offsets[:, None, None] + index[None]).flatten(0, 1)


def window_major_rows(index: Tensor, batch: int, rows_per_item: int) -> Tensor:
    """Like :func:`batched_rows`, window-major: ``(nW * B, n)``, the rows
    of every image of a window next to each other."""
    if batch == 1:
        return index
    offsets = torch.arange(batch, device=index.device) * rows_per_item
    return (index[:, None] + offsets[None, :, None]).flatten(0, 1)


# Attention runs over this many bytes of windows at a time (gathered keys and
# values or attention weights): the whole map's would be several times the
# map itself, while a chunk stays in cache and is reused by the allocator
# instead of being paged in afresh on every call. Training does more work
# per chunk and prefers larger ones (measured on a 2-core EPYC).
CHUNK_BYTES = 2 * 2**20
TRAINING_CHUNK_BYTES = 4 * 2**20


def windows_per_chunk(channels: int, heads: int, queries: int, keys: int,
                      element_size: int) -> int:
    """How many windows fill a chunk, sized by the largest per-window tensor:
    the gathered keys and values, or the attention weights. Under
    ``torch.export`` (ONNX export) every window is in one chunk: a graph
    holds a copy of the loop body per chunk (Focal-T at 800x1216: 20,000
    nodes instead of 1,300, minutes to export and to load)."""
    if torch.compiler.is_exporting():
        return sys.maxsize
    per_window = max(2 * channels, heads * queries) * keys * element_size
    budget = CHUNK_BYTES if not torch.is_grad_enabled() \
        else TRAINING_CHUNK_BYTES
    return budget // per_window


def check_map(x: Tensor, embed_dims: int, name: str) -> None:
    """Raises ValueError unless ``x`` is a ``(B, H, W, embed_dims)`` map."""
    if x.dim() != 4 or x.shape[-1] != embed_dims:
        raise ValueError(
            f'{name} expects a (B, H, W, C) map with C = {embed_dims}, got '
            f'shape {tuple(x.shape)}')


def pad_and_shift(x: Tensor, window_size: int, shift: int) -> Tensor:
    """Zero-pads a ``(B, H, W, C)`` map at the bottom and right to window
    multiples, then rolls it by ``-shift`` (the official order)."""
    H, W = x.shape[1:3]
    w = window_size
    x = F.pad(x, (0, 0, 0, -W % w, 0, -H % w))
    if shift:
        x = torch.roll(x, shifts=(-shift, -shift), dims=(1, 2))
    return x


def unshift_and_crop(x: Tensor, shift: int, height: int, width: int) -> Tensor:
    """Undoes :func:`pad_and_shift`: rolls back by ``shift`` and crops to
    ``height x width``."""
    if shift:
        x = torch.roll(x, shifts=(shift, shift), dims=(1, 2))
    return x[:, :height, :width]


def check_window_args(embed_dims: int, num_heads: int, window_size: int,
                      shift_size: int, focal_level: int) -> None:
    """Raises ValueError naming the first bad argument that both focal
    attention families share."""
    if embed_dims <= 0 or num_heads <= 0 or embed_dims % num_heads:
        raise ValueError(f'num_heads ({num_heads}) must be positive and '
                         f'divide embed_dims ({embed_dims})')
    if window_size < 1:
        raise ValueError(f'window_size must be >= 1, got {window_size}')
    if not 0 <= shift_size < window_size:
        raise ValueError(f'shift_size must be in [0, window_size='
                         f'{window_size}), got {shift_size}')
    if focal_level < 1:
        raise ValueError(f'focal_level must be >= 1, got {focal_level}')


def split_qkv(qkv: nn.Linear, embed_dims: int):
    """``(weight, bias)`` of the query, key and value parts of one qkv
    projection."""
    C = embed_dims
    bias = qkv.bias
    return [(qkv.weight[i * C:(i + 1) * C],
             None if bias is None else bias[i * C:(i + 1) * C])
            for i in range(3)]


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

    def add_to(self, logits: Tensor, chunk: Chunk) -> Tensor:
        """Adds the masks of the windows of ``chunk`` to their
        ``(n, heads, L, N)`` logits in place."""
        if self.key is not None:
            logits += self._key(chunk)
        return self._add_region(logits, chunk.start, chunk.stop)

    def with_bias(self, bias: Tensor, chunk: Chunk) -> Tensor:
        """``bias`` ``(1, heads, L, N)`` plus the masks of the windows of
        ``chunk``: ``(n, heads, L, N)``, or ``bias`` itself when there are
        no masks (a fused kernel broadcasts it)."""
        if self.key is None and self.region is None:
            return bias
        out = bias.repeat(chunk.stop - chunk.start, 1, 1, 1) \
            if self.key is None else bias + self._key(chunk)
        return self._add_region(out, chunk.start, chunk.stop)

    def _key(self, chunk: Chunk) -> Tensor:
        key = of_windows(self.key, chunk.start, chunk.stop)
        if chunk.cols is not None:
            key = key.index_select(1, chunk.cols)
        return key[:, None, None]

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


def cropped_biases(bias: Tensor, chunks: Chunks) -> Dict[int, Tensor]:
    """The shared ``(1, heads, L, N)`` bias cropped, once per call, to the
    key slot columns of each slot group among ``chunks``, keyed by
    ``chunk.group`` (see :func:`chunk_bias`)."""
    out = {}
    for chunk in chunks:
        if chunk.cols is not None and chunk.group not in out:
            out[chunk.group] = bias.index_select(-1, chunk.cols)
    return out


def chunk_bias(bias: Tensor,
               bias_index: Optional[Tensor],
               chunk: Chunk,
               cropped: Optional[Dict[int, Tensor]] = None) -> Tensor:
    """The position bias of the windows of ``chunk``.

    Without ``bias_index``, ``bias`` is ``(1, heads, L, N)``, shared by all
    windows, and returned as it is, or as cropped to the chunk's columns
    (``cropped``, of :func:`cropped_biases`). With it, ``bias`` is a
    ``(heads, L, D)`` table and ``bias_index`` ``(windows, N)`` the table
    column of every key slot: the result is ``(n, heads, L, N)`` (``n = 1``
    when the chunk shares one index row), contiguous along the keys.
    """
    if bias_index is None:
        return bias if chunk.cols is None else cropped[chunk.group]
    stop = chunk.start + 1 if chunk.shared_bias else chunk.stop
    index = bias_index[chunk.start:stop]
    heads, L, D = bias.shape
    n, N = index.shape
    out = bias.reshape(heads * L, D).index_select(1, index.reshape(-1))
    return out.view(heads, L, n, N).permute(2, 0, 1, 3)


def add_bias_grad(grad_bias: Tensor, d_logits: Tensor,
                  bias_index: Optional[Tensor], chunk: Chunk) -> None:
    """Adds the gradient of the chunk's logits ``(n, heads, L, N)`` to that
    of the bias it came from (see :func:`chunk_bias`), in place."""
    if bias_index is None:
        if chunk.cols is None:
            grad_bias += d_logits.sum(0, keepdim=True)
        else:
            grad_bias.index_add_(-1, chunk.cols, d_logits.sum(0, keepdim=True))
        return
    heads, L, D = grad_bias.shape
    grad = grad_bias.view(heads * L, D)
    if chunk.shared_bias:
        grad.index_add_(1, bias_index[chunk.start],
                        d_logits.sum(0).view(heads * L, -1))
    else:
        index = bias_index[chunk.start:chunk.stop].reshape(-1)
        grad.index_add_(
            1, index,
            d_logits.permute(1, 2, 0, 3).reshape(heads * L, index.numel()))


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


def fused_attention(masks: WindowMasks, scale: float) -> Attend:
    """PyTorch's fused attention with the position bias and masks (no
    gradient for the bias)."""

    def attend(q, k, v, bias, chunk):
        return F.scaled_dot_product_attention(
            q, k, v, attn_mask=masks.with_bias(bias, chunk), scale=scale)

    return attend


def plain_attention(masks: WindowMasks, scale: float, attn_drop_rate: float,
                    training: bool) -> Attend:
    """Attention in plain autograd (gradients for everything, attention
    dropout; PyTorch's math fallback would add checks for fully masked rows,
    which cannot occur here)."""

    def attend(q, k, v, bias, chunk):
        attn = attention_weights(q * scale, k, bias, masks, chunk)
        return F.dropout(attn, attn_drop_rate, training) @ v

    return attend


def can_recompute(x: Tensor, attn_drop_rate: float, training: bool) -> bool:
    """Whether training can use :class:`ChunkedWindowAttention`: not with
    attention dropout (its backward would need the same mask), autocast
    (its backward runs outside it), while compiling or while tracing (the
    trace would hold an opaque Python op)."""
    return not (training and attn_drop_rate > 0
                or torch.is_autocast_enabled(x.device.type)
                or torch.compiler.is_compiling() or torch.jit.is_tracing())


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
                   bias_index: Optional[Tensor] = None) -> Tensor:
    """``softmax(scale * q k^T + bias + masks) v`` of every window, as rows
    of the query table, by the fastest path that gives the gradients needed:
    the fused kernel chunk by chunk without gradients;
    :class:`ChunkedWindowAttention` in training where it can
    (:func:`can_recompute`); otherwise plain autograd in one chunk (the
    backward of every gather writes a gradient the size of the whole token
    table), fused where the bias needs no gradient (fused kernels give
    none). Arguments as for :class:`ChunkedWindowAttention`."""
    if torch.is_grad_enabled() and can_recompute(queries, attn_drop_rate,
                                                 training):
        return ChunkedWindowAttention.apply(queries, keys, values, bias, masks,
                                            query_rows, key_rows, heads, scale,
                                            chunks, bias_index)
    if torch.is_grad_enabled():
        chunks = [Chunk(0, query_rows.shape[0])]
    if torch.is_grad_enabled() and bias.requires_grad:
        attend = plain_attention(masks, scale, attn_drop_rate, training)
    else:
        attend = fused_attention(masks, scale)
    return attend_chunks(queries, keys, values, query_rows, key_rows, heads,
                         chunks, attend, bias, bias_index)


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
