# Copyright (c) focal_mm contributors. All rights reserved.
"""Which tokens every query window of Focal-fast attention attends.

At every focal level a ``w x w`` query window attends the ``focal_topk``
tokens nearest to it: at level 0 the fine tokens nearest to its centre
token, at level ``l >= 1`` the cells of the window grid nearest to its own
cell, taken (the official index quirk) from the flattened pooled map of
level ``l - 1``. The position bias of a key is an MLP of the float
coordinate ``query - key``. All of this depends only on the map size and the
options, so it is computed once per size and cached; a forward pass then
needs one gather of keys and values and one small MLP evaluation.

Keys are gathered from one token table laid out as::

    [fine map (Hp * Wp) | pooled level 0 | pooled level 1 | ...]

The bias MLPs run on a table of coordinates: for level ``l`` every distinct
key offset (centre minus key, in tokens at level 0 and in cells times the
window at the others) plus every query offset in the window. Column ``d``
of the bias table ``(heads, w * w, D)`` is one such key offset;
``bias_index`` gives the column of every key slot.

Within a level the key slots of a window are sorted by offset (the official
order is that of ``torch.topk``; attention does not depend on it), so that
windows that attend the same relative pattern share one row of
``bias_index``. Windows are sorted by that row: ``runs`` gives the lengths
of the runs of equal rows.
"""
from typing import List, NamedTuple, Tuple

import torch

from .geometry_cache import GEOMETRY_CACHE
from .window_rows import WindowRows, window_major_rows

# Distances of about this many (window, token) pairs at a time.
_DISTANCE_CHUNK = 2**18


class FastGeometry(NamedTuple):
    """Cached gather indices and bias coordinates for one padded map size.

    Attributes:
        query_index (Tensor): ``(nW, w * w)`` fine-map index of every query
            (row-major tokens; windows in the order of ``runs``).
        key_index (Tensor): ``(nW, N)`` token-table index of every key slot,
            ``N = K_0 + K_1 + ...`` (level 0 first).
        bias_index (Tensor): ``(nW, N)`` bias-table column of every key
            slot.
        coords (tuple[Tensor]): Per level, the ``(D_l * w * w, 2)`` float32
            ``(dy, dx)`` inputs of its bias MLP, key offset major: the bias
            table is the concatenation of the levels' ``(D_l, w * w)``
            outputs along the key offsets.
        runs (tuple[int]): Lengths of the runs of consecutive windows with
            the same ``bias_index`` row.
        num_keys (tuple[int]): ``K_l`` of every level.
        pooled_sizes (tuple): ``(Ph, Pw)`` of every pooled map.
    """
    query_index: torch.Tensor
    key_index: torch.Tensor
    bias_index: torch.Tensor
    coords: Tuple[torch.Tensor, ...]
    runs: Tuple[int, ...]
    num_keys: Tuple[int, ...]
    pooled_sizes: Tuple[Tuple[int, int], ...]


