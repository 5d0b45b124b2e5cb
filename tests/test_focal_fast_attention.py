"""FocalFastAttention against the plain per-call oracle
(tests/focal_fast_oracle.py) in float64: window multiples, padded sizes,
maps that fit in one window, every pooling method, one to three focal levels
(the index quirk of levels >= 2), small and large focal_topk, shift, every
attention path and chunk plan; the cached key selection against torch.topk
over the whole map; argument checks and parameter names."""
import pytest
import torch
from mmengine.registry import MODELS

from focal_mm.models import clear_geometry_caches
from focal_mm.models.attention import focal_fast_attention
from focal_mm.models.attention.focal_fast_attention import FocalFastAttention
from focal_mm.models.geometry import focal_fast_geometry
from focal_mm.models.geometry.focal_fast_geometry import \
    focal_fast_geometry as geometry
from focal_mm.ops import window_attention
from focal_mm.ops.window_chunks import run_chunks
from conftest import projected_gradients, rel_err
from focal_fast_oracle import _nearest, oracle_focal_fast_attention

CONFIGS = [
    # (embed_dims, heads, window, shift, levels, topk, pool)
    (16, 2, 7, 0, 2, 16, 'fc'),
    (16, 2, 7, 3, 2, 128, 'conv'),
    (12, 3, 7, 0, 3, 16, 'mean'),  # level 2 takes the grid index as it is
    (8, 2, 5, 2, 3, 7, 'max'),
    (8, 2, 7, 0, 1, 64, 'fc'),  # one level: no pooling, one MLP
    (8, 2, 7, 0, 2, 32, 'none'),  # two MLPs, only the first used
    (8, 1, 4, 1, 2, 1000, 'mean'),  # topk beyond the tokens there are
]
# Window multiples, padded sizes, one row of windows (with and without
# padding), maps smaller than one window.
SIZES = [(14, 21), (15, 22), (7, 7), (7, 12), (5, 9), (23, 17)]


def make(cfg, **kwargs):
    dims, heads, w, s, levels, topk, pool = cfg
    torch.manual_seed(0)
    attn = FocalFastAttention(
        dims,
        heads,
        window_size=w,
        shift_size=s,
        focal_level=levels,
        focal_topk=topk,
        pool_method=pool,
        **kwargs).double()
    # Perturb every parameter so that no term can hide.
    with torch.no_grad():
        for p in attn.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    return attn


def check_against_oracle(attn, x):
    """Outputs (1e-12) and gradients of the input and every parameter,
    the bias MLPs included (1e-10 elementwise, or 1e-12 of the gradient's
    norm), against the oracle."""
    ours = attn(x)
    ref = oracle_focal_fast_attention(attn, x)
    assert ours.shape == x.shape
    assert rel_err(ours, ref) < 1e-12
    inputs = [x] + list(attn.parameters())
    for g, r in projected_gradients(ours, ref, inputs):
        if r is None:  # bias_mlps.1 with pool_method='none'
            assert g is None
        else:
            # Elementwise within 1e-10, and within 1e-12 of the gradient's
            # norm where a sum cancels: its rounding error follows the size
            # of the terms (the norm), not of the result, and its last bits
            # follow the CPU's reduction order. The floor of 1e-12 absolute
            # is for the last MLP bias of a single level, whose gradient is
            # zero (the softmax ignores a shift of all logits): rounding
            # noise of about 1e-14 in both.
            atol = 1e-12 * max(1., r.norm().item())
            torch.testing.assert_close(g, r, rtol=1e-10, atol=atol)
    return ours


@pytest.mark.parametrize('cfg', CONFIGS, ids=str)
@pytest.mark.parametrize('size', SIZES, ids=str)
def test_forward_and_gradients_match_oracle(cfg, size):
    attn = make(cfg)
    x = torch.randn(2, *size, cfg[0], dtype=torch.float64, requires_grad=True)
    out = check_against_oracle(attn, x)
    attn.eval()
    with torch.no_grad():  # the fused inference path
        assert rel_err(attn(x), out.detach()) < 1e-12


