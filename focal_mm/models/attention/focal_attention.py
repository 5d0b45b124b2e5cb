# Copyright (c) focal_mm contributors. All rights reserved.
"""Focal self-attention on a ``B x H x W x C`` map."""
from typing import NamedTuple

import torch
import torch.nn as nn
from mmengine.model.weight_init import trunc_normal_
from mmengine.registry import MODELS

from ...ops.chunked_attention import gather_windows
from ...ops.window_chunks import Chunk, window_chunks
from ...ops.window_rows import WindowRows
from ..geometry.focal_geometry import (FocalGeometry, expanded_key_slots,
                                       focal_geometry, focal_window_rows,
                                       num_expanded_keys, pooled_extent,
                                       relative_position_index)
from .focal_pooling import centre_start
from .window_attention_base import (TokenTables, WindowAttentionBase,
                                    check_map, fits_one_window)


class _Call(NamedTuple):
    """What one call attends with: its tables, geometry and bias."""
    tables: TokenTables
    geom: FocalGeometry
    rows: WindowRows
    bias: torch.Tensor  # (1, heads, w * w, N) position bias, float32


class MergedPositionBias(torch.autograd.Function):
    """The position bias of every query and key slot gathered from the
    concatenated bias tables, where a key slot that stands for two official
    slots (the same token twice) gets the log-sum-exp of their biases.

    Written out because autograd's chain of gathers, ``logaddexp`` and
    scatters costs some twenty operations per block in the backward pass;
    here it takes six.

    Args (of ``apply``):
        tables (Tensor): ``(heads, D)`` concatenated bias tables.
        index (Tensor): ``(L, N)`` column of every slot (of its first
            official slot).
        slots (Tensor): ``(R,)`` the merged slots.
        second (Tensor): ``(L, R)`` column of their second official slot.
        first (Tensor): ``(L, R)`` column of their first official slot
            (``index[:, slots]``).

    Returns:
        Tensor: ``(heads, L, N)``.
    """

    @staticmethod
    def forward(ctx, tables, index, slots, second, first):
        heads = tables.shape[0]
        bias = tables.index_select(1, index.flatten()).view(
            heads, *index.shape)
        merged_first = bias.index_select(2, slots)
        other = tables.index_select(1, second.flatten()).view(
            heads, *second.shape)
        merged = torch.logaddexp(merged_first, other)
        bias.index_copy_(2, slots, merged)
        if ctx.needs_input_grad[0]:
            # The second official slot's share of the merged slot's weight.
            ctx.save_for_backward(index, slots, second, first,
                                  torch.exp(other - merged))
            ctx.columns = tables.shape[1]
        return bias

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        index, slots, second, first, share = ctx.saved_tensors
        heads = grad.shape[0]
        out = grad.new_zeros(heads, ctx.columns)
        out.index_add_(1, index.flatten(), grad.reshape(heads, -1))
        # Of a merged slot's gradient, the second official slot takes its
        # share, from the first (which got it all above).
        moved = (grad.index_select(2, slots) * share).reshape(heads, -1)
        out.index_add_(1, second.flatten(), moved)
        out.index_add_(1, first.flatten(), moved, alpha=-1)
        return out, None, None, None, None


