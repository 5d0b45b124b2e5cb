# Copyright (c) focal_mm contributors. All rights reserved.
"""Focal-fast self-attention (the official "v2") on a ``B x H x W x C``
map."""

import torch
import torch.nn as nn
from mmengine.registry import MODELS

from ...ops.window_chunks import run_chunks
from ..geometry.focal_fast_geometry import (FastGeometry, fast_window_rows,
                                            focal_fast_geometry)
from .window_attention_base import WindowAttentionBase, check_map


@MODELS.register_module()
class FocalFastAttention(WindowAttentionBase):
    """Focal-fast self-attention, the authors' second release
    (``classification/focal_transformer_v2.py`` of microsoft/Focal-
    Transformer).

    Every ``window_size`` square of queries attends, at each focal level,
    the ``focal_topk`` tokens nearest to it, and the position bias of a key
    comes from a small MLP per level on the float coordinate
    ``(dy, dx) = query - key``:

    - level 0: the ``min(focal_topk, Hp * Wp)`` fine tokens nearest to the
      window's centre token ``(i * w + w // 2, j * w + w // 2)``; coordinate
      in tokens.
    - level ``l >= 1`` (pooled map ``l - 1``, sub-windows of
      ``window_size // 2**(l - 1)``): the ``min(focal_topk, nWh * nWw)``
      cells of the ``nWh x nWw`` window grid nearest to the window's own
      cell. As in the official code, their flat index on that grid is used
      on the flattened pooled map, which for ``l >= 2`` is ``2**(l - 1)``
      times wider (so those levels attend other cells than the nearest
      ones). Coordinate: (window cell - key cell) * ``window_size`` plus the
      query's offset from the window centre.

    "Nearest" is exactly the official choice, ``torch.topk`` of the float32
    distances to all tokens on the CPU, ties included; it is found once per
    size, mostly among the tokens near each window
    (:func:`~focal_mm.models.geometry.focal_fast_geometry.nearest_tokens`), and
    cached with everything else that depends only on the size
    (:func:`~focal_mm.models.geometry.focal_fast_geometry.
    focal_fast_geometry`). The bias MLPs run once per call on the distinct
    coordinates that occur, and are gathered per key slot. The attention
    runs as the execution plan of the device says
    (:mod:`focal_mm.ops.execution_plan`), or in the Triton kernel.

    Numerically identical to the official model where it runs (maps that
    are multiples of the window, or fit in one). Beyond it:

    - Any size works: the map is zero-padded at the bottom and right to
      window multiples (``Hp x Wp``), padded tokens are attended as zero
      features (as in :class:`FocalAttention`) and the nearest tokens are
      chosen on the padded map.
    - A map that fits in one window (``min(H, W) <= window_size``) is not
      shifted, as in the official model. Where ``min(H, W)`` equals the
      window the official model runs one row (or column) of windows, and so
      does this one. Where it is smaller the official model shrinks the
      window to ``min(H, W)``; this one keeps ``window_size`` and pads the
      map up to it (the parameters, e.g. ``fc`` pooling weights, keep their
      shapes).
    - ``shift_size`` rolls the map by ``-shift_size`` before attention and
      back after it, without the shifted-window mask (the official model
      builds one and never uses it).

    Args:
        embed_dims (int): Channels ``C`` of the map.
        num_heads (int): Attention heads; must divide ``embed_dims``.
        focal_topk (int): Keys per level (the official ``focal_topK``).
            Default: 128.
        **kwargs: The arguments both families share (``window_size``,
            ``shift_size``, ``focal_level``, ``pool_method``, whose
            ``'none'`` attends level 0 only, ``qkv_bias``, ``qk_scale``,
            ``attn_drop_rate``, ``proj_drop_rate``, ``attn_chunk_bytes``,
            ``attn_impl``, ``init_cfg``): see
            :class:`~focal_mm.models.attention.window_attention_base.
            WindowAttentionBase`.

    Parameters: ``qkv`` Linear(C, 3C) (also applied to the pooled tokens),
    ``proj`` Linear(C, C), ``pool_layers.{k}`` for ``k < focal_level - 1``
    (as :class:`FocalAttention`'s; the official model keeps them on the
    block) and ``bias_mlps.{l}``, ``Linear(2, head_dims) -> ReLU ->
    Linear(head_dims, num_heads)``, one for each of the ``focal_level``
    levels (the official ``attn.coord2rpb_all.{l}``). As in the official
    model there are ``focal_level`` of them even with ``pool_method='none'``,
    where only ``bias_mlps.0`` is used (the official forward fails there).

    Shape:
        - input: ``(B, H, W, C)``, any ``H``, ``W``
        - output: ``(B, H, W, C)``
        - keys per window: ``N = K_0 + (focal_level - 1) * K_1`` (``K_0``
          only with ``'none'``), ``K_0 = min(focal_topk, Hp * Wp)``,
          ``K_1 = min(focal_topk, nWh * nWw)``, ``nWh = Hp / w``,
          ``nWw = Wp / w``.
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 focal_topk: int = 128,
                 **kwargs) -> None:
        super().__init__(embed_dims, num_heads, **kwargs)
        if focal_topk < 1:
            raise ValueError(f'focal_topk must be >= 1, got {focal_topk}')
        self.focal_topk = focal_topk
        self.build_layers()
        self.bias_mlps = nn.ModuleList([
            nn.Sequential(
                nn.Linear(2, self.head_dims), nn.ReLU(),
                nn.Linear(self.head_dims, num_heads))
            for _ in range(self.focal_level)
        ])

    def geometry(self, height: int, width: int,
                 device: torch.device) -> FastGeometry:
        """The cached key selection of a padded ``height x width`` map."""
        return focal_fast_geometry(*self._geometry_args(height, width, device))

    def _geometry_args(self, height: int, width: int,
                       device: torch.device) -> tuple:
        return (height, width, self.window_size, self.focal_topk,
                1 + self.num_pooled, device)

    def bias_table(self, geom: FastGeometry) -> torch.Tensor:
        """The bias MLPs on the coordinates of ``geom``: ``(num_heads,
        w * w, D)``, one column per key offset (see ``geom.bias_index``)."""
        L = self.window_size**2
        tables = []
        for mlp, coords in zip(self.bias_mlps, geom.coords):
            out = mlp(coords.to(mlp[0].weight.dtype))  # (D_l * L, heads)
            tables.append(out.view(-1, L, self.num_heads))
        return torch.cat(tables).permute(2, 1, 0).contiguous()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_map(x, self.embed_dims, 'FocalFastAttention')
        B, H, W, C = x.shape
        w = self.window_size
        geom_args = self._geometry_args(H + -H % w, W + -W % w, x.device)
        geom = focal_fast_geometry(*geom_args)
        t = self.project(x, geom.pooled_sizes, self.shift_for(H, W))
        rows = fast_window_rows(geom_args, B)
        plan = self.plan(x.device)
        chunk = plan.windows_per_chunk(C, self.num_heads, w * w,
                                       geom.key_index.shape[1],
                                       t.keys.element_size())
        out = self.attend(t, rows, self.bias_table(geom),
                          run_chunks(geom.runs, B, chunk), plan)
        return self.output(out, t, H, W)

    def _family_repr(self) -> dict:
        return dict(focal_topk=self.focal_topk)
