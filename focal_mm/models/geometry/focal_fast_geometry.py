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

The nearest tokens are exactly those of the official ``torch.topk`` over
the distances to all tokens, ties included, but are found among the tokens
of a square around each window wherever the tied tokens CPU topk keeps are
provably the first ones in scan order (:func:`nearest_tokens`); the
other windows, and maps of fewer than ``64 * focal_topk`` tokens, take
topk over all tokens.

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
import math
from typing import List, NamedTuple, Tuple

import torch

from ...ops.window_rows import WindowRows, window_grid, window_major_rows
from .geometry_cache import GEOMETRY_CACHE

# Distances of about this many (point, token) pairs at a time.
_DISTANCE_CHUNK = 2**18
# torch.topk on CPU selects with a heap when k * _HEAP_RATIO <= row length
# (aten/src/ATen/native/TopKImpl.h), otherwise with std::nth_element.
_HEAP_RATIO = 64


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
    ``(rows[i], cols[i])`` of the grid, as flat row-major indices ``(n, k)``
    on the device of ``rows`` (in no particular order within a row).

    Exactly the official choice: the set that ``torch.topk(-distance, k,
    dim=1)`` on CPU picks from the float32 distances to all tokens,
    ``sqrt(dy**2 + dx**2)`` from integer differences, which also decides
    which of several tied tokens get in.

    When ``k * 64 <= height * width``, CPU topk scans the row in token
    order keeping a heap of ``k`` and admits a token only if it is strictly
    nearer than the farthest one kept. Let ``d*`` be the ``k``-th smallest
    distance and ``S`` the tokens at most ``d*`` away. Until the ``k``-th
    token of ``S`` in scan order, the heap holds a token farther than
    ``d*``, so every token of ``S`` met gets in; after it, tokens at ``d*``
    are refused, and a token nearer than ``d*`` evicts a tied one that the
    layout of the heap (its whole history) picks. So where no token nearer
    than ``d*`` follows the ``k``-th token of ``S``, the choice is the first
    ``k`` tokens of ``S`` in scan order, which a stable sort of the
    distances in scan order puts first; a square around the point holds
    them all (:func:`_choose_in_squares`), so the cost follows ``k``, not
    the map. The other points, and all points when ``k * 64 > height *
    width`` (``std::nth_element``, whose ties follow no simple rule; the
    rows are short then), take CPU topk over all tokens. At ``k = 128``
    those are a few windows near the edges; at ``k = 16`` or ``64`` the
    heap's history breaks the ties of most windows.
    """
    if k * _HEAP_RATIO <= height * width:
        index, exact = _choose_in_squares(rows, cols, height, width, k)
        others = (~exact).nonzero()[:, 0]
    else:
        index = rows.new_empty(rows.numel(), k)
        others = torch.arange(rows.numel(), device=rows.device)
    if others.numel():
        index[others] = _topk_over_all_tokens(rows[others].cpu(),
                                              cols[others].cpu(), height,
                                              width, k).to(rows.device)
    return index


def _distance(dy: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
    """Float32 length of integer offsets, computed as the official model
    does. While ``dy**2 + dx**2 < 2**24`` the squares and the sum are exact
    and the square root is correctly rounded: the same on every device."""
    return torch.sqrt(dy.float()**2 + dx.float()**2)


def _topk_over_all_tokens(rows: torch.Tensor, cols: torch.Tensor, height: int,
                          width: int, k: int) -> torch.Tensor:
    """The official selection for CPU points ``(n,)``: ``(n, k)`` indices
    of ``torch.topk`` of minus the distances to all tokens. Topk treats
    every row on its own, so the rows are computed a chunk at a time (never
    ``n x HW`` distances at once) with the same result."""
    token_y = torch.arange(height).repeat_interleave(width)
    token_x = torch.arange(width).repeat(height)
    step = max(1, _DISTANCE_CHUNK // (height * width))
    return torch.cat([
        torch.topk(
            -_distance(y[:, None] - token_y, x[:, None] - token_x), k,
            dim=1).indices for y, x in zip(rows.split(step), cols.split(step))
    ])


def _choose_in_squares(rows: torch.Tensor, cols: torch.Tensor, height: int,
                       width: int,
                       k: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """:func:`_first_in_scan_order` of the tokens in a square around each
    point ``(n,)`` of the grid.

    Every token outside the square of half-side ``r`` is at least ``r + 1``
    away (the float32 square root is exact at squares and monotonic), so
    once the ``k``-th smallest distance in the square is below ``r + 1``
    the square holds every token at most ``d*`` away, in the scan order of
    the whole map. ``r`` starts at the radius of a disc of ``k`` tokens and
    doubles for the points whose square does not suffice (near the edges,
    on narrow maps), at most until the square spans the map.

    Returns:
        tuple[Tensor]: ``(n, k)`` token indices and ``(n,)`` bool, true
        where they are CPU topk's choice over the whole map.
    """
    device = rows.device
    index = rows.new_empty(rows.numel(), k)
    exact = torch.zeros(rows.numel(), dtype=torch.bool, device=device)
    pending = torch.arange(rows.numel(), device=device)
    radius = math.ceil(math.sqrt(k / math.pi))
    while pending.numel():
        half_h, half_w = min(radius, height - 1), min(radius, width - 1)
        spans_map = half_h == height - 1 and half_w == width - 1
        # Offsets of the square in scan order.
        off_y = torch.arange(
            -half_h, half_h + 1,
            device=device).repeat_interleave(2 * half_w + 1)
        off_x = torch.arange(
            -half_w, half_w + 1, device=device).repeat(2 * half_h + 1)
        if off_y.numel() >= k:
            off_dist = _distance(off_y, off_x)
            step = max(1, _DISTANCE_CHUNK // off_y.numel())
            unsettled = []
            for points in pending.split(step):
                ty = rows[points, None] + off_y
                tx = cols[points, None] + off_x
                inside = (ty >= 0) & (ty < height) & (tx >= 0) & (tx < width)
                order, kth, first_exact = _first_in_scan_order(
                    torch.where(inside, off_dist, torch.inf), k)
                settled = (kth < radius + 1) | spans_map
                index[points] = (ty * width + tx).gather(1, order)
                exact[points] = settled & first_exact
                unsettled.append(points[~settled])
            pending = torch.cat(unsettled)
        radius *= 2
    return index, exact


def _first_in_scan_order(
        dist: torch.Tensor,
        k: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The ``k`` smallest of each row of distances ``(n, M)`` given in scan
    order, ties to the first in scan order, and whether CPU topk's heap
    picks the same from any longer row (of at least ``64 * k``) holding
    these in the same order and nothing nearer than their ``k``-th.

    Returns:
        tuple[Tensor]: ``(n, k)`` column indices, ``(n,)`` ``k``-th
        smallest distance ``d*`` and ``(n,)`` bool, true where no distance
        below ``d*`` follows the ``k``-th one at most ``d*`` in scan order
        (see :func:`nearest_tokens`).
    """
    dist, order = dist.sort(dim=1, stable=True)
    kth = dist[:, k - 1]
    if dist.shape[1] == k:
        return order, kth, torch.ones_like(kth, dtype=torch.bool)
    # The k-th at most d* in scan order is the last chosen one; it follows
    # every chosen one nearer than d* unless a tie is left out before one.
    last_nearer = torch.where(dist[:, :k] < kth[:, None], order[:, :k],
                              -1).amax(1)
    exact = (dist[:, k] > kth) | (last_nearer < order[:, k])
    return order[:, :k], kth, exact


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
        device (torch.device): Where the tensors are built and live (the
            few windows whose nearest tokens need topk over the whole map
            take it on CPU).
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
    win_y, win_x, iy, ix, query_index = window_grid(height, width, w, device)
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
        offsets, slot_offset = _unique_offsets(dy, dx)
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

    windows, runs = _sorted_runs(bias_index)
    return FastGeometry(
        query_index=query_index[windows],
        key_index=key_index[windows],
        bias_index=bias_index[windows],
        coords=tuple(coords),
        runs=runs,
        num_keys=tuple(keys.shape[1] for keys, _, _, _ in levels),
        pooled_sizes=tuple(pooled_sizes))


