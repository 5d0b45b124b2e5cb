# Copyright (c) focal_mm contributors. All rights reserved.
"""The pooled (coarse) tokens of focal attention, shared by both families.

At pooled level ``k`` the map is cut into sub-windows of
``window_size // 2**k`` tokens a side on a grid of ``ceil(Hp / w) * 2**k`` by
``ceil(Wp / w) * 2**k`` cells; the map is first centre-trimmed or
centre-zero-padded to whole sub-windows (the smaller half of the difference
on top and left), then every sub-window becomes one token.
"""
from typing import List, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

POOL_METHODS = ('fc', 'conv', 'mean', 'max', 'none')


def centre_start(length: int, size: int) -> int:
    """Where a centred span of ``size`` starts in one of ``length``, the
    smaller half of the difference first (negative: zero padding)."""
    diff = length - size
    return diff // 2 if diff >= 0 else -(-diff // 2)


def centre_fit(x: torch.Tensor, dim: int, size: int) -> torch.Tensor:
    """Trims or zero-pads ``dim`` of ``x`` to ``size``, centred."""
    start = centre_start(x.shape[dim], size)
    if x.shape[dim] >= size:
        return x.narrow(dim, start, size)
    pad = [0, 0] * (x.dim() - dim - 1) + [-start, size - x.shape[dim] + start]
    return F.pad(x, pad)


def check_pool_method(pool_method: str, name: str) -> None:
    """Raises ValueError for an unknown pooling method, naming the argument
    that gave it."""
    if pool_method not in POOL_METHODS:
        raise ValueError(f'{name} must be one of {POOL_METHODS}, got '
                         f'{pool_method!r}')


def check_pooled_window(window_size: int, num_pooled: int,
                        focal_level: int) -> None:
    """Raises ValueError when the window is too small to give every pooled
    level sub-windows of at least one token."""
    if num_pooled and window_size // 2**(num_pooled - 1) < 1:
        raise ValueError(
            f'window_size {window_size} is too small for {focal_level} '
            f'focal levels: level {num_pooled - 1} pools sub-windows of '
            f'window_size // 2**{num_pooled - 1} = 0 tokens')


def build_pool_layers(pool_method: str, embed_dims: int, window_size: int,
                      num_pooled: int) -> nn.ModuleList:
    """The parameters of each pooled level: ``fc`` a Linear(sub*sub, 1)
    over the positions of a sub-window, shared by channels and starting as
    their mean; ``conv`` a depth-wise Conv2d with kernel = stride = sub;
    ``mean``, ``max`` and ``none`` have none."""
    layers = nn.ModuleList()
    for k in range(num_pooled):
        sub = window_size // 2**k
        if pool_method == 'fc':
            fc = nn.Linear(sub * sub, 1)
            nn.init.constant_(fc.weight, 1. / (sub * sub))
            nn.init.zeros_(fc.bias)
            layers.append(fc)
        elif pool_method == 'conv':
            layers.append(
                nn.Conv2d(
                    embed_dims, embed_dims, sub, stride=sub,
                    groups=embed_dims))
    return layers


def pool_map(x: torch.Tensor, pool_method: str, pool_layers: nn.ModuleList,
             window_size: int, level: int, grid: Tuple[int,
                                                       int]) -> torch.Tensor:
    """Pools the padded (shifted) ``(B, Hp, Wp, C)`` map to the
    ``(B, Ph * Pw, C)`` tokens of pooled level ``level`` (grid ``(Ph, Pw)``,
    row-major)."""
    B, H, W, C = x.shape
    sub = window_size // 2**level
    target_h, target_w = grid[0] * sub, grid[1] * sub
    x = centre_fit(x, 1, target_h)
    x = centre_fit(x, 2, target_w)
    if pool_method == 'conv':
        pooled = pool_layers[level](x.permute(0, 3, 1, 2))
        return pooled.flatten(2).transpose(1, 2)
    cells = x.reshape(B, grid[0], sub, grid[1], sub, C)
    if pool_method == 'mean':
        pooled = cells.mean(dim=(2, 4))
    elif pool_method == 'max':
        pooled = cells.amax(dim=(2, 4))
    else:  # fc: one weight per sub-window position, shared by channels
        fc = pool_layers[level]
        pooled = torch.einsum('bpiqjc,ij->bpqc', cells, fc.weight.view(
            sub, sub)) + fc.bias
    return pooled.reshape(B, -1, C)


def pooled_tokens(
        x: torch.Tensor, pool_method: str, pool_layers: nn.ModuleList,
        window_size: int,
        pooled_sizes: Sequence[Tuple[int, int]]) -> List[torch.Tensor]:
    """The ``(B, Ph * Pw, C)`` tokens of every pooled level (grids
    ``pooled_sizes``) of the padded (shifted) map ``x``."""
    return [
        pool_map(x, pool_method, pool_layers, window_size, level, grid)
        for level, grid in enumerate(pooled_sizes)
    ]
