# Copyright (c) focal_mm contributors. All rights reserved.
"""Gathered window attention as one PyTorch operator, run by the Triton
kernels of :mod:`focal_mm.ops.window_attention_kernel`.

``focal_mm::window_attention`` returns the output rows and the log-sum-exp
the backward needs; ``focal_mm::window_attention_backward`` returns the
gradients of the queries, keys, values and bias. Both have fake
implementations (shapes only) and the first has an autograd formula, so
autograd, ``torch.compile`` and ``torch.export`` see a single operation
instead of the kernels. The gradient is computed once (no double
backward).

The kernel module is imported on the first call, not with this module:
Triton decides when it defines the kernels whether they are compiled for
the GPU or interpreted on the CPU (``TRITON_INTERPRET=1``, which must also
be set before Triton itself is imported). :func:`triton_unavailable_reason`
says whether a device can run the kernels.
"""
import importlib
import sys
import warnings
from typing import Optional, Tuple

import torch
from torch import Tensor

from .versions import (CUSTOM_OP_TORCH, torch_lacks,
                       triton_interpret_requested, triton_unsupported_reason)

KERNEL_MODULE = 'focal_mm.ops.window_attention_kernel'
FLOAT_TYPES = (torch.float32, torch.float16, torch.bfloat16)

# Why the installed torch cannot define the operators (the version they
# need), or None if it can.
OPERATOR_MISSING = torch_lacks(
    CUSTOM_OP_TORCH,
    'the focal_mm::window_attention operator (torch.library.custom_op)')


def triton_unavailable_reason(device,
                              dtype: Optional[torch.dtype] = None
                              ) -> Optional[str]:
    """Why the kernels cannot run on tensors of ``device`` (a
    :class:`torch.device` or string) and ``dtype`` (None: whether any dtype
    can), or None if they can.

    The installed torch and Triton must be new enough
    (:mod:`focal_mm.ops.versions`). CUDA devices run compiled kernels. The
    CPU runs them in Triton's interpreter, which needs ``TRITON_INTERPRET=1``
    before Triton itself is imported (its language functions are made for
    the interpreter or the compiler then; ``torch._dynamo`` imports it), so
    in practice in the environment of the process.
    """
    device = torch.device(device)
    if OPERATOR_MISSING is not None:
        return OPERATOR_MISSING
    try:
        import triton
        import triton.language as tl
    except ImportError as error:
        return f'Triton cannot be imported ({error})'
    if device.type == 'cuda' and not torch.cuda.is_available():
        return 'no CUDA device is available'
    reason = triton_unsupported_reason(triton, device, dtype)
    if reason is not None:
        return reason
    if device.type == 'cuda':
        return None
    if device.type != 'cpu':
        return (f'the Triton kernels run on CUDA devices (or on the CPU in '
                f'Triton\'s interpreter), not on {device.type}')
    kernels = sys.modules.get(KERNEL_MODULE)
    if kernels is not None and not kernels.INTERPRETED:
        return ('the Triton kernels were compiled for the GPU when first '
                'used (TRITON_INTERPRET was not set then), so they cannot '
                'run on the CPU in this process')
    if isinstance(tl.sum, triton.JITFunction) or (
            kernels is None and not triton_interpret_requested(triton)):
        return ('Triton runs kernels on the CPU only in its interpreter, '
                'which needs TRITON_INTERPRET=1 in the environment before '
                'Triton is first imported (slow; meant for tests)')
    return None


def _kernels(device: torch.device, dtype: torch.dtype):
    """The kernel module, imported on first use, after checking that it
    can run on ``device`` with ``dtype``."""
    reason = triton_unavailable_reason(device, dtype)
    if reason is not None:
        raise RuntimeError(f'focal_mm::window_attention cannot run on '
                           f'{device}: {reason}')
    return importlib.import_module(KERNEL_MODULE)


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(f'window_attention: {message}')


# The kernels address elements with 32-bit offsets.
MAX_ELEMENTS = 2**31 - 1


def _check_tensor(x: Tensor, name: str, dims: int, device: torch.device,
                  dtypes) -> None:
    _check(x.dim() == dims,
           f'{name} must have {dims} dimensions, got shape {tuple(x.shape)}')
    _check(
        x.dtype in dtypes, f'{name} must be of dtype '
        f'{" or ".join(map(str, dtypes))}, got {x.dtype}')
    _check(x.device == device,
           f'{name} is on {x.device}, the queries on {device}')
    _check(x.is_contiguous(), f'{name} must be contiguous')
    _check(
        x.numel() <= MAX_ELEMENTS, f'{name} has {x.numel()} elements, more '
        f'than the kernels\' 32-bit offsets reach ({MAX_ELEMENTS})')


