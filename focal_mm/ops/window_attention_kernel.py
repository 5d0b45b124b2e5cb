# Copyright (c) focal_mm contributors. All rights reserved.
"""Triton kernels of gathered window attention, forward and backward.

Both attention families reduce to this: window ``w`` has ``L`` query slots
(rows ``query_rows[w]`` of a ``(Tq, C)`` query table) and ``N`` key slots
(rows ``key_rows[w]`` of ``(Tk, C)`` key and value tables, rows shared by
many windows), ``C = heads * d``, and for every head ``h``::

    out[query_rows[w], h] = softmax(scale * q k^T + bias[h][:, cols]
                                    + key_mask[w % nKM]
                                    + region_mask[w % nRM] (first L slots)) v

with ``cols = bias_index[w]`` (per-window columns of a ``(heads, L, D)``
table) or ``arange(N)`` (one bias shared by all windows). The softmax runs
in float32; logits are kept in base-2 units (``log2(e)`` folded into the
scale and the additive terms) so that ``exp2`` does the exponentials.

Forward: one program per (window, head, block of ``BLOCK_M`` query slots)
gathers its queries once, then walks the key slots ``BLOCK_N`` at a time,
reading keys, values, bias columns and masks in place, with the online
softmax recurrence of FlashAttention. It writes the output rows straight
to the output table and keeps the base-2 log-sum-exp of every query slot,
``(nWin, heads, L)`` float32, for the backward.

Backward (FlashAttention-2 style, same grid): each program recomputes the
weights of its queries block by block from the log-sum-exp, with
``delta = rowsum(dO * O)``; the gradient of its queries is summed in
registers and stored once (every query row belongs to one window). Key,
value and bias gradients receive contributions from every window that
uses the row or column, so they are accumulated with ``tl.atomic_add``
into zero-initialised float32 buffers. The order in which programs add is
unspecified on a GPU, so these three gradients can differ in the last bits
from run to run (float addition is not associative); the query gradient
and the forward are deterministic. The operator refuses to run this
backward while ``torch.use_deterministic_algorithms(True)`` is set.

Row numbers and offsets are 32-bit integers: the operator checks that no
tensor has 2**31 elements or more.

Matrix products ask for ``input_precision='ieee'``, which only concerns
float32 operands: no TF32, so that they agree with PyTorch's float32 to
about 1e-6 (on the FMA units, slower than tensor cores). Float16 and
bfloat16 operands use tensor-core products with float32 accumulation.

Triton chooses between compiled and interpreted kernels when it defines
them, at the import of this module (and of ``triton.language``, whose
functions the kernels call): with ``TRITON_INTERPRET=1`` set before both,
they run with numpy on CPU tensors. Import this module only when a kernel
is first needed (:mod:`focal_mm.ops.window_attention_op` does).
"""
import math
from typing import Optional

import torch
import triton
import triton.language as tl
from torch import Tensor

LOG2E = math.log2(math.e)
_LOG2E = tl.constexpr(LOG2E)


@triton.jit
def _query_slots(query_rows, L, C, head_dim, BLOCK_M: tl.constexpr,
                 BLOCK_D: tl.constexpr):
    """The window, head and query slots of this program, with the offsets
    and mask of its ``(BLOCK_M, BLOCK_D)`` tile in the query-sized tables
    (queries, output and their gradients)."""
    win = tl.program_id(0)
    head = tl.program_id(1)
    offs_m = tl.program_id(2) * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    m_ok = offs_m < L
    d_ok = offs_d < head_dim
    rows = tl.load(
        query_rows + win * L + offs_m, mask=m_ok, other=0).to(tl.int32)
    q_offs = rows[:, None] * C + head * head_dim + offs_d[None, :]
    q_ok = m_ok[:, None] & d_ok[None, :]
    return win, head, offs_m, offs_d, m_ok, d_ok, q_offs, q_ok


