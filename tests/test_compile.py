"""torch.compile of the backbones of both families: one graph without
breaks, the same numbers as eager, and one compilation per input size (the
cached index tensors do not force more)."""
import pytest
import torch

from focal_mm import FocalFastTransformer, FocalTransformer

TINY = dict(embed_dims=16, depths=(1, 1, 2, 1), num_heads=(1, 2, 2, 4))


@pytest.fixture(params=[FocalTransformer, FocalFastTransformer])
def model(request):
    torch.manual_seed(0)
    return request.param(arch=TINY, img_size=None).eval()


def test_no_graph_breaks(model):
    torch._dynamo.reset()
    explanation = torch._dynamo.explain(model)(torch.randn(1, 3, 64, 96))
    assert explanation.graph_break_count == 0, explanation.break_reasons
    assert explanation.graph_count == 1


def test_compiled_matches_eager_and_compiles_once_per_size(model):
    torch._dynamo.reset()
    compiled = torch.compile(model, backend='aot_eager', dynamic=False)
    stats = torch._dynamo.utils.counters['stats']
    graphs_before = stats['unique_graphs']
    for size in ((64, 96), (64, 96), (80, 80), (80, 80), (64, 96)):
        x = torch.randn(2, 3, *size)
        with torch.no_grad():
            for ours, ref in zip(compiled(x), model(x)):
                torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)
    assert stats['unique_graphs'] - graphs_before == 2
