# Copyright (c) focal_mm contributors. All rights reserved.
"""Focal-fast self-attention (the official "v2") on a ``B x H x W x C``
map."""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmengine.registry import MODELS

from .focal_fast_geometry import FastGeometry, focal_fast_geometry
from .focal_pooling import (build_pool_layers, check_pool_method,
                            check_pooled_window, pooled_tokens)
from .window_attention import (WindowMasks, attend_windows, check_map,
                               check_window_args, pad_and_shift, run_chunks,
                               split_qkv, unshift_and_crop, window_major_rows,
                               windows_per_chunk)

@MODELS.register_module()
class FocalFastAttention(BaseModule):
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
    distances to all tokens, ties included; it is computed once per size on
    CPU (in chunks of windows) and cached, with everything else that depends
    only on the size (:func:`focal_fast_geometry`). The bias MLPs run once
    per call on the distinct coordinates that occur, and are gathered per
    key slot. Each call gathers keys and values of a chunk of windows and
    runs PyTorch's fused attention; training recomputes each chunk's
    weights in the backward pass (see ``window_attention.py``).

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
        window_size (int): Query window side ``w``. Default: 7.
        shift_size (int): Cyclic shift of the windows (0: none). Default: 0.
        focal_level (int): Focal levels, the fine one included. Default: 2.
        focal_topk (int): Keys per level (the official ``focal_topK``).
            Default: 128.
        pool_method (str): ``'fc'``, ``'conv'``, ``'mean'``, ``'max'`` or
            ``'none'`` (no pooled levels: only level 0 is attended).
            Default: ``'fc'``.
        qkv_bias (bool): Bias in the qkv projection. Default: True.
        qk_scale (float, optional): Overrides ``head_dims ** -0.5``.
        attn_drop_rate (float): Dropout on attention weights. Default: 0.
        proj_drop_rate (float): Dropout after the output projection.
            Default: 0.
        init_cfg (dict, optional): mmengine initialisation config.

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
                 window_size: int = 7,
                 shift_size: int = 0,
                 focal_level: int = 2,
                 focal_topk: int = 128,
                 pool_method: str = 'fc',
                 qkv_bias: bool = True,
                 qk_scale: Optional[float] = None,
                 attn_drop_rate: float = 0.,
                 proj_drop_rate: float = 0.,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        check_window_args(embed_dims, num_heads, window_size, shift_size,
                          focal_level)
        if focal_topk < 1:
            raise ValueError(f'focal_topk must be >= 1, got {focal_topk}')
        check_pool_method(pool_method)
        num_pooled = 0 if pool_method == 'none' else focal_level - 1
        check_pooled_window(window_size, num_pooled, focal_level)

        self.embed_dims = embed_dims
        self.num_heads = num_heads
        self.head_dims = embed_dims // num_heads
        self.scale = qk_scale or self.head_dims**-0.5
        self.window_size = window_size
        self.shift_size = shift_size
        self.focal_level = focal_level
        self.focal_topk = focal_topk
        self.pool_method = pool_method
        self.num_pooled = num_pooled

        self.pool_layers = build_pool_layers(pool_method, embed_dims,
                                             window_size, num_pooled)
        self.qkv = nn.Linear(embed_dims, embed_dims * 3, bias=qkv_bias)
        self.attn_drop_rate = attn_drop_rate
        self.proj = nn.Linear(embed_dims, embed_dims)
        self.proj_drop = nn.Dropout(proj_drop_rate)
        self.bias_mlps = nn.ModuleList([
            nn.Sequential(
                nn.Linear(2, self.head_dims), nn.ReLU(),
                nn.Linear(self.head_dims, num_heads))
            for _ in range(focal_level)
        ])

    def geometry(self, height: int, width: int,
                 device: torch.device) -> FastGeometry:
        """The cached key selection of a padded ``height x width`` map."""
        return focal_fast_geometry(height, width, self.window_size,
                                   self.focal_topk, 1 + self.num_pooled,
                                   device)

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
        w, heads = self.window_size, self.num_heads
        # The official model does not shift a map that fits in one window.
        shift = 0 if min(H, W) <= w else self.shift_size
        x = pad_and_shift(x, w, shift)
        Hp, Wp = x.shape[1:3]
        geom = self.geometry(Hp, Wp, x.device)

        q_proj, k_proj, v_proj = split_qkv(self.qkv, C)
        fine = x.reshape(B, Hp * Wp, C)
        tokens = [fine] + pooled_tokens(x, self.pool_method, self.pool_layers,
                                        w, geom.pooled_sizes)
        tokens = torch.cat(tokens, dim=1) if len(tokens) > 1 else fine
        keys, values = F.linear(tokens, *k_proj), F.linear(tokens, *v_proj)
        queries = F.linear(fine, *q_proj)

        # Window-major rows: the images of one window are next to each
        # other, so that they share a bias (see run_chunks).
        bias_index = geom.bias_index
        if B > 1:
            bias_index = bias_index.repeat_interleave(B, dim=0)
        chunk = windows_per_chunk(C, heads, w * w, geom.key_index.shape[1],
                                  keys.element_size())
        out = attend_windows(
            queries.reshape(B * Hp * Wp, C),
            keys.reshape(-1, C),
            values.reshape(-1, C),
            window_major_rows(geom.query_index, B, Hp * Wp),
            window_major_rows(geom.key_index, B, tokens.shape[1]),
            self.bias_table(geom).to(queries.dtype),
            WindowMasks(),
            heads,
            self.scale,
            run_chunks(geom.runs, B, chunk),
            self.attn_drop_rate,
            self.training,
            bias_index=bias_index)
        out = self.proj_drop(self.proj(out.view(B, Hp, Wp, C)))
        return unshift_and_crop(out, shift, H, W)

    def extra_repr(self) -> str:
        return (f'embed_dims={self.embed_dims}, num_heads={self.num_heads}, '
                f'window_size={self.window_size}, '
                f'shift_size={self.shift_size}, '
                f'focal_level={self.focal_level}, '
                f'focal_topk={self.focal_topk}, '
                f'pool_method={self.pool_method!r}')
