# Copyright (c) focal_mm contributors. All rights reserved.
"""Counting the operations a model sends to the backend: the CPU's view of
a GPU's kernel launches, each of which costs microseconds of host time
whatever its size."""
from collections import Counter
from typing import Callable

from torch.utils._python_dispatch import TorchDispatchMode

# Operations that launch no kernel: allocations and aliases (views are
# recognised by their schema).
NO_KERNEL = frozenset({
    'empty', 'empty_like', 'empty_strided', 'new_empty', 'new_empty_strided',
    'detach', 'alias', 'lift_fresh', '_unsafe_view'
})


class OperationCounter(TorchDispatchMode):
    """Counts, by name, the ATen operations that reach the backend while
    active (after autograd and composite decompositions), leaving out views
    and operations that launch no kernel (:data:`NO_KERNEL`)."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: Counter = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        if not func.is_view and name not in NO_KERNEL:
            self.counts[name] += 1
        return func(*args, **(kwargs or {}))

    def total(self) -> int:
        return sum(self.counts.values())


def count_operations(step: Callable[[], object]) -> Counter:
    """The operations of one call of ``step`` (forward, or forward and
    backward), by name."""
    with OperationCounter() as counter:
        step()
    return counter.counts
