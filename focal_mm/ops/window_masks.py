# Copyright (c) focal_mm contributors. All rights reserved.
"""The additive terms of the attention logits of a chunk of windows: the
constant masks, and the position bias (shared by every window, or gathered
per window from a table) with the sums of its gradient."""
from typing import Dict, NamedTuple, Optional

from torch import Tensor

from .window_chunks import Chunk, Chunks


class WindowMasks(NamedTuple):
    """Constant additive logit masks of the windows of a call (batch-major,
    one row per window of every image).

    ``key`` ``(nWin, N)`` masks key slots of a window (padded pooled slots),
    ``region`` ``(nWin, L, L)`` masks own-window keys from queries of another
    shifted-window region (the first ``L`` key slots); either may be None.
    They stay per window and are added chunk by chunk, so the shared
    position bias ``(1, heads, L, N)`` is never expanded to the whole map
    before it is needed.
    """
    key: Optional[Tensor] = None
    region: Optional[Tensor] = None

    def add_to(self, logits: Tensor, chunk: Chunk) -> Tensor:
        """Adds the masks of the windows of ``chunk`` to their
        ``(n, heads, L, N)`` logits in place."""
        if self.key is not None:
            logits += self._key(chunk)
        return self._add_region(logits, chunk)

    def with_bias(self, bias: Tensor, chunk: Chunk) -> Tensor:
        """``bias`` ``(1, heads, L, N)`` plus the masks of the windows of
        ``chunk``: ``(n, heads, L, N)``, or ``bias`` itself when there are
        no masks (a fused kernel broadcasts it)."""
        if self.key is None and self.region is None:
            return bias
        out = bias.repeat(chunk.stop - chunk.start, 1, 1, 1) \
            if self.key is None else bias + self._key(chunk)
        return self._add_region(out, chunk)

    def _key(self, chunk: Chunk) -> Tensor:
        key = self.key[chunk.start:chunk.stop]
        if chunk.cols is not None:
            key = key.index_select(1, chunk.cols)
        return key[:, None, None]

    def _add_region(self, logits: Tensor, chunk: Chunk) -> Tensor:
        if self.region is not None:
            region = self.region[chunk.start:chunk.stop, None]
            logits[..., :region.shape[-1]].add_(region)
        return logits


def cropped_biases(bias: Tensor, chunks: Chunks) -> Dict[int, Tensor]:
    """The shared ``(1, heads, L, N)`` bias cropped, once per call, to the
    key slot columns of each slot group among ``chunks``, keyed by
    ``chunk.group`` (see :func:`chunk_bias`)."""
    out = {}
    for chunk in chunks:
        if chunk.cols is not None and chunk.group not in out:
            out[chunk.group] = bias.index_select(-1, chunk.cols)
    return out


def chunk_bias(bias: Tensor,
               bias_index: Optional[Tensor],
               chunk: Chunk,
               cropped: Optional[Dict[int, Tensor]] = None) -> Tensor:
    """The position bias of the windows of ``chunk``.

    Without ``bias_index``, ``bias`` is ``(1, heads, L, N)``, shared by all
    windows, and returned as it is, or as cropped to the chunk's columns
    (``cropped``, of :func:`cropped_biases`). With it, ``bias`` is a
    ``(heads, L, D)`` table and ``bias_index`` ``(windows, N)`` the table
    column of every key slot: the result is ``(n, heads, L, N)`` (``n = 1``
    when the chunk shares one index row), contiguous along the keys.
    """
    if bias_index is None:
        return bias if chunk.cols is None else cropped[chunk.group]
    stop = chunk.start + 1 if chunk.shared_bias else chunk.stop
    index = bias_index[chunk.start:stop]
    heads, L, D = bias.shape
    n, N = index.shape
    out = bias.reshape(heads * L, D).index_select(1, index.reshape(-1))
    return out.view(heads, L, n, N).permute(2, 0, 1, 3)


def add_bias_grad(grad_bias: Tensor, d_logits: Tensor,
                  bias_index: Optional[Tensor], chunk: Chunk) -> None:
    """Adds the gradient of the chunk's logits ``(n, heads, L, N)`` to that
    of the bias it came from (see :func:`chunk_bias`), in place."""
    if bias_index is None:
        if chunk.cols is None:
            grad_bias += d_logits.sum(0, keepdim=True)
        else:
            grad_bias.index_add_(-1, chunk.cols, d_logits.sum(0, keepdim=True))
        return
    heads, L, D = grad_bias.shape
    grad = grad_bias.view(heads * L, D)
    if chunk.shared_bias:
        grad.index_add_(1, bias_index[chunk.start],
                        d_logits.sum(0).view(heads * L, -1))
    else:
        index = bias_index[chunk.start:chunk.stop].reshape(-1)
        grad.index_add_(
            1, index,
            d_logits.permute(1, 2, 0, 3).reshape(heads * L, index.numel()))
