"""On a CUDA device (``pytest -m gpu``; deselected elsewhere): the CUDA
execution plan gives the CPU's results on the reference cases (float32,
1e-4), a training step at a size already seen never waits for the device,
fp16 and bf16 autocast steps are finite and close to float32, and the
Triton kernel gives the CUDA plan's results in whole backbones."""
import pytest
import torch

from focal_mm import FocalFastTransformer, FocalTransformer
from test_official_equivalence import (CASES, GRAD_CASES,
                                       build_official_equivalent,
                                       run_with_stages)
from conftest import load_case, rel_err

pytestmark = pytest.mark.gpu
TINY = dict(embed_dims=32, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8))
DETECTION = {
    'focal':
    lambda **kw: FocalTransformer(
        img_size=None,
        focal_windows=(15, 13, 9, 7),
        drop_path_rate=0.,
        use_shift=True,
        **kw),
    'focal_fast':
    lambda **kw: FocalFastTransformer(
        img_size=None, use_conv_embed=True, drop_path_rate=0., **kw),
}


@pytest.fixture(autouse=True)
def cuda_float32():
    """A CUDA device, with float32 convolutions and products (no TF32)."""
    if not torch.cuda.is_available():
        pytest.fail('the gpu tests need a CUDA device')
    flags = (torch.backends.cudnn.allow_tf32,
             torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    yield
    (torch.backends.cudnn.allow_tf32,
     torch.backends.cuda.matmul.allow_tf32) = flags


def step_outputs(model, images, train):
    """Logits and stages, and in training the input and parameter
    gradients of a random projection of the logits."""
    images = images.clone().requires_grad_(train)
    model.train(train)
    with torch.set_grad_enabled(train):
        logits, stages = run_with_stages(model, images)
    outs = [logits.detach()] + [s.detach() for s in stages]
    if train:
        gen = torch.Generator(device=logits.device).manual_seed(0)
        proj = torch.randn(
            logits.shape, generator=gen, device=logits.device)
        grads = torch.autograd.grad((logits * proj).sum(),
                                    [images] + list(model.parameters()))
        outs += [torch.cat([g.flatten() for g in grads])]
    return [o.float().cpu() for o in outs]


@pytest.mark.parametrize('family, case_id', CASES)
def test_cuda_plan_matches_cpu(family, case_id):
    case = load_case(case_id, family)
    model = build_official_equivalent(case, family).float()
    images = case['input'].float()
    train = case_id.split('/')[-1] in {c.values[1].split('/')[-1]
                                       for c in GRAD_CASES}
    ref = step_outputs(model, images, train)
    out = step_outputs(model.cuda(), images.cuda(), train)
    for o, r in zip(out, ref):
        assert rel_err(o, r) < 1e-4


@pytest.mark.parametrize('attn_impl', ['auto', 'triton'])
@pytest.mark.parametrize('family', DETECTION)
def test_training_step_never_waits_for_the_device(family, attn_impl):
    model = DETECTION[family](attn_impl=attn_impl).cuda().train()
    images = torch.randn(2, 3, 320, 448, device='cuda')

    def step():
        sum(o.float().mean() for o in model(images)).backward()
        model.zero_grad(set_to_none=True)

    step()  # builds the tables of the size
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode('error')
    try:
        step()
    finally:
        torch.cuda.set_sync_debug_mode('default')
    torch.cuda.synchronize()


@pytest.mark.parametrize('attn_impl', ['auto', 'triton'])
@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize('family', DETECTION)
def test_autocast_steps_are_finite_and_close(family, dtype, attn_impl):
    torch.manual_seed(0)
    model = DETECTION[family](arch=TINY, attn_impl=attn_impl).cuda().train()
    images = torch.randn(2, 3, 256, 352, device='cuda')

    def step(dtype):
        with torch.autocast('cuda', dtype=dtype,
                            enabled=dtype != torch.float32):
            outs = model(images)
        loss = sum(o.float().square().mean() for o in outs)
        grads = torch.autograd.grad(loss, list(model.parameters()))
        return [o.float() for o in outs], torch.cat(
            [g.float().flatten() for g in grads])

    ref_outs, ref_grads = step(torch.float32)
    outs, grads = step(dtype)
    tolerance = 2e-2 if dtype == torch.bfloat16 else 4e-3
    assert torch.isfinite(grads).all()
    assert rel_err(grads, ref_grads) < tolerance
    for o, r in zip(outs, ref_outs):
        assert torch.isfinite(o).all()
        assert rel_err(o, r) < tolerance


@pytest.mark.parametrize('family', DETECTION)
def test_kernel_matches_cuda_plan(family):
    torch.manual_seed(0)
    plan = DETECTION[family](arch=TINY).cuda().train()
    kernel = DETECTION[family](arch=TINY, attn_impl='triton').cuda().train()
    kernel.load_state_dict(plan.state_dict())
    images = torch.randn(2, 3, 288, 416, device='cuda')
    results = []
    for model in (plan, kernel):
        outs = model(images)
        loss = sum(o.square().mean() for o in outs)
        grads = torch.autograd.grad(loss, list(model.parameters()))
        results.append(([o.detach() for o in outs],
                        torch.cat([g.flatten() for g in grads])))
    (ref_outs, ref_grads), (outs, grads) = results
    for o, r in zip(outs, ref_outs):
        assert rel_err(o, r) < 1e-5
    assert rel_err(grads, ref_grads) < 1e-4
