"""FocalAttention against the slow roll/unfold oracle (tests/focal_oracle.py),
on sizes and options beyond the reference cases: odd sizes (padding, centre
trim/pad of pooled maps), maps smaller than a window, shift with padding,
three levels, every pooling method."""
import pytest
import torch

from focal_mm.models import FocalAttention
from focal_mm.models.geometry.focal_geometry import focal_geometry
from focal_mm.ops import chunked_attention
from conftest import projected_gradients, rel_err
from focal_oracle import oracle_focal_attention

CONFIGS = [
    # (embed_dims, heads, window, expand, shift, levels, focal_window, pool)
    (16, 2, 7, 3, 0, 2, 7, 'fc'),
    (16, 2, 7, 3, 3, 2, 5, 'fc'),
    (12, 3, 7, 2, 0, 3, 3, 'mean'),
    (8, 1, 5, 1, 2, 2, 3, 'conv'),
    (8, 2, 4, 0, 0, 3, 1, 'max'),
    (8, 2, 7, 3, 0, 2, 7, 'none'),
    (8, 2, 6, 2, 3, 4, 5, 'fc'),
]
SIZES = [(15, 22), (7, 7), (5, 9), (14, 28), (23, 17), (8, 11)]


def assert_gradients_match(ours, ref, inputs):
    """Gradients of a random projection of ``ours`` and ``ref`` with
    respect to ``inputs`` agree within 1e-10."""
    for g, r in projected_gradients(ours, ref, inputs):
        assert rel_err(g, r) < 1e-10


def make(cfg):
    dims, heads, w, e, s, levels, fw, pool = cfg
    torch.manual_seed(0)
    attn = FocalAttention(
        dims,
        heads,
        window_size=w,
        expand_size=e,
        shift_size=s,
        focal_level=levels,
        focal_window=fw,
        pool_method=pool).double()
    # Perturb every parameter so that no term can hide.
    with torch.no_grad():
        for p in attn.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    return attn


@pytest.mark.parametrize('cfg', CONFIGS, ids=str)
@pytest.mark.parametrize('size', SIZES, ids=str)
def test_forward_and_gradients_match_oracle(cfg, size):
    attn = make(cfg)
    x = torch.randn(2, *size, cfg[0], dtype=torch.float64, requires_grad=True)
    ours = attn(x)
    ref = oracle_focal_attention(attn, x)
    assert ours.shape == x.shape
    assert rel_err(ours, ref) < 1e-12
    inputs = [x] + list(attn.parameters())
    # Maps that fit in one window use no neighbour table: its gradient is
    # zero (or None, where autograd never reached it).
    for g, r in projected_gradients(ours, ref, inputs):
        if r is None:
            assert g is None or not g.any()
        else:
            assert rel_err(g, r) < 1e-10


@pytest.mark.parametrize('cfg', [CONFIGS[1], CONFIGS[6]], ids=str)
@pytest.mark.parametrize(
    'chunk_bytes', [1, 300_000, 2_500_000, 2**40],
    ids=['window_by_window', 'parts_of_images', 'two_images', 'whole_batch'])
def test_window_chunks_match_oracle(cfg, chunk_bytes, monkeypatch):
    # Shifted configs: each chunk must take (and give the gradient of) its
    # own windows' region masks.
    attn = make(cfg)
    attn.attn_chunk_bytes = chunk_bytes
    x = torch.randn(3, 23, 31, cfg[0], dtype=torch.float64)
    ref = oracle_focal_attention(attn, x)
    with torch.no_grad():
        assert rel_err(attn(x), ref) < 1e-12

    calls = []
    apply = chunked_attention.ChunkedWindowAttention.apply
    monkeypatch.setattr(chunked_attention.ChunkedWindowAttention, 'apply',
                        lambda *args: calls.append(args[-1]) or apply(*args))
    x.requires_grad_(True)
    ours, ref = attn(x), oracle_focal_attention(attn, x)
    assert rel_err(ours, ref) < 1e-12
    assert len(calls) == 1  # training took the recomputing backward
    assert_gradients_match(ours, ref, [x] + list(attn.parameters()))


def test_attention_dropout_trains_through_plain_autograd():
    attn = make(CONFIGS[0])
    attn.attn_drop_rate = 0.5
    x = torch.randn(2, 15, 22, 16, dtype=torch.float64, requires_grad=True)
    torch.manual_seed(0)
    out = attn(x)
    out.sum().backward()
    assert x.grad.isfinite().all() and x.grad.abs().sum() > 0
    # The dropout mask really was drawn: eval mode gives another output.
    attn.eval()
    assert rel_err(attn(x), out) > 1e-3