@pytest.mark.parametrize('cfg', [CONFIGS[0], CONFIGS[2]], ids=str)
@pytest.mark.parametrize(
    'rows', [1, 8, 10**6],
    ids=['window_by_window', 'grouped_and_shared', 'all_at_once'])
def test_chunk_plans_match_oracle(cfg, rows, monkeypatch):
    monkeypatch.setattr(
        focal_fast_attention, 'run_chunks',
        lambda runs, batch, size: run_chunks(runs, batch, rows))
    attn = make(cfg)
    # 6 x 6 windows, three images: 8 rows group the runs of one window (3
    # rows) and give the run of two windows chunks of its own.
    x = torch.randn(3, 40, 42, cfg[0], dtype=torch.float64)
    with torch.no_grad():
        assert rel_err(attn(x), oracle_focal_fast_attention(attn, x)) < 1e-12
    calls = []
    apply = window_attention.ChunkedWindowAttention.apply
    monkeypatch.setattr(window_attention.ChunkedWindowAttention, 'apply',
                        lambda *args: calls.append(args) or apply(*args))
    check_against_oracle(attn, x.requires_grad_(True))
    assert len(calls) == 1  # training took the recomputing backward
    shared = {c.shared_bias for c in calls[0][9]}
    assert shared == ({True, False} if rows == 8 else {rows == 1})


def test_plain_autograd_paths_match_oracle(monkeypatch):
    # Autocast, compiling and attention dropout use plain autograd: the
    # bias is gathered per window and its gradient flows back by autograd.
    monkeypatch.setattr(window_attention, 'can_recompute', lambda *a: False)
    attn = make(CONFIGS[2])
    x = torch.randn(2, 15, 22, 12, dtype=torch.float64, requires_grad=True)
    check_against_oracle(attn, x)
    # Frozen bias MLPs: the fused kernel in one chunk.
    for p in attn.bias_mlps.parameters():
        p.requires_grad_(False)
    ours = attn(x)
    ref = oracle_focal_fast_attention(attn, x)
    assert rel_err(ours, ref) < 1e-12
    g, = torch.autograd.grad(ours.sum(), x)
    r, = torch.autograd.grad(ref.sum(), x)
    assert rel_err(g, r) < 1e-10


def test_attention_dropout_trains_through_plain_autograd():
    attn = make(CONFIGS[0], attn_drop_rate=0.5)
    x = torch.randn(2, 15, 22, 16, dtype=torch.float64, requires_grad=True)
    torch.manual_seed(0)
    out = attn(x)
    out.sum().backward()
    assert x.grad.isfinite().all() and x.grad.abs().sum() > 0
    assert attn.bias_mlps[0][0].weight.grad.abs().sum() > 0
    attn.eval()  # the dropout mask really was drawn
    assert rel_err(attn(x), out) > 1e-3


@pytest.mark.parametrize('batch', [1, 2])
def test_trains_after_inference_mode_on_the_same_size(batch):
    attn = make(CONFIGS[0]).float()
    size = (19, 26)  # a size no other test caches first
    x = torch.randn(batch, *size, 16)
    with torch.inference_mode():
        expected = attn(x)
    x.requires_grad_(True)
    out = attn(x)
    out.sum().backward()
    assert rel_err(out.detach(), expected) < 1e-5
    assert x.grad.isfinite().all() and x.grad.abs().sum() > 0
    assert attn.bias_mlps[1][2].weight.grad.abs().sum() > 0


def test_float32_matches_float64():
    attn = make(CONFIGS[1])
    x = torch.randn(2, 15, 22, 16, dtype=torch.float64)
    ref = attn(x)
    out = attn.float()(x.float())
    assert rel_err(out.double(), ref) < 1e-5


