# Copyright (c) focal_mm contributors. All rights reserved.
"""Which tokens every query window of focal self-attention attends.

Focal attention gives each ``w x w`` query window three kinds of keys: its own
tokens, a ring of fine tokens around it (taken from four cyclic rolls of the
map, so they wrap around the border) and, per pooled level, a neighbourhood of
pooled tokens. Everything about *which* token sits in which key slot depends
only on the map size and the block's hyper-parameters, so it is computed once
per size and cached; a forward pass then needs one gather.

Keys are gathered from one token table laid out as::

    [fine map (Hp * Wp) | pooled level 0 | pooled level 1 | ... | zero row]

Slots of a pooled neighbourhood that fall outside the pooled grid point at the
trailing zero row (the official code unfolds with zero padding) and get
``MASK_VALUE`` added to their logits.
"""
from itertools import groupby
from typing import List, NamedTuple, Optional, Tuple

import torch

from ...ops.window_chunks import SlotGroup
from ...ops.window_masks import WindowMasks
from ...ops.window_rows import WindowRows, batched, batched_rows, window_grid
from .geometry_cache import GEOMETRY_CACHE

# The additive logit mask of the official implementation (not -inf).
MASK_VALUE = -100.0
# Least share of a window's key slots that must fall off the pooled grid's
# rows for its row of windows to attend the others only (see _slot_groups).
MIN_CROPPED = 0.1


