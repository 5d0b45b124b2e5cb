"""Mixed precision on CPU autocast (mmdet's AmpOptimWrapper autocasts the
same way on GPUs).

Inference, bfloat16, every reference case: the models stay finite, their
logits and stage features within 2e-2 relative of float32 (bf16 keeps 8
bits of mantissa; the 12-block cases reach about 1e-2 in the last stage's
raw, un-normalised features, and the Focal logits of window14_448 1.0e-2
under AVX2 code paths; the official Focal-fast model itself gives 1.6e-2 on
v2_level1_224 under bf16).

Training, bfloat16 and float16, the compact cases, with the CPU plan and
the CUDA plan: the logits and the input gradient within 2e-2 (bf16) and
4e-3 (fp16) of float32, all parameter gradients together (one vector)
within 3e-2 (bf16) and 4e-3 (fp16), and every gradient finite. The bf16
parameter gradients depend on the number of threads: the worst compact
case, v2_pool_conv_224, gives 1.2e-2 with two threads and 2.1e-2 with one
(its logits and input gradient stay below 1.2e-2 either way). Single small
tensors can be further off: gradients that are sums of cancelling terms
(the bias MLPs' and position tables', whose norms are 1e-5 of the terms)
keep the terms' absolute error. The masks (-100) and Focal's merged
log-sum-exp biases stay in float32 until they are added to the logits, so
neither overflows nor loses the merge.
"""
import warnings
from contextlib import nullcontext

import pytest
import torch

from focal_mm.models import forced_plan
from focal_mm.ops.execution_plan import CPU_PLAN, cuda_plan
from conftest import load_case, rel_err
from test_official_equivalence import (CASES, build_official_equivalent,
                                       run_with_stages)

COMPACT = [c for c in CASES if c.values[1].startswith('compact/')]
# Bounds of the logits, the input gradient and the parameter gradients.
TOLERANCE = {
    torch.bfloat16: (2e-2, 2e-2, 3e-2),
    torch.float16: (4e-3, 4e-3, 4e-3)
}
PLANS = {'cpu_plan': CPU_PLAN, 'cuda_plan': cuda_plan(80 * 2**30)}


def cpu_autocast_runs(dtype: torch.dtype) -> bool:
    """Whether CPU autocast takes ``dtype``: torch 2.1 takes only bfloat16
    (for another dtype it warns, switches itself off and raises on
    entering)."""
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        try:
            with torch.autocast('cpu', dtype=dtype):
                return torch.is_autocast_cpu_enabled()
        except RuntimeError:
            return False


def skip_unless_cpu_autocast_runs(dtype: torch.dtype) -> None:
    if not cpu_autocast_runs(dtype):
        pytest.skip(f'CPU autocast to {dtype} is not supported by torch '
                    f'{torch.__version__} (only bfloat16)')


@pytest.mark.parametrize('family, case_id', CASES)
def test_bf16_autocast_close_to_float32(family, case_id):
    case = load_case(case_id, family)
    model = build_official_equivalent(case, family).eval()
    with torch.no_grad():
        ref_logits, ref_stages = run_with_stages(model, case['input'])
        with torch.autocast('cpu', dtype=torch.bfloat16):
            logits, stages = run_with_stages(model, case['input'])
    assert logits.dtype == torch.bfloat16
    assert torch.isfinite(logits).all()
    assert rel_err(logits.float(), ref_logits) < 2e-2
    for s, r in zip(stages, ref_stages):
        assert torch.isfinite(s).all()
        assert rel_err(s.float(), r) < 2e-2


def training_step(model, images, dtype):
    """Logits and the gradients of the input and of every parameter of a
    random projection of the logits, under autocast to ``dtype``."""
    images = images.clone().requires_grad_(True)
    # (torch 2.1 refuses a float32 autocast even when it is disabled.)
    with torch.autocast('cpu', dtype=dtype) if dtype != torch.float32 \
            else nullcontext():
        logits, _ = run_with_stages(model, images)
    torch.manual_seed(0)
    logits = logits.float()
    loss = (logits * torch.randn_like(logits)).sum()
    grads = torch.autograd.grad(loss, [images] + list(model.parameters()))
    return logits.detach(), grads[0], torch.cat(
        [g.flatten() for g in grads[1:]])


@pytest.mark.parametrize('plan', PLANS)
@pytest.mark.parametrize('dtype', TOLERANCE, ids=str)
@pytest.mark.parametrize('family, case_id', COMPACT)
def test_autocast_training_close_to_float32(family, case_id, dtype, plan):
    skip_unless_cpu_autocast_runs(dtype)
    case = load_case(case_id, family)
    model = build_official_equivalent(case, family).float().train()
    with forced_plan(PLANS[plan]):
        ref = training_step(model, case['input'], torch.float32)
        out = training_step(model, case['input'], dtype)
    for o, r, bound in zip(out, ref, TOLERANCE[dtype]):
        assert torch.isfinite(o).all()
        assert rel_err(o, r) < bound


def test_position_bias_stays_float32_under_autocast():
    from focal_mm import FocalAttention
    skip_unless_cpu_autocast_runs(torch.float16)
    attn = FocalAttention(32, 2, expand_size=3, shift_size=3)
    with torch.autocast('cpu', dtype=torch.float16):
        bias = attn.position_bias(expanded=True)
    assert bias.dtype == torch.float32