def check_inputs(queries: Tensor, keys: Tensor, values: Tensor,
                 query_rows: Tensor, key_rows: Tensor, bias: Tensor,
                 bias_index: Optional[Tensor], key_mask: Optional[Tensor],
                 region_mask: Optional[Tensor]) -> None:
    """Raises ValueError naming the first input of
    :func:`triton_window_attention` whose dtype, shape, device or layout
    is wrong. Row indices are not checked against the tables (that would
    synchronise with the device)."""
    device = queries.device
    for name, x in (('queries', queries), ('keys', keys), ('values', values)):
        _check_tensor(x, name, 2, device, FLOAT_TYPES)
    _check(
        keys.dtype == queries.dtype and values.dtype == queries.dtype,
        f'queries, keys and values must share a dtype, got '
        f'{queries.dtype}, {keys.dtype}, {values.dtype}')
    C = queries.shape[1]
    _check(
        keys.shape == values.shape and keys.shape[1] == C,
        f'keys and values must be (Tk, {C}) like the queries\' channels, '
        f'got {tuple(keys.shape)} and {tuple(values.shape)}')
    _check_tensor(bias, 'bias', 3, device, FLOAT_TYPES)
    heads, L, D = bias.shape
    _check(heads > 0 and C % heads == 0,
           f'bias has {heads} heads, which must divide the {C} channels')
    _check_tensor(query_rows, 'query_rows', 2, device, (torch.int64, ))
    _check(
        query_rows.shape[1] == L and query_rows.numel() == queries.shape[0],
        f'query_rows must be (nWin, L) with L = {L} (the bias) and one slot '
        f'per query row ({queries.shape[0]}), got {tuple(query_rows.shape)}')
    num_windows = query_rows.shape[0]
    _check_tensor(key_rows, 'key_rows', 2, device, (torch.int64, ))
    N = key_rows.shape[1]
    _check(
        key_rows.shape[0] == num_windows and N > 0,
        f'key_rows must be ({num_windows}, N) with N > 0, got '
        f'{tuple(key_rows.shape)}')
    if bias_index is None:
        _check(
            D == N, f'without bias_index the bias must have one column per '
            f'key slot ({N}), got {D}')
    else:
        _check_tensor(bias_index, 'bias_index', 2, device, (torch.int64, ))
        _check(
            bias_index.shape == key_rows.shape,
            f'bias_index must be {tuple(key_rows.shape)} like key_rows, got '
            f'{tuple(bias_index.shape)}')
    if key_mask is not None:
        _check_tensor(key_mask, 'key_mask', 2, device, FLOAT_TYPES)
        _check(key_mask.shape[0] > 0 and key_mask.shape[1] == N,
               f'key_mask must be (nW, {N}), got {tuple(key_mask.shape)}')
    if region_mask is not None:
        _check_tensor(region_mask, 'region_mask', 3, device, FLOAT_TYPES)
        _check(
            region_mask.shape[0] > 0 and region_mask.shape[1:] == (L, L),
            f'region_mask must be (nW, {L}, {L}), got '
            f'{tuple(region_mask.shape)}')


def _refuse_if_deterministic() -> None:
    """The backward sums key, value and bias gradients with atomics, in an
    unspecified order: refuse (or warn, in warn-only mode) when
    deterministic algorithms are asked for."""
    if not torch.are_deterministic_algorithms_enabled():
        return
    message = ('the backward of focal_mm::window_attention accumulates the '
               'key, value and bias gradients with atomic adds, which are '
               'not deterministic, but torch.use_deterministic_algorithms('
               'True) is set; use another attention implementation '
               '(attn_impl) for deterministic training')
    if torch.is_deterministic_algorithms_warn_only_enabled():
        warnings.warn(message)
    else:
        raise RuntimeError(message)


def _setup_context(ctx, inputs, output) -> None:
    (queries, keys, values, query_rows, key_rows, bias, bias_index, key_mask,
     region_mask, scale) = inputs
    out, lse = output
    ctx.save_for_backward(queries, keys, values, out, lse, query_rows,
                          key_rows, bias, bias_index, key_mask, region_mask)
    ctx.scale = scale


def _backward(ctx, grad_out, grad_lse):
    # The log-sum-exp is an internal output (not differentiated).
    (queries, keys, values, out, lse, query_rows, key_rows, bias, bias_index,
     key_mask, region_mask) = ctx.saved_tensors
    grad_q, grad_k, grad_v, grad_bias = window_attention_backward(
        grad_out.contiguous(), queries, keys, values, out, lse, query_rows,
        key_rows, bias, bias_index, key_mask, region_mask, ctx.scale)
    return (grad_q, grad_k, grad_v, None, None, grad_bias, None, None, None,
            None)