def _unique_offsets(dy: torch.Tensor,
                    dx: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """The distinct ``(dy, dx)`` of integer offsets in lexicographic order
    ``(D, 2)``, and the index of each offset among them (shape of ``dy``):
    ``torch.unique(dim=0)``'s result, from one integer key per offset
    (``unique`` over rows sorts rows one element at a time, 20 times
    slower)."""
    low_y, low_x = int(dy.min()), int(dx.min())
    span = int(dx.max()) - low_x + 1
    keys, inverse = torch.unique((dy - low_y) * span + (dx - low_x),
                                 return_inverse=True)
    return torch.stack([keys // span + low_y, keys % span + low_x],
                       1), inverse


def _sorted_runs(rows: torch.Tensor) -> Tuple[torch.Tensor, Tuple[int, ...]]:
    """The order that sorts the rows of ``rows`` ``(n, N)``
    lexicographically, equal rows in their order (``torch.unique(dim=0)``'s
    order, by one stable sort per column from the last), and the lengths of
    the runs of equal rows in it."""
    order = torch.arange(rows.shape[0], device=rows.device)
    for column in rows.unbind(1)[::-1]:
        order = order[column[order].argsort(stable=True)]
    ordered = rows[order]
    starts = torch.ones(len(order), dtype=torch.bool, device=rows.device)
    starts[1:] = (ordered[1:] != ordered[:-1]).any(1)
    bounds = starts.nonzero()[:, 0].tolist() + [len(order)]
    return order, tuple(b - a for a, b in zip(bounds, bounds[1:]))
