"""attn_impl='triton' (the fused kernel, here in Triton's interpreter)
against the default chunked path, for both attention families and whole
backbones: outputs within 1e-5 and the gradients of the input and of every
parameter within 1e-4 (relative, float32); and the errors that name
attn_impl where it cannot run."""
import os
import subprocess
import sys

import pytest
import torch

from focal_mm import (FocalAttention, FocalFastAttention, FocalFastTransformer,
                      FocalTransformer)
from conftest import REPO_ROOT, rel_err

TINY = dict(embed_dims=16, depths=(1, 1, 2, 1), num_heads=(1, 2, 2, 4))

CASES = [
    # (class, kwargs, map size): shifted and unshifted, padded and odd
    # maps, pooled levels 1-3 (Focal) and 1-2 (Focal-fast), small topk.
    (FocalAttention, dict(window_size=7, expand_size=3, focal_level=2,
                          focal_window=5), (14, 21)),
    (FocalAttention, dict(window_size=7, expand_size=3, shift_size=3,
                          focal_level=2, focal_window=9), (13, 20)),
    (FocalAttention, dict(window_size=4, expand_size=1, shift_size=2,
                          focal_level=3, focal_window=3,
                          pool_method='mean'), (9, 11)),
    (FocalAttention, dict(window_size=7, expand_size=0, focal_level=1,
                          pool_method='none'), (7, 15)),
    (FocalFastAttention, dict(window_size=7, focal_level=2, focal_topk=16),
     (14, 21)),
    (FocalFastAttention, dict(window_size=4, shift_size=2, focal_level=3,
                              focal_topk=8, pool_method='conv'), (10, 13)),
]


def twins(build):
    """The same module (same weights) with each implementation."""
    torch.manual_seed(0)
    chunked = build('chunked')
    with torch.no_grad():
        for p in chunked.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    kernel = build('triton')
    kernel.load_state_dict(chunked.state_dict())
    return chunked, kernel


def assert_same(chunked, kernel, x):
    """Outputs within 1e-5, gradients of ``x`` and every parameter within
    1e-4 (random projection of the outputs)."""
    outputs = []
    for model in (chunked, kernel):
        xi = x.clone().requires_grad_(True)
        out = model(xi)
        out = out if isinstance(out, tuple) else (out, )
        torch.manual_seed(1)
        loss = sum((o * torch.randn_like(o)).sum() for o in out)
        grads = torch.autograd.grad(loss, [xi] + list(model.parameters()),
                                    allow_unused=True)
        outputs.append(([o.detach() for o in out], grads))
    (ref_out, ref_grads), (out, grads) = outputs
    for o, r in zip(out, ref_out):
        assert rel_err(o, r) < 1e-5
    for g, r in zip(grads, ref_grads):
        # Tables of maps that fit one window get no (or a zero) gradient.
        if r is None or not r.any():
            assert g is None or not g.any()
        else:
            assert rel_err(g, r) < 1e-4


@pytest.mark.usefixtures('interpreted_kernels')
@pytest.mark.parametrize(
    'cls, kwargs, size', CASES, ids=[f'{c.__name__}-{k}' for c, k, _ in CASES])
def test_attention_kernel_matches_chunked(cls, kwargs, size):
    chunked, kernel = twins(lambda impl: cls(16, 2, attn_impl=impl, **kwargs))
    chunked.train()
    kernel.train()
    assert_same(chunked, kernel, torch.randn(2, *size, 16))


@pytest.mark.usefixtures('interpreted_kernels')
@pytest.mark.parametrize('cls, kwargs', [
    (FocalTransformer, dict(use_shift=True, focal_windows=(5, 3, 3, 1))),
    (FocalFastTransformer, dict(focal_topk=16, use_conv_embed=True)),
],
                         ids=['focal', 'focal_fast'])
def test_backbone_kernel_matches_chunked(cls, kwargs):
    chunked, kernel = twins(lambda impl: cls(
        arch=TINY, img_size=None, drop_path_rate=0., attn_impl=impl, **
        kwargs))
    assert_same(chunked, kernel, torch.randn(2, 3, 60, 92))


def test_unknown_or_impossible_choices_name_attn_impl(monkeypatch):
    with pytest.raises(ValueError, match='attn_impl must be one of'):
        FocalTransformer(arch=TINY, attn_impl='cuda')
    with pytest.raises(ValueError, match="attn_impl='triton' has no"):
        FocalFastAttention(16, 2, attn_impl='triton', attn_drop_rate=0.1)
    from focal_mm.models.attention import window_attention_base
    monkeypatch.setattr(window_attention_base, 'triton_unavailable_reason',
                        lambda device: 'Triton cannot be imported (test)')
    attn = FocalAttention(16, 2, attn_impl='triton')
    with pytest.raises(ValueError, match=r"attn_impl='triton' cannot run on "
                       r'cpu: Triton cannot be imported \(test\)'):
        attn(torch.randn(1, 7, 7, 16))


def test_cpu_without_the_interpreter_is_an_error():
    """In a process without TRITON_INTERPRET=1 (as users run), 'triton' on
    the CPU raises instead of falling back to the chunked path."""
    code = ('import torch\n'
            'from focal_mm import FocalAttention\n'
            "attn = FocalAttention(16, 2, attn_impl='triton')\n"
            'try:\n'
            '    attn(torch.randn(1, 7, 7, 16))\n'
            'except ValueError as e:\n'
            '    print(e)\n')
    env = {k: v for k, v in os.environ.items() if k != 'TRITON_INTERPRET'}
    out = subprocess.run([sys.executable, '-c', code],
                         capture_output=True,
                         text=True,
                         env=env,
                         cwd=REPO_ROOT,
                         check=True).stdout
    assert "attn_impl='triton' cannot run on cpu" in out
    assert 'TRITON_INTERPRET=1' in out
