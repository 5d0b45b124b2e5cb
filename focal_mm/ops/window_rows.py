# Copyright (c) focal_mm contributors. All rights reserved.
"""The gather tables of one call for a batch: the table row of every query
and key slot of every window of every image, with the per-window masks and
bias index, built once per size and batch and cached with the geometry."""
from typing import NamedTuple, Optional

import torch
from torch import Tensor

from .window_masks import WindowMasks


class WindowGrid(NamedTuple):
    """The ``w x w`` windows of a padded ``height x width`` map, row-major.

    Attributes:
        win_y (Tensor): ``(nW,)`` window row of every window.
        win_x (Tensor): ``(nW,)`` window column of every window.
        iy (Tensor): ``(w, w)`` row of every token within a window.
        ix (Tensor): ``(w, w)`` column of every token within a window.
        query_index (Tensor): ``(nW, w * w)`` map index of every token of
            every window (row-major tokens).
    """
    win_y: Tensor
    win_x: Tensor
    iy: Tensor
    ix: Tensor
    query_index: Tensor


def window_grid(height: int, width: int, window_size: int,
                device: torch.device) -> WindowGrid:
    """The windows of a padded map (multiples of ``window_size``), built on
    ``device``."""
    w = window_size
    n_rows, n_cols = height // w, width // w

    def arange(n):
        return torch.arange(n, device=device)

    win_y = arange(n_rows).repeat_interleave(n_cols)
    win_x = arange(n_cols).repeat(n_rows)
    iy, ix = torch.meshgrid(arange(w), arange(w), indexing='ij')
    query_index = (win_y[:, None] * w + iy.reshape(1, -1)) * width + (
        win_x[:, None] * w + ix.reshape(1, -1))
    return WindowGrid(win_y, win_x, iy, ix, query_index)


class WindowRows(NamedTuple):
    """Attributes:
        query_rows (Tensor): ``(B * nW, L)`` query-table row of every query
            slot.
        key_rows (Tensor): ``(B * nW, N)`` key-table row of every key slot.
        masks (WindowMasks): Their constant logit masks, per window.
        bias_index (Tensor | None): ``(B * nW, N)`` bias-table column of
            every key slot (Focal-fast), or None (one shared bias).
    """
    query_rows: Tensor
    key_rows: Tensor
    masks: WindowMasks = WindowMasks()
    bias_index: Optional[Tensor] = None


def batched_rows(index: Tensor, batch: int, rows_per_item: int) -> Tensor:
    """``(nW, n)`` ``index`` repeated for every batch item, offset to its
    rows: ``(B * nW, n)``, batch-major."""
    offsets = torch.arange(batch, device=index.device) * rows_per_item
    return (offsets[:, None, None] + index[None]).flatten(0, 1)


def window_major_rows(index: Tensor, batch: int, rows_per_item: int) -> Tensor:
    """Like :func:`batched_rows`, window-major: ``(nW * B, n)``, the rows
    of every image of a window next to each other."""
    offsets = torch.arange(batch, device=index.device) * rows_per_item
    return (index[:, None] + offsets[None, :, None]).flatten(0, 1)


def batched(x: Optional[Tensor], batch: int) -> Optional[Tensor]:
    """A per-window tensor of one image ``(nW, ...)`` for every image of a
    batch, batch-major: ``(B * nW, ...)``."""
    if x is None or batch == 1:
        return x
    return x.repeat(batch, *(1, ) * (x.dim() - 1))