def nearest_tokens(rows: torch.Tensor, cols: torch.Tensor, height: int,
                   width: int, k: int) -> torch.Tensor:
    """The ``k`` tokens of a ``height x width`` grid nearest to each point
    ``(rows[i], cols[i])``, as flat row-major indices ``(n, k)``.

    Exactly the official choice: ``torch.topk(-distance, k, dim=1)`` of the
    float32 Euclidean distances to all tokens, ``sqrt(dy**2 + dx**2)`` from
    integer differences, which also decides which of several tied tokens
    get in. ``torch.topk`` on CPU treats every row on its own, so the rows
    are computed a chunk at a time (never ``n x HW`` distances at once) with
    the same result.
    """
    token_y = torch.arange(height).repeat_interleave(width)
    token_x = torch.arange(width).repeat(height)
    step = max(1, _DISTANCE_CHUNK // (height * width))
    out = []
    for start in range(0, rows.numel(), step):
        dy = rows[start:start + step, None] - token_y[None]
        dx = cols[start:start + step, None] - token_x[None]
        dist = torch.sqrt(dy.float()**2 + dx.float()**2)
        out.append(torch.topk(-dist, k, dim=1).indices)
    return torch.cat(out)


@torch.compiler.assume_constant_result
def focal_fast_geometry(height: int, width: int, window_size: int,
                        focal_topk: int, num_levels: int,
                        device: torch.device) -> FastGeometry:
    """Index tables of one Focal-fast attention call on a padded map,
    cached (see ``geometry_cache.py``).

    Args:
        height (int): Padded map height, a multiple of ``window_size``.
        width (int): Padded map width, a multiple of ``window_size``.
        window_size (int): Query window side ``w``.
        focal_topk (int): Keys per level (at most the tokens there are).
        num_levels (int): Attention levels, the fine one included.
        device (torch.device): Where the tensors live.
    """
    args = (height, width, window_size, focal_topk, num_levels, device)
    return GEOMETRY_CACHE.get(('focal_fast', ) + args,
                              lambda: _build_geometry(*args))


@torch.compiler.assume_constant_result
def fast_window_rows(geom_args: tuple, batch: int) -> WindowRows:
    """The gather tables of a batch of ``batch`` images for the geometry of
    ``focal_fast_geometry(*geom_args)``, window-major (the images of one
    window next to each other, so that they share a bias); cached."""

    def build():
        geom = focal_fast_geometry(*geom_args)
        height, width = geom_args[:2]
        tokens = height * width + sum(h * w for h, w in geom.pooled_sizes)
        return WindowRows(
            query_rows=window_major_rows(geom.query_index, batch,
                                         height * width),
            key_rows=window_major_rows(geom.key_index, batch, tokens),
            bias_index=geom.bias_index.repeat_interleave(batch, dim=0))

    return GEOMETRY_CACHE.get(('focal_fast_rows', geom_args, batch), build)


def _build_geometry(height: int, width: int, window_size: int, focal_topk: int,
                    num_levels: int, device: torch.device) -> FastGeometry:
    w = window_size
    n_rows, n_cols = height // w, width // w
    win_y = torch.arange(n_rows).repeat_interleave(n_cols)  # (nW,)
    win_x = torch.arange(n_cols).repeat(n_rows)
    iy, ix = torch.meshgrid(torch.arange(w), torch.arange(w), indexing='ij')
    query_index = (win_y[:, None] * w + iy.reshape(1, -1)) * width + (
        win_x[:, None] * w + ix.reshape(1, -1))
    # (dy, dx) of every query from the window's centre token (row-major).
    query_offsets = torch.stack([iy, ix], -1).view(-1, 2) - w // 2

    # Level 0: fine tokens nearest to the centre token of each window. The
    # official factor is height // n_rows, for both axes.
    factor = height // n_rows
    cy, cx = win_y * factor + factor // 2, win_x * factor + factor // 2
    fine = nearest_tokens(cy, cx, height, width, min(focal_topk,
                                                     height * width))
    levels = [(fine, cy[:, None] - fine // width, cx[:, None] - fine % width,
               1)]
    # Levels >= 1: cells of the window grid nearest to the window's own
    # cell, the same for every level; their flat index is used as it is on
    # each (wider) pooled map, and their offsets are scaled by the window.
    pooled_sizes: List[Tuple[int, int]] = []
    if num_levels > 1:
        cells = nearest_tokens(win_y, win_x, n_rows, n_cols,
                               min(focal_topk, n_rows * n_cols))
        offset = height * width
        for level in range(num_levels - 1):
            levels.append((offset + cells, win_y[:, None] - cells // n_cols,
                           win_x[:, None] - cells % n_cols, w))
            pooled_sizes.append((n_rows * 2**level, n_cols * 2**level))
            offset += n_rows * n_cols * 4**level

    key_index, bias_index, coords = [], [], []
    columns = 0
    for keys, dy, dx, scale in levels:
        offsets, slot_offset = torch.unique(
            torch.stack([dy, dx], -1).view(-1, 2), dim=0, return_inverse=True)
        slot_offset = slot_offset.view(dy.shape)
        # Canonical slot order within the level (distinct tokens have
        # distinct offsets).
        order = slot_offset.argsort(dim=1)
        key_index.append(keys.gather(1, order))
        bias_index.append(columns + slot_offset.gather(1, order))
        columns += len(offsets)
        coords.append(
            (offsets[:, None] * scale + query_offsets[None]).view(-1,
                                                                  2).float())
    key_index = torch.cat(key_index, dim=1)
    bias_index = torch.cat(bias_index, dim=1)

    _, pattern, runs = torch.unique(
        bias_index, dim=0, return_inverse=True, return_counts=True)
    windows = pattern.argsort(stable=True)
    return FastGeometry(
        query_index=query_index[windows].to(device),
        key_index=key_index[windows].to(device),
        bias_index=bias_index[windows].to(device),
        coords=tuple(c.to(device) for c in coords),
        runs=tuple(runs.tolist()),
        num_keys=tuple(keys.shape[1] for keys, _, _, _ in levels),
        pooled_sizes=tuple(pooled_sizes))