@triton.jit
def _logits(q, keys, key_rows, bias, bias_index, key_mask, region_mask, win,
            head, offs_m, offs_n, offs_d, m_ok, d_ok, L, N, D, C, head_dim,
            key_mask_windows, region_windows, scale_log2,
            HAS_BIAS_INDEX: tl.constexpr, HAS_KEY_MASK: tl.constexpr,
            HAS_REGION: tl.constexpr):
    """Base-2 logits ``(BLOCK_M, BLOCK_N)`` of the queries ``q`` of window
    ``win``, head ``head``, over its key slots ``offs_n`` (slots past ``N``
    get -inf), with the key tile, the offsets and mask of its elements in
    the key and value tables, and the bias offsets and mask of the tile."""
    n_ok = offs_n < N
    rows = tl.load(
        key_rows + win * N + offs_n, mask=n_ok, other=0).to(tl.int32)
    kv_offs = rows[:, None] * C + head * head_dim + offs_d[None, :]
    kv_ok = n_ok[:, None] & d_ok[None, :]
    k = tl.load(keys + kv_offs, mask=kv_ok, other=0.0)
    logits = tl.dot(q, tl.trans(k), input_precision='ieee') * scale_log2
    if HAS_BIAS_INDEX:
        cols = tl.load(
            bias_index + win * N + offs_n, mask=n_ok, other=0).to(tl.int32)
    else:
        cols = offs_n
    mn_ok = m_ok[:, None] & n_ok[None, :]
    bias_offs = (head * L + offs_m[:, None]) * D + cols[None, :]
    added = tl.load(bias + bias_offs, mask=mn_ok, other=0.0).to(tl.float32)
    if HAS_KEY_MASK:
        mask_row = key_mask + (win % key_mask_windows) * N
        added += tl.load(
            mask_row + offs_n, mask=n_ok, other=0.0).to(tl.float32)[None, :]
    if HAS_REGION:
        region_offs = ((win % region_windows) * L + offs_m[:, None]) * L \
            + offs_n[None, :]
        region_ok = m_ok[:, None] & (offs_n < L)[None, :]
        added += tl.load(
            region_mask + region_offs, mask=region_ok,
            other=0.0).to(tl.float32)
    logits += added * _LOG2E
    logits = tl.where(n_ok[None, :], logits, float('-inf'))
    return logits, k, kv_offs, kv_ok, bias_offs, mn_ok


@triton.jit
def _forward_kernel(queries, keys, values, out, lse, query_rows, key_rows,
                    bias, bias_index, key_mask, region_mask, L, N, D, C,
                    head_dim, key_mask_windows, region_windows, scale_log2,
                    HAS_BIAS_INDEX: tl.constexpr, HAS_KEY_MASK: tl.constexpr,
                    HAS_REGION: tl.constexpr, BLOCK_M: tl.constexpr,
                    BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr):
    win, head, offs_m, offs_d, m_ok, d_ok, q_offs, q_ok = _query_slots(
        query_rows, L, C, head_dim, BLOCK_M, BLOCK_D)
    q = tl.load(queries + q_offs, mask=q_ok, other=0.0)

    row_max = tl.full([BLOCK_M], float('-inf'), tl.float32)
    row_sum = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_D], tl.float32)
    for start in range(0, N, BLOCK_N):
        offs_n = start + tl.arange(0, BLOCK_N)
        logits, _, kv_offs, kv_ok, _, _ = _logits(
            q, keys, key_rows, bias, bias_index, key_mask, region_mask, win,
            head, offs_m, offs_n, offs_d, m_ok, d_ok, L, N, D, C, head_dim,
            key_mask_windows, region_windows, scale_log2, HAS_BIAS_INDEX,
            HAS_KEY_MASK, HAS_REGION)
        new_max = tl.maximum(row_max, tl.max(logits, 1))
        # A row whose logits so far are all -inf (masked) keeps a finite
        # reference, so that exp2 gives 0 there instead of NaN.
        ref = tl.where(new_max == float('-inf'), 0.0, new_max)
        rescale = tl.exp2(row_max - ref)
        p = tl.exp2(logits - ref[:, None])
        row_sum = row_sum * rescale + tl.sum(p, 1)
        v = tl.load(values + kv_offs, mask=kv_ok, other=0.0)
        acc = acc * rescale[:, None] + tl.dot(
            p.to(v.dtype), v, input_precision='ieee')
        row_max = new_max

    acc = acc / row_sum[:, None]
    tl.store(out + q_offs, acc.to(out.dtype.element_ty), mask=q_ok)
    lse_offs = (win * tl.num_programs(1) + head) * L + offs_m
    tl.store(lse + lse_offs, row_max + tl.log2(row_sum), mask=m_ok)