@MODELS.register_module()
class FocalAttention(WindowAttentionBase):
    """Focal self-attention (Yang et al., NeurIPS 2021).

    Every ``window_size`` square of queries attends its own tokens, a ring of
    ``expand_size`` fine tokens around it, and for each of the
    ``focal_level - 1`` pooled levels a neighbourhood of tokens pooled over
    sub-windows of ``window_size // 2**k``. Numerically identical to the
    official implementation; any map size works (the map is zero-padded to
    window multiples, and padded tokens are attended as zero features, as in
    the official code). Surrounding tokens that the official model attends
    twice (where its rolled windows overlap) are one key slot here whose
    bias is the log-sum-exp of the two, which gives the same attention
    (attention dropout then drops the pair together).

    Args:
        embed_dims (int): Channels ``C`` of the map.
        num_heads (int): Attention heads; must divide ``embed_dims``.
        expand_size (int): Width of the fine surroundings (0: none).
            Default: 3.
        focal_window (int): Side of the pooled neighbourhood at level 0;
            must be odd when there are pooled levels. Default: 7.
        **kwargs: The arguments both families share (``window_size``,
            ``shift_size``, ``focal_level``, ``pool_method``, ``qkv_bias``,
            ``qk_scale``, ``attn_drop_rate``, ``proj_drop_rate``,
            ``attn_chunk_bytes``, ``attn_impl``, ``init_cfg``): see
            :class:`~focal_mm.models.attention.window_attention_base.
            WindowAttentionBase`.

    Shape:
        - input: ``(B, H, W, C)``
        - output: ``(B, H, W, C)``
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 expand_size: int = 3,
                 focal_window: int = 7,
                 **kwargs) -> None:
        super().__init__(embed_dims, num_heads, **kwargs)
        window_size = self.window_size
        if not 0 <= expand_size < window_size:
            raise ValueError(f'expand_size must be in [0, window_size='
                             f'{window_size}), got {expand_size}')
        if self.num_pooled and (focal_window < 1 or focal_window % 2 == 0):
            raise ValueError('focal_window must be a positive odd number '
                             'when there are pooled levels (an even one '
                             'does not centre the neighbourhood on the '
                             f'window), got {focal_window}')
        self.expand_size = expand_size
        self.focal_window = focal_window
        # The focal window of every pooled level (see focal_geometry).
        self.pooled_windows = (focal_window, ) * self.num_pooled

        w, heads = window_size, num_heads
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * w - 1)**2, heads))
        if expand_size > 0:
            self.relative_position_bias_table_to_neighbors = nn.Parameter(
                torch.zeros(1, heads, w * w, num_expanded_keys(w,
                                                               expand_size)))
        self.relative_position_bias_table_to_windows = nn.ParameterList([
            nn.Parameter(
                torch.zeros(heads,
                            (w + pooled_extent(focal_window, k) - 1)**2))
            for k in range(self.num_pooled)
        ])
        self.build_layers()

        self.register_buffer(
            'bias_index', self._bias_index(expand_size), persistent=False)
        if expand_size > 0:
            # Used when the map is too small to expand (see forward).
            self.register_buffer(
                'bias_index_unexpanded', self._bias_index(0), persistent=False)
            # Surrounding slots of the official model that repeat a token:
            # their table entries and the merged slot (see position_bias).
            slots = expanded_key_slots(window_size, expand_size)
            self.register_buffer(
                'repeated_bias_index',
                self._neighbour_bias_index()[:, slots.repeated],
                persistent=False)
            self.register_buffer(
                'repeated_slots', w * w + slots.repeated_as, persistent=False)
            self.register_buffer(
                'repeated_first_index',
                self.bias_index[:, self.repeated_slots],
                persistent=False)

        for table in self._bias_tables():
            trunc_normal_(table, std=.02)

    def _bias_tables(self):
        yield self.relative_position_bias_table
        if self.expand_size > 0:
            yield self.relative_position_bias_table_to_neighbors
        yield from self.relative_position_bias_table_to_windows

    def _neighbour_bias_index(self) -> torch.Tensor:
        """``(w*w, n)`` index of the official surrounding slots into the
        concatenated bias tables."""
        w = self.window_size
        n = num_expanded_keys(w, self.expand_size)
        return (2 * w - 1)**2 + torch.arange(w * w * n).view(w * w, n)

    def _bias_index(self, expand_size: int) -> torch.Tensor:
        """``(w*w, N)`` index into the concatenated, head-major bias tables
        (of the first official slot of each surrounding token)."""
        w = self.window_size
        parts = [relative_position_index(w, w)]
        offset = (2 * w - 1)**2
        if self.expand_size > 0:
            n = num_expanded_keys(w, self.expand_size)
            if expand_size > 0:
                first = expanded_key_slots(w, self.expand_size).first
                parts.append(self._neighbour_bias_index()[:, first])
            offset += w * w * n
        for k, focal_window in enumerate(self.pooled_windows):
            extent = pooled_extent(focal_window, k)
            parts.append(offset + relative_position_index(w, extent))
            offset += (w + extent - 1)**2
        return torch.cat(parts, dim=1)

    def position_bias(self, expanded: bool) -> torch.Tensor:
        """All relative position biases, ``(num_heads, w*w, N)``."""
        heads = self.num_heads
        tables = [self.relative_position_bias_table.t()]
        if self.expand_size > 0:
            tables.append(
                self.relative_position_bias_table_to_neighbors.reshape(
                    heads, -1))
        tables.extend(self.relative_position_bias_table_to_windows)
        tables = torch.cat(tables, dim=1)
        if self.expand_size == 0:
            return tables[:, self.bias_index]
        if not expanded:
            return tables[:, self.bias_index_unexpanded]
        # A token in two official slots is one slot here: its weight, the
        # sum of theirs, is what the log-sum-exp of their biases gives.
        return MergedPositionBias.apply(tables, self.bias_index,
                                        self.repeated_slots,
                                        self.repeated_bias_index,
                                        self.repeated_first_index)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_map(x, self.embed_dims, 'FocalAttention')
        call = self._call(x)
        t, rows = call.tables, call.rows
        num_windows, N = rows.key_rows.shape
        plan = self.plan(x.device)
        chunk = plan.windows_per_chunk(self.embed_dims, self.num_heads,
                                       self.window_size**2, N,
                                       t.keys.element_size())
        chunks = list(
            window_chunks(num_windows, num_windows // x.shape[0], chunk,
                          call.geom.slot_groups))
        out = self.attend(t, rows, call.bias, chunks, plan)
        return self.output(out, t, x.shape[1], x.shape[2])

    def _call(self, x: torch.Tensor) -> _Call:
        """Projects the map and its pooled tokens, and looks up the gather
        tables, the position bias and the masks of its size (keys outside
        the pooled grid are zero vectors whose logits get MASK_VALUE)."""
        B, H, W, _ = x.shape
        w = self.window_size
        # The official model does not expand a map that fits in one window.
        expand = 0 if fits_one_window(H, W, w) else self.expand_size
        geom_args = (H + -H % w, W + -W % w, w, expand, self.shift_for(H, W),
                     self.pooled_windows, x.device,
                     self.plan(x.device).crop_slots)
        geom = focal_geometry(*geom_args)
        tables = self.project(x, geom.pooled_sizes, geom_args[4],
                              geom.key_mask is not None)
        return _Call(
            tables=tables,
            geom=geom,
            rows=focal_window_rows(geom_args, B, tables.keys.dtype),
            bias=self.position_bias(expand > 0).unsqueeze(0))

    @torch.no_grad()
    def query_attention(self, x: torch.Tensor, y: int, x_pos: int) -> dict:
        """What the token at ``(y, x_pos)`` of map ``x`` (1, H, W, C)
        attends, for visualisation.

        Returns a dict with ``weights`` (heads, N), the attention weight of
        each key slot; ``boxes`` (N, 4), the ``(y0, x0, y1, x1)`` map area
        (in tokens, end exclusive) each key stands for: one token for the
        fine keys, a pooled sub-window for the coarse ones; and ``levels``
        (N,), 0 for fine keys and ``k + 1`` for pooled level ``k``. Slots
        outside the pooled grid get level -1.
        """
        check_map(x, self.embed_dims, 'FocalAttention')
        call = self._call(x)
        t, geom = call.tables, call.geom
        w, (Hp, Wp), shift = self.window_size, t.padded_size, t.shift
        sy, sx = (y - shift) % Hp, (x_pos - shift) % Wp  # shifted position
        window = (sy // w) * (Wp // w) + sx // w
        row = (sy % w) * w + sx % w
        q = gather_windows(t.queries, call.rows.query_rows[window], 1,
                           self.num_heads)
        k = gather_windows(t.keys, call.rows.key_rows[window], 1,
                           self.num_heads)
        logits = self.scale * torch.einsum('hd,hnd->hn', q[0, :, row], k[0])
        bias = call.rows.masks.with_bias(
            call.bias.to(t.queries.dtype), Chunk(window, window + 1))
        logits = logits + bias[0, :, row]
        slots = geom.key_index[window]

        boxes, levels = [], []
        bounds = geom.pooled_offsets
        for t in slots.tolist():
            if t < Hp * Wp:
                ty, tx = divmod(t, Wp)
                ty, tx = (ty + shift) % Hp, (tx + shift) % Wp
                boxes.append((ty, tx, ty + 1, tx + 1))
                levels.append(0)
                continue
            level = next((k for k in range(len(bounds) - 1)
                          if bounds[k] <= t < bounds[k + 1]), None)
            if level is None:  # the zero row
                boxes.append((0, 0, 0, 0))
                levels.append(-1)
                continue
            Ph, Pw = geom.pooled_sizes[level]
            py, px = divmod(t - bounds[level], Pw)
            sub = w // 2**level
            # The pooled maps are centre-trimmed or -padded (see pool_map).
            y0 = centre_start(Hp, Ph * sub) + py * sub + shift
            x0 = centre_start(Wp, Pw * sub) + px * sub + shift
            boxes.append((y0, x0, y0 + sub, x0 + sub))
            levels.append(level + 1)
        return dict(
            weights=logits.softmax(-1),
            boxes=torch.tensor(boxes),
            levels=torch.tensor(levels))

    def _family_repr(self) -> dict:
        return dict(
            expand_size=self.expand_size, focal_window=self.focal_window)
