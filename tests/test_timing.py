"""Paired timing (focal_mm.timing), used by benchmark.py and the ONNX
Runtime comparison."""
import time

import pytest

from focal_mm.timing import paired_seconds, ratio_spread


def test_order_rotates_every_repeat_and_warmup_is_untimed():
    ran, synced = [], []
    steps = {name: (lambda name=name: ran.append(name)) for name in 'abc'}
    times = paired_seconds(
        steps, repeats=2, warmup=1, sync=lambda: synced.append(1))
    assert ''.join(ran) == 'abc' + 'bca' + 'cab'
    assert {name: len(t) for name, t in times.items()} == dict(a=2, b=2, c=2)
    assert len(synced) == 2 * len(ran)  # before and after every step


def test_seconds_are_those_of_each_step():
    times = paired_seconds(
        dict(slow=lambda: time.sleep(0.02), fast=lambda: None), repeats=3)
    assert all(t >= 0.02 for t in times['slow'])
    assert all(t < 0.02 for t in times['fast'])


def test_ratio_spread_pairs_repeats():
    assert ratio_spread([2., 6., 3.], [1., 2., 3.]) == (1., 2., 3.)


@pytest.mark.parametrize('steps, repeats, warmup', [
    ({}, 1, 0),
    (dict(a=lambda: None), 0, 0),
    (dict(a=lambda: None), 1, -1),
])
def test_bad_arguments(steps, repeats, warmup):
    with pytest.raises(ValueError, match='need steps, repeats >= 1'):
        paired_seconds(steps, repeats, warmup)