@triton.jit
def _backward_kernel(grad_out, queries, keys, values, out, lse, query_rows,
                     key_rows, bias, bias_index, key_mask, region_mask, grad_q,
                     grad_k, grad_v, grad_bias, L, N, D, C, head_dim,
                     key_mask_windows, region_windows, scale, scale_log2,
                     HAS_BIAS_INDEX: tl.constexpr, HAS_KEY_MASK: tl.constexpr,
                     HAS_REGION: tl.constexpr, BLOCK_M: tl.constexpr,
                     BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr):
    win, head, offs_m, offs_d, m_ok, d_ok, q_offs, q_ok = _query_slots(
        query_rows, L, C, head_dim, BLOCK_M, BLOCK_D)
    q = tl.load(queries + q_offs, mask=q_ok, other=0.0)
    d_out = tl.load(grad_out + q_offs, mask=q_ok, other=0.0)
    o = tl.load(out + q_offs, mask=q_ok, other=0.0)
    delta = tl.sum(d_out.to(tl.float32) * o.to(tl.float32), 1)
    # +inf for padded query slots makes all their weights 0.
    row_lse = tl.load(
        lse + (win * tl.num_programs(1) + head) * L + offs_m,
        mask=m_ok,
        other=float('inf'))

    dq = tl.zeros([BLOCK_M, BLOCK_D], tl.float32)
    for start in range(0, N, BLOCK_N):
        offs_n = start + tl.arange(0, BLOCK_N)
        logits, k, kv_offs, kv_ok, bias_offs, mn_ok = _logits(
            q, keys, key_rows, bias, bias_index, key_mask, region_mask, win,
            head, offs_m, offs_n, offs_d, m_ok, d_ok, L, N, D, C, head_dim,
            key_mask_windows, region_windows, scale_log2, HAS_BIAS_INDEX,
            HAS_KEY_MASK, HAS_REGION)
        p = tl.exp2(logits - row_lse[:, None])
        v = tl.load(values + kv_offs, mask=kv_ok, other=0.0)
        dv = tl.dot(tl.trans(p.to(d_out.dtype)), d_out, input_precision='ieee')
        tl.atomic_add(grad_v + kv_offs, dv, mask=kv_ok, sem='relaxed')
        dp = tl.dot(d_out, tl.trans(v), input_precision='ieee')
        # Gradient of the natural-unit logits: that of the bias itself.
        ds = p * (dp - delta[:, None])
        tl.atomic_add(grad_bias + bias_offs, ds, mask=mn_ok, sem='relaxed')
        dq += tl.dot(ds.to(k.dtype), k, input_precision='ieee')
        dk = tl.dot(tl.trans(ds.to(q.dtype)), q, input_precision='ieee')
        tl.atomic_add(grad_k + kv_offs, dk * scale, mask=kv_ok, sem='relaxed')

    tl.store(
        grad_q + q_offs, (dq * scale).to(grad_q.dtype.element_ty), mask=q_ok)


# Whether Triton made the kernels above for its interpreter (CPU tensors).
INTERPRETED = not isinstance(_forward_kernel, triton.JITFunction)

# Query slots per program: a whole 7x7 window (L = 49) in one block of 64.
MAX_BLOCK_M = 64
FORWARD_BLOCK_N = 64
# The backward holds four (BLOCK_M, BLOCK_N) float32 tiles at once.
BACKWARD_BLOCK_N = 32


def _launch_options(dtype: torch.dtype) -> dict:
    """Warps and pipeline stages. Chosen from ptxas' register counts for
    sm_90 (the kernels compiled without a GPU; speed not measured): with 4
    warps, or with pipelined loops of float32 products (which run on the
    FMA units, not tensor cores), the blocks above spill registers."""
    return dict(num_warps=8, num_stages=1 if dtype == torch.float32 else 2)


def _blocks(L: int, head_dim: int):
    """``(BLOCK_M, BLOCK_D)``: powers of two of at least 16 (the smallest
    ``tl.dot`` operand) that cover a window's queries (up to
    ``MAX_BLOCK_M`` per program) and a head's channels."""
    block_m = min(max(triton.next_power_of_2(L), 16), MAX_BLOCK_M)
    return block_m, max(triton.next_power_of_2(head_dim), 16)


