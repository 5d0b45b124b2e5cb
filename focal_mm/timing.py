# Copyright (c) focal_mm contributors. All rights reserved.
"""Paired timing: several steps timed side by side in every repeat, so that
a slow spell of a noisy machine hits all of them alike and their per-repeat
ratios stay meaningful."""
import statistics
import time
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple


def paired_seconds(
        steps: Mapping[str, Callable[[], object]],
        repeats: int,
        warmup: int = 0,
        sync: Optional[Callable[[], None]] = None) -> Dict[str, List[float]]:
    """Seconds of each of ``steps`` in every timed repeat.

    Every repeat runs all steps; the order rotates by one from a repeat to
    the next (with two steps: alternates), so that no step always runs
    right after the same other one. ``warmup`` untimed repeats come first.
    ``sync`` (e.g. ``torch.cuda.synchronize``) runs before and after every
    step, so that its seconds include its asynchronous work.

    Raises:
        ValueError: If there are no steps, ``repeats < 1`` or ``warmup < 0``.
    """
    if not steps or repeats < 1 or warmup < 0:
        raise ValueError(f'need steps, repeats >= 1 and warmup >= 0, got '
                         f'{len(steps)} steps, repeats={repeats} and '
                         f'warmup={warmup}')
    sync = sync or (lambda: None)
    names = list(steps)
    times: Dict[str, List[float]] = {name: [] for name in names}
    for i in range(warmup + repeats):
        first = i % len(names)
        for name in names[first:] + names[:first]:
            sync()
            start = time.perf_counter()
            steps[name]()
            sync()
            if i >= warmup:
                times[name].append(time.perf_counter() - start)
    return times


def ratio_spread(numerators: Sequence[float],
                 denominators: Sequence[float]) -> Tuple[float, float, float]:
    """Min, median and max over the repeats of ``numerators[i] /
    denominators[i]`` (both of :func:`paired_seconds`)."""
    ratios = sorted(n / d for n, d in zip(numerators, denominators))
    return ratios[0], statistics.median(ratios), ratios[-1]
