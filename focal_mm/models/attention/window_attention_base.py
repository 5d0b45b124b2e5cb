# Copyright (c) focal_mm contributors. All rights reserved.
"""What both focal attention families share: their common arguments and
checks, the padded and shifted map, the projection of its tokens and pooled
tokens into query, key and value tables, the output projection, and the
choice of how the attention runs (execution plan, implementation)."""
from typing import List, NamedTuple, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor

from ...ops.execution_plan import (ExecutionPlan, check_chunk_bytes,
                                   execution_plan)
from ...ops.window_attention import attend_windows
from ...ops.window_attention_op import (OPERATOR_MISSING,
                                        triton_unavailable_reason,
                                        triton_window_attention)
from ...ops.window_chunks import Chunks
from ...ops.window_rows import WindowRows
from .focal_pooling import (build_pool_layers, check_pool_method,
                            check_pooled_window, pooled_tokens)

# 'auto': the execution plan of the device (see execution_plan.py); the
# Triton kernel is chosen only by 'triton' until it has been measured on a
# GPU (docs/benchmark.md).
ATTN_IMPLS = ('auto', 'chunked', 'triton')


def fits_one_window(height: int, width: int, window_size: int) -> bool:
    """The official rule for small maps: one whose shorter side is at most
    the window is attended as one row (or column) of windows, without shift
    or fine surroundings (and in the official classification model, with
    that side as its window)."""
    return min(height, width) <= window_size


def check_heads(embed_dims: int, num_heads: int, name: str) -> None:
    """Raises ValueError unless ``num_heads`` is positive and divides
    ``embed_dims``; ``name`` is the argument (e.g. ``'num_heads[2]'``)."""
    if embed_dims <= 0 or num_heads <= 0 or embed_dims % num_heads:
        raise ValueError(f'{name} = {num_heads} does not divide the '
                         f'{embed_dims} channels (or is not positive)')


def check_attn_impl(attn_impl: str) -> str:
    """Returns ``attn_impl`` if it is one of :data:`ATTN_IMPLS` that the
    installed torch can run, else raises ValueError saying why."""
    if attn_impl not in ATTN_IMPLS:
        raise ValueError(f'attn_impl must be one of {ATTN_IMPLS}, got '
                         f'{attn_impl!r}')
    if attn_impl == 'triton' and OPERATOR_MISSING is not None:
        raise ValueError(f"attn_impl='triton' is not available: "
                         f'{OPERATOR_MISSING}')
    return attn_impl


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


class TokenTables(NamedTuple):
    """The projected tokens of one call, as rows of tables (``C`` channels,
    heads side by side)."""
    # Rows of (strided) tables: the plan may project q, k and v at once.
    queries: Tensor  # (B * Hp * Wp, C): the padded, shifted map
    keys: Tensor  # (B * T, C): the map, pooled levels, [zero row]
    values: Tensor  # (B * T, C)
    padded_size: Tuple[int, int]  # Hp, Wp
    shift: int


