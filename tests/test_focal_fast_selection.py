"""Focal-fast's nearest-token selection against the official choice, CPU
``torch.topk`` of minus the float32 distances to all tokens, as sets per
point (ties included): window centres and cells as the geometry makes them
and arbitrary points, on square, wide, tall, odd and tiny maps, on both
paths of CPU topk (a heap when ``64 * k <= tokens``, nth_element below);
the heap tie rule it relies on; whole geometries against ones built with
the reference selection."""
import pytest
import torch

from focal_mm.models.geometry import focal_fast_geometry
from focal_mm.models.geometry.focal_fast_geometry import nearest_tokens


def reference(rows, cols, height, width, k):
    """The official selection: topk over the distances to all tokens."""
    ys, xs = torch.meshgrid(
        torch.arange(height), torch.arange(width), indexing='ij')
    dy = rows[:, None] - ys.reshape(1, -1)
    dx = cols[:, None] - xs.reshape(1, -1)
    dist = torch.sqrt(dy.float()**2 + dx.float()**2)
    return torch.topk(-dist, k, dim=1).indices


def assert_same_sets(rows, cols, height, width, k):
    k = min(k, height * width)
    ours = nearest_tokens(rows, cols, height, width, k)
    ref = reference(rows, cols, height, width, k)
    assert ours.shape == ref.shape
    assert torch.equal(ours.sort(1).values, ref.sort(1).values)


def window_centres(height, width, window):
    """Centre token of every window of a padded map, as the geometry's
    level 0 takes it."""
    n_rows, n_cols = height // window, width // window
    factor = height // n_rows
    win_y = torch.arange(n_rows).repeat_interleave(n_cols)
    win_x = torch.arange(n_cols).repeat(n_rows)
    return win_y * factor + factor // 2, win_x * factor + factor // 2


def edge_points(height, width, num, seed):
    """``num`` random points plus the corners and edge midpoints."""
    gen = torch.Generator().manual_seed(seed)
    rows = torch.randint(0, height, (num, ), generator=gen)
    cols = torch.randint(0, width, (num, ), generator=gen)
    h, w = height - 1, width - 1
    rows = torch.cat([rows, torch.tensor([0, 0, h, h, 0, h, h // 2, h // 2])])
    cols = torch.cat([cols, torch.tensor([0, w, 0, w, w // 2, w // 2, 0, w])])
    return rows, cols


# (height, width, window): square, wide, tall, one row or column of
# windows, odd window counts, maps below 64 * k tokens (nth_element) and
# at most k tokens.
WINDOW_MAPS = [(70, 126, 7), (91, 91, 7), (105, 168, 7), (7, 1400, 7),
               (1400, 7, 7), (21, 700, 7), (133, 77, 7), (56, 84, 7),
               (28, 42, 7), (7, 7, 7), (64, 100, 4), (65, 85, 5), (12, 8, 1)]


@pytest.mark.parametrize('k', [16, 64, 128])
@pytest.mark.parametrize('size', WINDOW_MAPS, ids=str)
def test_window_centres_match_topk(size, k):
    height, width, window = size
    rows, cols = window_centres(height, width, window)
    assert_same_sets(rows, cols, height, width, k)


# Maps for arbitrary points: the above plus one, two and three rows or
# columns (the disc clipped on both sides), odd sizes, fewer tokens than k.
POINT_MAPS = [(70, 126), (97, 131), (1, 9000), (9000, 1), (2, 5000), (4100, 3),
              (7, 1400), (1400, 7), (33, 41), (40, 40), (8, 9), (5, 9), (1, 1)]


@pytest.mark.parametrize('k', [1, 2, 5, 16, 37, 64, 128])
@pytest.mark.parametrize('size', POINT_MAPS, ids=str)
def test_arbitrary_points_match_topk(size, k):
    height, width = size
    rows, cols = edge_points(height, width, 150, seed=height * width + k)
    assert_same_sets(rows, cols, height, width, k)


def test_rows_are_independent_of_the_other_points(monkeypatch):
    # Chunks and radius growth handle every point on its own: a shuffled
    # subset, a few distances at a time, gets the same rows.
    height, width, k = 105, 168, 128
    rows, cols = edge_points(height, width, 200, seed=0)
    full = nearest_tokens(rows, cols, height, width, k).sort(1).values
    pick = torch.randperm(
        len(rows), generator=torch.Generator().manual_seed(1))[:90]
    monkeypatch.setattr(focal_fast_geometry, '_DISTANCE_CHUNK', 1000)
    part = nearest_tokens(rows[pick], cols[pick], height, width, k)
    assert torch.equal(part.sort(1).values, full[pick])


def test_most_windows_need_only_their_square():
    # The speed of the selection: at focal_topk 128 only a few windows near
    # the edges are left to topk over the whole map.
    height, width = 203, 336  # stage 1 of a padded 800x1344 image
    rows, cols = window_centres(height, width, 7)
    _, exact = focal_fast_geometry._choose_in_squares(rows, cols, height,
                                                      width, 128)
    assert exact.float().mean() > 0.9


@pytest.mark.parametrize('k', [1, 2, 7, 16, 128])
@pytest.mark.parametrize('extra', [0, 5, 36 * 128])
def test_cpu_topk_heap_keeps_the_first_ties(k, extra):
    # The rule the selection relies on, on rows with many ties: from at
    # least 64 * k values, topk picks the first k of a stable sort wherever
    # no value better than the k-th follows the k-th one at least as good.
    gen = torch.Generator().manual_seed(k + extra)
    for levels in (3, 40):
        dist = torch.randint(
            0, levels, (300, 64 * k + extra), generator=gen).float()
        order, _, exact = focal_fast_geometry._first_in_scan_order(dist, k)
        ref = torch.topk(-dist, k, dim=1).indices
        assert exact.any()
        assert torch.equal(order[exact].sort(1).values,
                           ref[exact].sort(1).values)


@pytest.mark.parametrize('size,window,topk,levels', [
    ((203, 336), 7, 128, 2),
    ((105, 168), 7, 128, 3),
    ((56, 84), 7, 128, 2),
    ((70, 126), 7, 16, 2),
    ((7, 700), 7, 64, 2),
    ((60, 84), 4, 64, 2),
    ((14, 21), 7, 1000, 2),
])
def test_geometry_equals_the_one_from_topk(size, window, topk, levels,
                                           monkeypatch):
    height, width = size
    device = torch.device('cpu')
    ours = focal_fast_geometry._build_geometry(height, width, window, topk,
                                               levels, device)
    monkeypatch.setattr(focal_fast_geometry, 'nearest_tokens', reference)
    ref = focal_fast_geometry._build_geometry(height, width, window, topk,
                                              levels, device)
    for name in ('query_index', 'key_index', 'bias_index'):
        assert torch.equal(getattr(ours, name), getattr(ref, name)), name
    assert len(ours.coords) == len(ref.coords) == levels
    for a, b in zip(ours.coords, ref.coords):
        assert torch.equal(a, b)
    assert ours.runs == ref.runs
    assert ours.num_keys == ref.num_keys
    assert ours.pooled_sizes == ref.pooled_sizes