def test_map_that_fits_one_window_is_not_shifted():
    shifted, plain = make(CONFIGS[1]), make(CONFIGS[1])
    plain.shift_size = 0
    x = torch.randn(1, 7, 20, 16, dtype=torch.float64)
    assert torch.equal(shifted(x), plain(x))
    x = torch.randn(1, 8, 20, 16, dtype=torch.float64)
    assert rel_err(shifted(x), plain(x)) > 1e-3


@pytest.mark.parametrize('size,window,topk,levels', [((70, 91), 7, 128, 3),
                                                     ((56, 56), 7, 16, 2),
                                                     ((24, 36), 4, 1000, 2),
                                                     ((12, 8), 1, 5, 2)])
def test_selection_is_topk_over_the_whole_map(size, window, topk, levels,
                                              monkeypatch):
    # A few windows' distances at a time give the same choice (ties
    # included) as one topk over every window and token.
    monkeypatch.setattr(focal_fast_geometry, '_DISTANCE_CHUNK', 1000)
    H, W = size
    geom = focal_fast_geometry._build_geometry(H, W, window, topk, levels,
                                               torch.device('cpu'))
    nh, nw = H // window, W // window
    f = H // nh
    wy = geom.query_index[:, 0] // W // window  # window of each row
    wx = geom.query_index[:, 0] % W // window
    fine, _, _ = _nearest(wy * f + f // 2, wx * f + f // 2, H, W,
                          min(topk, H * W))
    cells, _, _ = _nearest(wy, wx, nh, nw, min(topk, nh * nw))
    K0, K1 = fine.shape[1], cells.shape[1]
    assert geom.num_keys == (K0, ) + (K1, ) * (levels - 1)
    assert geom.key_index.shape == (nh * nw, K0 + (levels - 1) * K1)
    keys = geom.key_index.sort(1).values  # slots are in canonical order
    assert torch.equal(keys[:, :K0], fine.sort(1).values)
    offset = H * W
    for level in range(1, levels):
        part = keys[:, K0 + (level - 1) * K1:K0 + level * K1]
        # The grid index on the 2**(level - 1) times wider pooled map.
        assert torch.equal(part, offset + cells.sort(1).values)
        offset += nh * nw * 4**(level - 1)
    assert geom.pooled_sizes == tuple(
        (nh * 2**k, nw * 2**k) for k in range(levels - 1))


def test_windows_sorted_in_runs_that_share_the_bias():
    geom = geometry(56, 56, 7, 16, 2, torch.device('cpu'))
    assert sum(geom.runs) == 64 and len(geom.runs) < 64
    start = 0
    for run in geom.runs:
        rows = geom.bias_index[start:start + run]
        assert (rows == rows[0]).all()
        start += run
    # The bias MLPs run on the distinct key offsets times the query
    # offsets, a small fraction of the windows x L x N bias.
    coords = torch.cat(geom.coords)
    assert int(geom.bias_index.max()) + 1 == len(coords) // 49
    assert len(coords) < 64 * 49 * geom.key_index.shape[1] / 20


@pytest.mark.parametrize('runs,batch,size', [((5, 1, 1, 9, 2, 2, 1), 1, 4),
                                             ((5, 1, 1, 9, 2), 3, 7),
                                             ((1, ) * 10, 2, 5),
                                             ((30, ), 1, 7), ((3, 4), 1, 1),
                                             ((3, 4), 2, 10**6)])
def test_run_chunks_partition_the_rows(runs, batch, size):
    chunks = run_chunks(runs, batch, size)
    run_of_row = torch.arange(len(runs)).repeat_interleave(
        torch.tensor(runs) * batch)
    assert chunks[0].start == 0 and chunks[-1].stop == len(run_of_row)
    for a, b in zip(chunks, chunks[1:]):
        assert a.stop == b.start
    for c in chunks:
        assert 0 < c.stop - c.start <= max(size, 1)
        rows = run_of_row[c.start:c.stop]
        assert c.shared_bias == bool((rows == rows[0]).all())