def _window_args(queries: Tensor, query_rows: Tensor, key_rows: Tensor,
                 bias: Tensor, bias_index: Optional[Tensor],
                 key_mask: Optional[Tensor], region_mask: Optional[Tensor],
                 scale: float, block_n: int):
    """The grid and the keyword arguments that both kernels share."""
    num_windows, L = query_rows.shape
    heads, _, D = bias.shape
    C = queries.shape[1]
    block_m, block_d = _blocks(L, C // heads)
    grid = (num_windows, heads, triton.cdiv(L, block_m))
    return grid, dict(
        query_rows=query_rows,
        key_rows=key_rows,
        bias=bias,
        # Pointers of absent inputs: placeholders, never read.
        bias_index=key_rows if bias_index is None else bias_index,
        key_mask=bias if key_mask is None else key_mask,
        region_mask=bias if region_mask is None else region_mask,
        L=L,
        N=key_rows.shape[1],
        D=D,
        C=C,
        head_dim=C // heads,
        key_mask_windows=1 if key_mask is None else key_mask.shape[0],
        region_windows=1 if region_mask is None else region_mask.shape[0],
        scale_log2=scale * LOG2E,
        HAS_BIAS_INDEX=bias_index is not None,
        HAS_KEY_MASK=key_mask is not None,
        HAS_REGION=region_mask is not None,
        BLOCK_M=block_m,
        BLOCK_N=block_n,
        BLOCK_D=block_d,
        **_launch_options(queries.dtype))


def forward(queries: Tensor, keys: Tensor, values: Tensor, query_rows: Tensor,
            key_rows: Tensor, bias: Tensor, bias_index: Optional[Tensor],
            key_mask: Optional[Tensor], region_mask: Optional[Tensor],
            scale: float):
    """Launches the forward kernel on checked inputs (shapes as in the
    module docstring). Returns the output ``(Tq, C)`` in the queries'
    dtype and the base-2 log-sum-exp ``(nWin, heads, L)`` float32."""
    num_windows, L = query_rows.shape
    out = torch.empty_like(queries)
    lse = queries.new_empty((num_windows, bias.shape[0], L),
                            dtype=torch.float32)
    if num_windows:
        grid, shared = _window_args(queries, query_rows, key_rows, bias,
                                    bias_index, key_mask, region_mask, scale,
                                    FORWARD_BLOCK_N)
        _forward_kernel[grid](
            queries=queries, keys=keys, values=values, out=out, lse=lse,
            **shared)
    return out, lse


def backward(grad_out: Tensor, queries: Tensor, keys: Tensor, values: Tensor,
             out: Tensor, lse: Tensor, query_rows: Tensor, key_rows: Tensor,
             bias: Tensor, bias_index: Optional[Tensor],
             key_mask: Optional[Tensor], region_mask: Optional[Tensor],
             scale: float):
    """Launches the backward kernel (``grad_out`` contiguous, like
    ``out``; ``out`` and ``lse`` of :func:`forward`). Returns the gradients
    of the queries, keys, values and bias, each in its input's dtype."""
    grad_q = torch.empty_like(queries)
    # Atomic sums go to float32 buffers whatever the inputs' dtype.
    grad_k = torch.zeros_like(keys, dtype=torch.float32)
    grad_v = torch.zeros_like(values, dtype=torch.float32)
    grad_bias = torch.zeros_like(bias, dtype=torch.float32)
    if query_rows.shape[0]:
        grid, shared = _window_args(queries, query_rows, key_rows, bias,
                                    bias_index, key_mask, region_mask, scale,
                                    BACKWARD_BLOCK_N)
        _backward_kernel[grid](
            grad_out=grad_out, queries=queries, keys=keys, values=values,
            out=out, lse=lse, grad_q=grad_q, grad_k=grad_k, grad_v=grad_v,
            grad_bias=grad_bias, scale=scale, **shared)
    return (grad_q, grad_k.to(keys.dtype), grad_v.to(values.dtype),
            grad_bias.to(bias.dtype))