class WindowAttentionBase(BaseModule):
    """The skeleton of both focal attention families
    (:class:`~focal_mm.models.FocalAttention`,
    :class:`~focal_mm.models.FocalFastAttention`), which add their own
    arguments to these.

    Args:
        embed_dims (int): Channels ``C`` of the map.
        num_heads (int): Attention heads; must divide ``embed_dims``.
        window_size (int): Query window side. Default: 7.
        shift_size (int): Cyclic shift of the windows (0: none). Default: 0.
        focal_level (int): Focal levels, the fine one included. Default: 2.
        pool_method (str): ``'fc'``, ``'conv'``, ``'mean'``, ``'max'`` or
            ``'none'`` (no pooled levels). Default: ``'fc'``.
        qkv_bias (bool): Bias in the qkv projection. Default: True.
        qk_scale (float, optional): Overrides ``head_dims ** -0.5``.
        attn_drop_rate (float): Dropout on attention weights. Default: 0.
        proj_drop_rate (float): Dropout after the output projection.
            Default: 0.
        attn_chunk_bytes (int, optional): Budget of a chunk of windows
            attended at once (its gathered keys and values, or weights);
            None: the device's default (see ``execution_plan.py``).
        attn_impl (str): ``'auto'`` (the device's execution plan),
            ``'chunked'`` (the same, explicitly) or ``'triton'`` (the fused
            kernel of ``window_attention_op.py``; torch >= 2.4 and
            Triton >= 3.0, CUDA, or CPU under ``TRITON_INTERPRET=1``).
        init_cfg (dict, optional): mmengine initialisation config.
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 window_size: int = 7,
                 shift_size: int = 0,
                 focal_level: int = 2,
                 pool_method: str = 'fc',
                 qkv_bias: bool = True,
                 qk_scale: Optional[float] = None,
                 attn_drop_rate: float = 0.,
                 proj_drop_rate: float = 0.,
                 attn_chunk_bytes: Optional[int] = None,
                 attn_impl: str = 'auto',
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        check_heads(embed_dims, num_heads, 'num_heads')
        if window_size < 1:
            raise ValueError(f'window_size must be >= 1, got {window_size}')
        if not 0 <= shift_size < window_size:
            raise ValueError(f'shift_size must be in [0, window_size='
                             f'{window_size}), got {shift_size}')
        if focal_level < 1:
            raise ValueError(f'focal_level must be >= 1, got {focal_level}')
        check_pool_method(pool_method, 'pool_method')
        self.num_pooled = 0 if pool_method == 'none' else focal_level - 1
        check_pooled_window(window_size, self.num_pooled, focal_level)

        self.embed_dims = embed_dims
        self.num_heads = num_heads
        self.head_dims = embed_dims // num_heads
        self.scale = qk_scale or self.head_dims**-0.5
        self.window_size = window_size
        self.shift_size = shift_size
        self.focal_level = focal_level
        self.pool_method = pool_method
        self.attn_drop_rate = attn_drop_rate
        self.attn_chunk_bytes = check_chunk_bytes(attn_chunk_bytes)
        self.attn_impl = check_attn_impl(attn_impl)
        if attn_impl == 'triton' and attn_drop_rate > 0:
            raise ValueError("attn_impl='triton' has no attention dropout: "
                             'use attn_drop_rate=0 (as every released '
                             "model does) or attn_impl='auto'")
        self._layer_args = (qkv_bias, proj_drop_rate)

    def build_layers(self) -> None:
        """Builds the pooling, projection and dropout layers (a family calls
        it where its official model builds them, which keeps the order of
        parameters, and of random initialisation, the official one)."""
        qkv_bias, proj_drop_rate = self._layer_args
        self.pool_layers = build_pool_layers(self.pool_method,
                                             self.embed_dims,
                                             self.window_size, self.num_pooled)
        self.qkv = nn.Linear(
            self.embed_dims, self.embed_dims * 3, bias=qkv_bias)
        self.proj = nn.Linear(self.embed_dims, self.embed_dims)
        self.proj_drop = nn.Dropout(proj_drop_rate)

    def plan(self, device: torch.device) -> ExecutionPlan:
        """The execution plan of this module's attention on ``device``."""
        return execution_plan(device, self.attn_chunk_bytes)

    def shift_for(self, height: int, width: int) -> int:
        """The shift of a ``height x width`` map (none where it fits one
        window, as in the official model)."""
        fits = fits_one_window(height, width, self.window_size)
        return 0 if fits else self.shift_size

    def project(self,
                x: Tensor,
                pooled_sizes: Sequence[Tuple[int, int]],
                shift: int,
                zero_row: bool = False) -> TokenTables:
        """Pads and shifts the ``(B, H, W, C)`` map ``x`` and projects its
        tokens (queries of the map; keys and values of the map, its pooled
        levels of grids ``pooled_sizes`` and, with ``zero_row``, a zero key
        and value that padded key slots point at)."""
        B, C = x.shape[0], self.embed_dims
        x = pad_and_shift(x, self.window_size, shift)
        Hp, Wp = x.shape[1:3]
        fine = x.reshape(B, Hp * Wp, C)
        pooled = pooled_tokens(x, self.pool_method, self.pool_layers,
                               self.window_size, pooled_sizes)
        fused = self.attn_impl != 'triton' and self.plan(x.device).fused_qkv
        project = self._project_fused if fused else self._project_parts
        queries, keys, values = project(fine, pooled, zero_row)
        return TokenTables(
            queries=queries,
            keys=keys,
            values=values,
            padded_size=(Hp, Wp),
            shift=shift)

    def _project_parts(self, fine: Tensor, pooled: List[Tensor],
                       zero_row: bool) -> Tuple[Tensor, Tensor, Tensor]:
        """Query, key and value tables, one projection each."""
        C = self.embed_dims
        weight, bias = self.qkv.weight, self.qkv.bias
        q_w, k_w, v_w = weight[:C], weight[C:2 * C], weight[2 * C:]
        q_b, k_b, v_b = (None, ) * 3 if bias is None else \
            (bias[:C], bias[C:2 * C], bias[2 * C:])
        tokens = [fine] + pooled
        if zero_row:
            tokens.append(fine.new_zeros(fine.shape[0], 1, C))
        tokens = torch.cat(tokens, dim=1) if len(tokens) > 1 else fine
        keys, values = F.linear(tokens, k_w, k_b), F.linear(tokens, v_w, v_b)
        if zero_row:
            # Zero key and value (the official code pads after projecting):
            # a row more in the products costs less than copying the tables.
            keys[:, -1] = 0
            values[:, -1] = 0
        queries = F.linear(fine, q_w, q_b)
        return (queries.view(-1, C), keys.view(-1, C), values.view(-1, C))

    def _project_fused(self, fine: Tensor, pooled: List[Tensor],
                       zero_row: bool) -> Tuple[Tensor, Tensor, Tensor]:
        """The same tables as strided views: the map through the whole
        ``qkv`` layer, the pooled tokens likewise (their queries unused)."""
        B, C = fine.shape[0], self.embed_dims
        # Splits, not slices: their backward is one concatenation.
        queries, key_values = self.qkv(fine).split([C, 2 * C], -1)
        key_values = [key_values]
        if pooled:
            pooled = torch.cat(pooled, dim=1) if len(pooled) > 1 else pooled[0]
            key_values.append(self.qkv(pooled).split([C, 2 * C], -1)[1])
        if zero_row:
            key_values.append(fine.new_zeros(B, 1, 2 * C))
        key_values = torch.cat(key_values, dim=1) if len(key_values) > 1 \
            else key_values[0]
        keys, values = key_values.reshape(-1, 2 * C).split(C, 1)
        return queries.reshape(-1, C), keys, values

    def attend(self, tables: TokenTables, rows: WindowRows, bias: Tensor,
               chunks: Chunks, plan: ExecutionPlan) -> Tensor:
        """The attention of every window, as rows of the query table, by
        the implementation of ``attn_impl``. ``bias``: ``(1, heads, L, N)``
        shared by every window, or a ``(heads, L, D)`` table read through
        ``rows.bias_index``; float32 (cast here where the path needs the
        tables' dtype)."""
        if self.attn_impl == 'triton':
            reason = triton_unavailable_reason(tables.queries.device)
            if reason is not None:
                raise ValueError(f"attn_impl='triton' cannot run on "
                                 f'{tables.queries.device}: {reason}')
            return triton_window_attention(
                tables.queries, tables.keys, tables.values, rows.query_rows,
                rows.key_rows, bias[0] if rows.bias_index is None else bias,
                rows.bias_index, rows.masks.key, rows.masks.region,
                self.scale)
        return attend_windows(tables.queries, tables.keys, tables.values,
                              rows.query_rows, rows.key_rows,
                              bias.to(tables.queries.dtype), rows.masks,
                              self.num_heads, self.scale, chunks,
                              self.attn_drop_rate, self.training, plan,
                              rows.bias_index)

    def output(self, rows: Tensor, tables: TokenTables, height: int,
               width: int) -> Tensor:
        """The attention output rows (of the query table) projected, rolled
        back and cropped to the ``(B, height, width, C)`` map."""
        Hp, Wp = tables.padded_size
        out = self.proj_drop(self.proj(rows.view(-1, Hp, Wp, rows.shape[1])))
        return unshift_and_crop(out, tables.shift, height, width)

    def extra_repr(self) -> str:
        args = dict(
            embed_dims=self.embed_dims,
            num_heads=self.num_heads,
            window_size=self.window_size,
            shift_size=self.shift_size,
            focal_level=self.focal_level,
            **self._family_repr(),
            pool_method=self.pool_method)
        if self.attn_impl != 'auto':
            args['attn_impl'] = self.attn_impl
        if self.attn_chunk_bytes is not None:
            args['attn_chunk_bytes'] = self.attn_chunk_bytes
        return ', '.join(f'{k}={v!r}' for k, v in args.items())

    def _family_repr(self) -> dict:
        """The family's own arguments for :meth:`extra_repr`."""
        return {}
