# Copyright (c) focal_mm contributors. All rights reserved.
"""Which windows are attended together: chunks of batch-major windows
(Focal, optionally within slot groups) and of window-major runs that share
one bias index row (Focal-fast)."""
from typing import Iterator, List, NamedTuple, Optional, Sequence

from torch import Tensor


class Chunk(NamedTuple):
    """Windows ``start:stop`` (rows of the query and key row tables),
    attended together. With a per-window bias index (see
    :func:`~focal_mm.ops.window_attention.chunk_bias`), ``shared_bias``
    says that all of them have the index row of the first, whose bias is
    then broadcast. ``cols`` (with a
    shared bias) are the key slots the windows attend, leaving out slots
    that all of them mask (None: every slot); ``group`` numbers the slot
    group they come from, whose bias is cropped once per call
    (:func:`~focal_mm.ops.window_attention.cropped_biases`)."""
    start: int
    stop: int
    shared_bias: bool = False
    cols: Optional[Tensor] = None
    group: Optional[int] = None


Chunks = List[Chunk]


class SlotGroup(NamedTuple):
    """Windows ``start:stop`` of an image that attend the key slot columns
    ``cols`` (None: all of them)."""
    start: int
    stop: int
    cols: Optional[Tensor]


def window_chunks(
        num_windows: int,
        per_image: int,
        size: int,
        slot_groups: Optional[Sequence[SlotGroup]] = None) -> Iterator[Chunk]:
    """Chunks of at most ``size`` windows (at least one) of batch-major
    windows that either lie in one image or hold whole images. Where chunks
    lie in one image and ``slot_groups`` (of one image) are given, no chunk
    crosses a group, and each attends its group's columns."""
    size = max(size, 1)
    if size < per_image:
        groups = slot_groups or [SlotGroup(0, per_image, None)]
        for image in range(0, num_windows, per_image):
            for group, (first, stop, cols) in enumerate(groups):
                for start in range(image + first, image + stop, size):
                    yield Chunk(
                        start,
                        min(start + size, image + stop),
                        cols=cols,
                        group=group)
    else:
        step = size // per_image * per_image
        for start in range(0, num_windows, step):
            yield Chunk(start, min(start + step, num_windows))


def run_chunks(runs: Sequence[int], batch: int, size: int) -> Chunks:
    """Chunks of at most ``size`` windows (at least one) of window-major
    windows (the ``batch`` images of a window next to each other) whose
    windows come in ``runs`` that share one bias index row. A run that
    fills at least half a chunk gets chunks of its own, which broadcast one
    bias; smaller runs are grouped and gather theirs."""
    size = max(size, 1)
    chunks: Chunks = []
    start = pos = grouped = 0
    for run in runs:
        rows = run * batch
        if 2 * rows >= size or pos + rows - start > size:
            if pos > start:
                chunks.append(Chunk(start, pos, grouped == 1))
            start, grouped = pos, 0
        if 2 * rows >= size:
            parts = -(-rows // size)
            chunks.extend(
                Chunk(pos + rows * i // parts, pos + rows *
                      (i + 1) // parts, True) for i in range(parts))
            start = pos + rows
        else:
            grouped += 1
        pos += rows
    if pos > start:
        chunks.append(Chunk(start, pos, grouped == 1))
    return chunks