# torch.library.custom_op exists from torch 2.4; before, the operators are
# not defined and triton_unavailable_reason says so.
if OPERATOR_MISSING is None:

    @torch.library.custom_op('focal_mm::window_attention', mutates_args=())
    def window_attention(queries: Tensor, keys: Tensor, values: Tensor,
                         query_rows: Tensor, key_rows: Tensor, bias: Tensor,
                         bias_index: Optional[Tensor],
                         key_mask: Optional[Tensor],
                         region_mask: Optional[Tensor],
                         scale: float) -> Tuple[Tensor, Tensor]:
        """The operator: the output ``(Tq, C)`` and the base-2 log-sum-exp
        ``(nWin, heads, L)`` float32 of every query slot (for the backward).
        Arguments as for :func:`triton_window_attention`."""
        check_inputs(queries, keys, values, query_rows, key_rows, bias,
                     bias_index, key_mask, region_mask)
        kernels = _kernels(queries.device, queries.dtype)
        return kernels.forward(queries, keys, values, query_rows, key_rows,
                               bias, bias_index, key_mask, region_mask, scale)

    @window_attention.register_fake
    def _(queries, keys, values, query_rows, key_rows, bias, bias_index,
          key_mask, region_mask, scale):
        check_inputs(queries, keys, values, query_rows, key_rows, bias,
                     bias_index, key_mask, region_mask)
        lse = queries.new_empty(
            (query_rows.shape[0], bias.shape[0], query_rows.shape[1]),
            dtype=torch.float32)
        return torch.empty_like(queries), lse

    @torch.library.custom_op(
        'focal_mm::window_attention_backward', mutates_args=())
    def window_attention_backward(
            grad_out: Tensor, queries: Tensor, keys: Tensor, values: Tensor,
            out: Tensor, lse: Tensor, query_rows: Tensor, key_rows: Tensor,
            bias: Tensor, bias_index: Optional[Tensor],
            key_mask: Optional[Tensor], region_mask: Optional[Tensor],
            scale: float) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """Gradients of the queries, keys, values and bias from that of the
        output (``grad_out``, contiguous) and the forward's ``out`` and
        ``lse``."""
        _refuse_if_deterministic()
        kernels = _kernels(queries.device, queries.dtype)
        return kernels.backward(grad_out, queries, keys, values, out, lse,
                                query_rows, key_rows, bias, bias_index,
                                key_mask, region_mask, scale)

    @window_attention_backward.register_fake
    def _(grad_out, queries, keys, values, out, lse, query_rows, key_rows,
          bias, bias_index, key_mask, region_mask, scale):
        return (torch.empty_like(queries), torch.empty_like(keys),
                torch.empty_like(values), torch.empty_like(bias))

    window_attention.register_autograd(_backward, setup_context=_setup_context)


def triton_window_attention(queries: Tensor, keys: Tensor, values: Tensor,
                            query_rows: Tensor, key_rows: Tensor, bias: Tensor,
                            bias_index: Optional[Tensor],
                            key_mask: Optional[Tensor],
                            region_mask: Optional[Tensor],
                            scale: float) -> Tensor:
    """``softmax(scale * q k^T + bias + masks) v`` of every window and head,
    as rows of the query table.

    Args:
        queries (Tensor): ``(Tq, C)`` query table, ``C = heads * d``;
            float32, float16 or bfloat16.
        keys (Tensor): ``(Tk, C)`` key table, the queries' dtype.
        values (Tensor): ``(Tk, C)`` value table, the queries' dtype.
        query_rows (Tensor): ``(nWin, L)`` int64, the query row of every
            query slot; every row of the query table exactly once.
        key_rows (Tensor): ``(nWin, N)`` int64, the key (and value) row of
            every key slot; rows may repeat.
        bias (Tensor): ``(heads, L, D)`` position bias, any float dtype.
        bias_index (Tensor, optional): ``(nWin, N)`` int64, the bias column
            of every key slot; None: ``D == N`` and slot ``n`` uses column
            ``n`` in every window.
        key_mask (Tensor, optional): ``(nW, N)`` additive logit mask;
            window ``w`` uses row ``w % nW``.
        region_mask (Tensor, optional): ``(nW, L, L)`` additive mask of the
            first ``L`` key slots; window ``w`` uses ``w % nW``.
        scale (float): factor of the query-key products.

    Returns:
        Tensor: ``(Tq, C)`` in the queries' dtype. Differentiable with
        respect to the queries, keys, values and bias.

    Raises:
        RuntimeError: Where the installed torch or Triton, or the device,
            cannot run the kernels (:func:`triton_unavailable_reason`); the
            operator's checks, at its first call, where torch can define
            it.
    """
    if OPERATOR_MISSING is not None:
        raise RuntimeError(f'triton_window_attention: {OPERATOR_MISSING}')
    return window_attention(queries, keys, values, query_rows, key_rows, bias,
                            bias_index, key_mask, region_mask, scale)[0]
