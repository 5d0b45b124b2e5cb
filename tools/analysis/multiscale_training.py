"""The multi-scale case of ``benchmark.py`` (``--cases ms_train``): backbone
training steps on the batch sizes the 3x detection recipe draws
(:mod:`multiscale_sizes`), Focal models against Swin-T on the same sizes
in the same process.

The geometry caches are cleared at the start, and every size is visited
twice in a row: first new to the Focal models, as in multi-scale training,
then with its tables cached, the fixed-size condition (adjacent in time, so
that a slow spell of the machine hits both alike). Each visit runs every
model, in an order that rotates from visit to visit. The ratio of the new
or the cached visits is Swin's total time over the Focal model's; the
geometry time of a new size is what the cache spent building during the
model's first step at that size.
"""
import statistics
import time
from typing import Callable, Dict, List

import torch
from detector_cases import build_backbone
from multiscale_sizes import multiscale_batch_sizes

from focal_mm.models import clear_geometry_caches, geometry_cache_info


def _step(backbone: torch.nn.Module, images: torch.Tensor, autocast,
          sync: Callable[[], None]) -> Callable[[], float]:
    """One training step (forward, a loss and backward), timed."""

    def step() -> float:
        start = time.perf_counter()
        with autocast:
            loss = sum(o.float().mean() for o in backbone(images))
        loss.backward()
        backbone.zero_grad(set_to_none=True)
        sync()
        return time.perf_counter() - start

    return step


def multiscale_rows(models: List[str], resolve, num_batches: int, batch: int,
                    device: str, autocast, sync, seed: int = 0) -> List[dict]:
    """A row per Focal model of ``models``: the cold and warm ratios against
    Swin-T, and the geometry seconds per new size against its step."""
    sizes = multiscale_batch_sizes(num_batches, batch, seed)
    names = ['swin'] + models
    backbones = {
        name: build_backbone('mask_rcnn', *resolve(name)).to(device)
        for name in names
    }
    # One warm-up step at a size of its own, before the visits.
    warm = torch.randn(batch, 3, 320, 416, device=device)
    for backbone in backbones.values():
        backbone.train()  # (mmdet's Swin returns None from train())
        _step(backbone, warm, autocast, sync)()
    seconds: Dict[str, List[List[float]]] = {n: [[], []] for n in names}
    geometry: Dict[str, List[float]] = {n: [] for n in names}
    clear_geometry_caches()
    for i, size in enumerate(sizes):
        images = torch.randn(batch, 3, *size, device=device)
        for visit in (0, 1):
            shift = (2 * i + visit) % len(names)
            for name in names[shift:] + names[:shift]:
                before = geometry_cache_info().build_seconds
                seconds[name][visit].append(
                    _step(backbones[name], images, autocast, sync)())
                if visit == 0:
                    geometry[name].append(geometry_cache_info().build_seconds -
                                          before)
    rows = []
    swin_cold, swin_warm = (sum(t) for t in seconds['swin'])
    for name in models:
        cold, warm = seconds[name]
        share = [g / t for g, t in zip(geometry[name], cold)]
        rows.append(
            dict(
                model=name,
                sizes=len(sizes),
                batch=batch,
                cold_ratio=swin_cold / sum(cold),
                warm_ratio=swin_warm / sum(warm),
                geometry_s=statistics.median(geometry[name]),
                geometry_max_s=max(geometry[name]),
                geometry_share=statistics.median(share),
                geometry_share_max=max(share),
                step_s=statistics.median(cold)))
    return rows