def test_selection_is_computed_once_per_size(monkeypatch):
    builds = []
    build = focal_fast_geometry._build_geometry
    monkeypatch.setattr(focal_fast_geometry, '_build_geometry',
                        lambda *a: builds.append(a[:2]) or build(*a))
    clear_geometry_caches()
    attn, other = make(CONFIGS[0]), make(CONFIGS[0])
    x = torch.randn(1, 15, 22, 16, dtype=torch.float64)
    with torch.no_grad():
        attn(x)
        attn(x.repeat(3, 1, 1, 1))
        other(x)  # the same options share the selection
        attn(torch.randn(1, 20, 27, 16, dtype=torch.float64))  # same padding
    out = attn(x)
    out.sum().backward()
    assert builds == [(21, 28)]
    with torch.no_grad():
        attn(torch.randn(1, 30, 30, 16, dtype=torch.float64))
    assert builds == [(21, 28), (35, 35)]


def test_parameters_mirror_the_official_keys():
    attn = FocalFastAttention(96, 3, focal_level=2, pool_method='fc')
    shapes = {k: tuple(v.shape) for k, v in attn.state_dict().items()}
    assert shapes == {
        'qkv.weight': (288, 96),
        'qkv.bias': (288, ),
        'proj.weight': (96, 96),
        'proj.bias': (96, ),
        'pool_layers.0.weight': (1, 49),
        'pool_layers.0.bias': (1, ),
        'bias_mlps.0.0.weight': (32, 2),
        'bias_mlps.0.0.bias': (32, ),
        'bias_mlps.0.2.weight': (3, 32),
        'bias_mlps.0.2.bias': (3, ),
        'bias_mlps.1.0.weight': (32, 2),
        'bias_mlps.1.0.bias': (32, ),
        'bias_mlps.1.2.weight': (3, 32),
        'bias_mlps.1.2.bias': (3, ),
    }
    # fc pooling starts as the mean
    assert torch.equal(attn.pool_layers[0].weight, torch.full((1, 49), 1 / 49))
    conv = FocalFastAttention(8, 2, focal_level=3, pool_method='conv')
    assert [tuple(p.weight.shape) for p in conv.pool_layers] == [(8, 1, 7, 7),
                                                                 (8, 1, 3, 3)]
    assert len(conv.bias_mlps) == 3
    # 'none' keeps one MLP per focal level, as the official model builds.
    none = FocalFastAttention(8, 2, focal_level=2, pool_method='none')
    assert len(none.pool_layers) == 0 and len(none.bias_mlps) == 2
    one = FocalFastAttention(8, 2, focal_level=1, pool_method='mean')
    assert len(one.bias_mlps) == 1
    built = MODELS.build(
        dict(type='FocalFastAttention', embed_dims=8, num_heads=2))
    assert isinstance(built, FocalFastAttention)


@pytest.mark.parametrize('kwargs,name', [
    (dict(num_heads=3), 'num_heads'),
    (dict(window_size=0), 'window_size'),
    (dict(shift_size=7), 'shift_size'),
    (dict(shift_size=-1), 'shift_size'),
    (dict(focal_level=0), 'focal_level'),
    (dict(focal_topk=0), 'focal_topk'),
    (dict(pool_method='avg'), 'pool_method'),
    (dict(window_size=2, focal_level=4), 'window_size'),
])
def test_bad_arguments_raise(kwargs, name):
    args = dict(embed_dims=8, num_heads=2)
    args.update(kwargs)
    with pytest.raises(ValueError, match=name):
        FocalFastAttention(**args)


def test_bad_input_raises():
    attn = FocalFastAttention(8, 2)
    with pytest.raises(ValueError, match='C = 8'):
        attn(torch.randn(1, 14, 14, 6))
    with pytest.raises(ValueError, match='B, H, W, C'):
        attn(torch.randn(14, 14, 8))