def pooled_kernel(focal_window: int, level: int) -> int:
    """Unfold kernel of pooled level ``level`` (before the k > 0 trim)."""
    return 2 * (focal_window // 2) + 2**(level + 1) - 1


def pooled_extent(focal_window: int, level: int) -> int:
    """Side of the pooled neighbourhood a window attends at ``level``."""
    return focal_window + 2**level - 1


def num_expanded_keys(window_size: int, expand_size: int) -> int:
    """Number of fine surrounding keys: four rolled windows minus overlaps."""
    return 4 * (window_size**2 - (window_size - expand_size)**2)


def _expanded_offsets(window_size: int,
                      expand_size: int) -> List[Tuple[int, int]]:
    """(dy, dx) offsets of the surrounding keys of a window, in slot order.

    A roll by ``(sy, sx)`` moves the token at ``(y - sy, x - sx)`` to
    ``(y, x)``; from each rolled window only the tokens outside the corner
    that overlaps the window itself are kept, row-major, rolls in the order
    (-e, -e), (-e, +e), (+e, -e), (+e, +e).
    """
    w, e = window_size, expand_size
    offsets = []
    for sy, sx in ((-e, -e), (-e, e), (e, -e), (e, e)):
        for i in range(w):
            for j in range(w):
                inside_rows = i < w - e if sy < 0 else i >= e
                inside_cols = j < w - e if sx < 0 else j >= e
                if not (inside_rows and inside_cols):
                    offsets.append((i - sy, j - sx))
    return offsets


class ExpandedSlots(NamedTuple):
    """The surrounding key slots, against the official model's.

    The four rolled windows overlap pairwise (never three at a time outside
    the window itself): 12 of the 132 official slots of the released
    geometry repeat another slot's token. Keys that are one token share key
    and value, so attention over one slot whose bias is the log-sum-exp of
    theirs is the same; see ``FocalAttention.position_bias``.

    Attributes:
        offsets (list): Distinct ``(dy, dx)`` offsets, one slot each.
        first (Tensor): The official slot of each distinct one (its first).
        repeated (Tensor): The official slots that repeat a token.
        repeated_as (Tensor): The distinct slot each of them repeats.
    """
    offsets: List[Tuple[int, int]]
    first: torch.Tensor
    repeated: torch.Tensor
    repeated_as: torch.Tensor


def expanded_key_slots(window_size: int, expand_size: int) -> ExpandedSlots:
    """The distinct surrounding key slots (see :class:`ExpandedSlots`)."""
    official = _expanded_offsets(window_size, expand_size)
    offsets = list(dict.fromkeys(official))
    first = [official.index(o) for o in offsets]
    repeated = [i for i in range(len(official)) if i not in first]
    return ExpandedSlots(
        offsets=offsets,
        first=torch.tensor(first),
        repeated=torch.tensor(repeated, dtype=torch.long),
        repeated_as=torch.tensor(
            [offsets.index(official[i]) for i in repeated], dtype=torch.long))


class FocalGeometry(NamedTuple):
    """Cached gather indices and masks for one map size.

    Attributes:
        query_index (Tensor): ``(nW, w * w)`` fine-map index of every query
            (row-major windows, row-major tokens).
        key_index (Tensor): ``(nW, N)`` token-table index of every key slot.
        key_mask (Tensor | None): ``(nW, N)`` additive mask, MASK_VALUE for
            the slots that point at the zero row (pooled slots outside the
            grid), or None when there are none.
        region_mask (Tensor | None): ``(nW, w * w, w * w)`` additive mask of
            the shifted-window regions (own-window keys only), or None.
        pooled_sizes (tuple): ``(Ph, Pw)`` of every pooled level.
        pooled_offsets (tuple): Row of the token table where each pooled
            level starts, then the zero row.
        slot_groups (tuple[SlotGroup]): Runs of window rows (as window
            ranges of one image) whose pooled neighbourhoods lose the same
            rows off the grid, with the key slots they keep (None: all);
            empty when no window loses any. Attending only those slots
            leaves out keys whose weight the mask makes ``exp(-100)``
            times smaller than the others', below float64 resolution.
    """
    query_index: torch.Tensor
    key_index: torch.Tensor
    key_mask: Optional[torch.Tensor]
    region_mask: Optional[torch.Tensor]
    pooled_sizes: Tuple[Tuple[int, int], ...]
    pooled_offsets: Tuple[int, ...]
    slot_groups: Tuple[SlotGroup, ...] = ()


def _region_mask(height: int, width: int, window_size: int, shift_size: int,
                 device: torch.device) -> torch.Tensor:
    """Swin's mask between tokens that the cyclic shift made neighbours."""
    labels = torch.zeros(height, width, dtype=torch.long, device=device)
    cuts = (slice(0,
                  -window_size), slice(-window_size,
                                       -shift_size), slice(-shift_size, None))
    region = 0
    for rows in cuts:
        for cols in cuts:
            labels[rows, cols] = region
            region += 1
    w = window_size
    labels = labels.view(height // w, w, width // w, w).permute(0, 2, 1, 3)
    labels = labels.reshape(-1, w * w)
    differ = labels[:, :, None] != labels[:, None, :]
    return differ.to(torch.float32) * MASK_VALUE


@torch.compiler.assume_constant_result
def focal_geometry(height: int,
                   width: int,
                   window_size: int,
                   expand_size: int,
                   shift_size: int,
                   focal_windows: Tuple[int, ...],
                   device: torch.device,
                   crop_slots: bool = True) -> FocalGeometry:
    """Index tables of one focal attention call on a padded map, built on
    ``device`` and cached (see ``geometry_cache.py``).

    Args:
        height (int): Padded map height, a multiple of ``window_size``.
        width (int): Padded map width, a multiple of ``window_size``.
        window_size (int): Query window side ``w``.
        expand_size (int): Fine surrounding width ``e`` (0: none).
        shift_size (int): Cyclic shift of the map (0: none).
        focal_windows (tuple[int]): The focal window of each pooled level
            (empty: no pooled levels).
        device (torch.device): Where the tensors are built and live.
        crop_slots (bool): Whether to find the slot groups (see
            :class:`FocalGeometry`); else ``slot_groups`` is empty.
    """
    args = (height, width, window_size, expand_size, shift_size,
            focal_windows, device, crop_slots)
    return GEOMETRY_CACHE.get(('focal', ) + args,
                              lambda: _build_geometry(*args))


@torch.compiler.assume_constant_result
def focal_window_rows(geom_args: tuple, batch: int,
                      dtype: torch.dtype) -> WindowRows:
    """The gather tables of a batch of ``batch`` images for the geometry of
    ``focal_geometry(*geom_args)``, masks in ``dtype``; cached."""

    def build():
        geom = focal_geometry(*geom_args)
        height, width = geom_args[:2]
        # Token table rows per image: the map, the pooled levels and, where
        # slots are padded, the zero row.
        tokens = geom.pooled_offsets[-1] + (geom.key_mask is not None)
        masks = WindowMasks(*(None if m is None else batched(
            m.to(dtype), batch) for m in (geom.key_mask, geom.region_mask)))
        return WindowRows(
            query_rows=batched_rows(geom.query_index, batch, height * width),
            key_rows=batched_rows(geom.key_index, batch, tokens),
            masks=masks)

    return GEOMETRY_CACHE.get(('focal_rows', geom_args, batch, dtype), build)


def _build_geometry(height: int, width: int, window_size: int,
                    expand_size: int, shift_size: int,
                    focal_windows: Tuple[int, ...], device: torch.device,
                    crop_slots: bool) -> FocalGeometry:
    w = window_size
    n_rows, n_cols = height // w, width // w
    win_y, win_x, _, _, query_index = window_grid(height, width, w, device)
    slots = [query_index]
    padding = [torch.zeros_like(query_index, dtype=torch.bool)]
    off_rows = [torch.zeros_like(query_index, dtype=torch.bool)]

    if expand_size > 0:
        off = torch.tensor(
            expanded_key_slots(w, expand_size).offsets, device=device)
        ys = (win_y[:, None] * w + off[None, :, 0]) % height
        xs = (win_x[:, None] * w + off[None, :, 1]) % width
        slots.append(ys * width + xs)
        padding.append(torch.zeros_like(ys, dtype=torch.bool))
        off_rows.append(padding[-1])

    offset = height * width
    pooled_sizes, pooled_offsets = [], [offset]
    for level, focal_window in enumerate(focal_windows):
        stride = 2**level
        grid_h, grid_w = n_rows * stride, n_cols * stride
        kernel = pooled_kernel(focal_window, level)
        # Levels above 0 drop the first 2^k - 1 rows and columns of the unfold.
        taps = torch.arange(stride - 1, kernel, device=device) - kernel // 2
        py = win_y[:, None] * stride + taps[None, :]  # (nW, K')
        px = win_x[:, None] * stride + taps[None, :]
        py, px = py[:, :, None], px[:, None, :]
        row_outside = (py < 0) | (py >= grid_h)
        outside = row_outside | (px < 0) | (px >= grid_w)
        off_rows.append(row_outside.expand_as(outside).flatten(1))
        index = offset + py.clamp(0, grid_h - 1) * grid_w + px.clamp(
            0, grid_w - 1)
        slots.append(index.flatten(1))
        padding.append(outside.flatten(1))
        pooled_sizes.append((grid_h, grid_w))
        offset += grid_h * grid_w
        pooled_offsets.append(offset)

    zero_row = offset
    key_index = torch.cat(slots, dim=1)
    key_padding = torch.cat(padding, dim=1)
    key_index = key_index.masked_fill(key_padding, zero_row)
    key_mask = region_mask = None
    # A focal window of 1 never reaches outside the grid.
    if any(fw > 1 for fw in focal_windows):
        key_mask = key_padding.to(torch.float32) * MASK_VALUE
    if shift_size > 0:
        region_mask = _region_mask(height, width, w, shift_size, device)
    slot_groups = _slot_groups(torch.cat(off_rows, dim=1), n_rows,
                               n_cols) if crop_slots else ()
    return FocalGeometry(
        query_index=query_index,
        key_index=key_index,
        key_mask=key_mask,
        region_mask=region_mask,
        pooled_sizes=tuple(pooled_sizes),
        pooled_offsets=tuple(pooled_offsets),
        slot_groups=slot_groups)


def _slot_groups(off_rows: torch.Tensor, n_rows: int,
                 n_cols: int) -> Tuple[SlotGroup, ...]:
    """Groups consecutive window rows by the key slots that fall off the
    pooled grid's rows (``off_rows``, ``(nW, N)``, the same along a window
    row), see ``FocalGeometry.slot_groups``. Rows that lose fewer than
    ``MIN_CROPPED`` of their slots keep them all (a group's chunks cost a
    few gathers more than the slots save)."""
    device = off_rows.device
    kept = []  # per window row: the kept slots, or None for all of them
    for pattern in off_rows[::n_cols].cpu():
        cropped = pattern.sum() >= MIN_CROPPED * len(pattern)
        kept.append(
            tuple((
                ~pattern).nonzero().flatten().tolist()) if cropped else None)
    if not any(kept):
        return ()
    groups, first = [], 0
    for cols, run in groupby(kept):
        stop = first + len(list(run))
        groups.append(
            SlotGroup(
                first * n_cols, stop * n_cols,
                None if cols is None else torch.tensor(cols, device=device)))
        first = stop
    return tuple(groups)


def relative_position_index(query_size: int, key_size: int) -> torch.Tensor:
    """Index into a ``(query_size + key_size - 1)^2`` relative-bias table.

    Query positions are a ``query_size`` square, keys a ``key_size`` square;
    the result is ``(query_size^2, key_size^2)``.
    """
    q = torch.stack(
        torch.meshgrid(
            torch.arange(query_size), torch.arange(query_size),
            indexing='ij')).flatten(1)
    k = torch.stack(
        torch.meshgrid(
            torch.arange(key_size), torch.arange(key_size),
            indexing='ij')).flatten(1)
    rel = q[:, :, None] - k[:, None, :] + key_size - 1  # (2, Lq, Lk)
    return rel[0] * (query_size + key_size - 1) + rel[1]