@pytest.mark.parametrize('batch', [1, 2])
@pytest.mark.parametrize('dtype', [torch.float32, torch.float64], ids=str)
def test_trains_after_inference_mode_on_the_same_size(batch, dtype):
    # The geometry is cached per size: tables first built under
    # inference_mode must still be usable by autograd afterwards.
    attn = make(CONFIGS[1]).to(dtype)
    size = (19, 26)  # a size no other test caches first
    x = torch.randn(batch, *size, 16, dtype=dtype)
    with torch.inference_mode():
        expected = attn(x)
    x.requires_grad_(True)
    out = attn(x)
    out.sum().backward()
    assert rel_err(out.detach(), expected) < 1e-5
    assert x.grad.isfinite().all() and x.grad.abs().sum() > 0


def test_key_count_of_the_released_geometry():
    # The official model has 49 own + 132 surrounding + 7x7 pooled = 230 key
    # slots per window; 12 surrounding slots repeat a token and are merged,
    # so the fine keys are the 13x13 block around the window, each once.
    geom = focal_geometry(56, 56, 7, 3, 0, (7, ), torch.device('cpu'))
    assert geom.key_index.shape == (64, 218)
    window = geom.key_index[27]  # row 3, column 3
    fine = window[:169]
    assert len(set(fine.tolist())) == 169
    ys, xs = fine // 56, fine % 56
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == (18, 30, 18, 30)
    assert geom.key_mask is not None  # border windows see padded slots


def test_float32_matches_float64():
    attn = make(CONFIGS[0])
    x = torch.randn(1, 15, 22, 16, dtype=torch.float64)
    ref = attn(x)
    out = attn.float()(x.float())
    assert rel_err(out.double(), ref) < 1e-5


def test_query_attention_explains_one_query():
    attn = make(CONFIGS[1])  # shifted, 7x7 windows, 3 wide surroundings
    x = torch.randn(1, 23, 31, 16, dtype=torch.float64)
    info = attn.query_attention(x, 12, 20)
    weights, boxes, levels = info['weights'], info['boxes'], info['levels']
    assert torch.allclose(weights.sum(-1), torch.ones(2, dtype=x.dtype))
    fine = boxes[levels == 0]
    assert len(fine) == 13 * 13  # each token of the window's block once
    assert len(set(map(tuple, fine.tolist()))) == 13 * 13
    assert (fine[:, 2] - fine[:, 0] == 1).all()
    assert [12, 20, 13, 21] in fine.tolist()  # the query itself
    # A 5x5 neighbourhood of pooled 7x7 sub-windows, some outside the grid.
    pooled = boxes[levels == 1]
    assert len(pooled) + (levels == -1).sum() == 25
    assert ((pooled[:, 2] - pooled[:, 0]) == 7).all()
    assert weights[:, levels == -1].max() < 1e-30  # padded pooled slots


def test_rows_of_windows_skip_slots_off_the_pooled_grid(monkeypatch):
    """With a focal window larger than the pooled grid, rows of windows
    attend only the pooled slots on the grid's rows (the masked ones weigh
    exp(-100) times less); the oracle attends every slot, masked."""
    attn = make((16, 2, 7, 3, 3, 2, 15, 'fc'))
    attn.attn_chunk_bytes = 300_000
    x = torch.randn(2, 40, 47, 16, dtype=torch.float64, requires_grad=True)
    geom = focal_geometry(42, 49, 7, 3, 3, (15, ), x.device)
    # Six rows of windows, each seeing the 6 grid rows at other slots of
    # its 15: 9 * 15 of the 49 + 120 + 225 slots are off the grid.
    assert [(g.start, g.stop, len(g.cols)) for g in geom.slot_groups] == [
        (7 * r, 7 * r + 7, 394 - 135) for r in range(6)
    ]
    calls = []
    apply = chunked_attention.ChunkedWindowAttention.apply
    monkeypatch.setattr(chunked_attention.ChunkedWindowAttention, 'apply',
                        lambda *args: calls.append(args[9]) or apply(*args))
    ours, ref = attn(x), oracle_focal_attention(attn, x)
    assert {len(c.cols) for chunk in calls for c in chunk} == {259}
    assert rel_err(ours, ref) < 1e-12
    assert_gradients_match(ours, ref, [x] + list(attn.parameters()))
