"""The version gates of focal_mm.ops.versions on the installed stack (run in
the main environment and in the oldest one, ``make test-oldest``): the
newer APIs are used where they exist, the features that need a newer torch
or Triton say which version, and the stand-ins agree with torch where both
exist."""
import importlib
import sys
from types import SimpleNamespace

import pytest
import torch

from focal_mm.models.attention.window_attention_base import check_attn_impl
from focal_mm.ops import versions
from focal_mm.ops.window_attention_op import (OPERATOR_MISSING,
                                              triton_unavailable_reason)


@pytest.mark.parametrize('text, expected', [('2.1.2+cu121', (2, 1)),
                                            ('2.13.0', (2, 13)),
                                            ('3.0.0', (3, 0)),
                                            ('2.6.0a0+git1234', (2, 6))])
def test_release(text, expected):
    assert versions.release(text) == expected


def test_release_refuses_text_without_version():
    with pytest.raises(ValueError, match='cannot read a version'):
        versions.release('unknown')


def test_triton_operator_needs_torch_2_4():
    if versions.TORCH >= (2, 4):
        assert OPERATOR_MISSING is None
        assert check_attn_impl('triton') == 'triton'
        return
    assert 'needs torch >= 2.4' in OPERATOR_MISSING
    assert triton_unavailable_reason('cpu') == OPERATOR_MISSING
    with pytest.raises(
            ValueError,
            match=r"attn_impl='triton' is not "
            r'available: .*needs torch >= 2\.4; this is torch'):
        check_attn_impl('triton')


def test_onnx_export_needs_torch_2_6(monkeypatch):
    monkeypatch.delitem(sys.modules, 'focal_mm.deployment', raising=False)
    if versions.TORCH >= (2, 6):
        assert hasattr(
            importlib.import_module('focal_mm.deployment'), 'export_onnx')
        return
    with pytest.raises(
            ImportError,
            match=r'The ONNX export of focal_mm .*'
            r'needs torch >= 2\.6; this is torch'):
        importlib.import_module('focal_mm.deployment')


def fake_triton(version: str, **attributes) -> SimpleNamespace:
    return SimpleNamespace(__version__=version, **attributes)


def test_kernels_need_triton_3_0():
    reason = versions.triton_unsupported_reason(
        fake_triton('2.1.0'), torch.device('cpu'), torch.float32)
    assert 'need Triton >= 3.0; this is Triton 2.1.0' in reason
    assert versions.triton_unsupported_reason(
        fake_triton('3.0.0'), torch.device('cpu'), torch.float32) is None


@pytest.mark.parametrize('triton_version, capability, dtype, refused', [
    ('3.0.0', (9, 0), torch.bfloat16, True),
    ('3.1.0', (9, 0), torch.bfloat16, True),
    ('3.1.0', (9, 0), None, False),
    ('3.1.0', (9, 0), torch.float16, False),
    ('3.1.0', (8, 0), torch.bfloat16, False),
    ('3.2.0', (9, 0), torch.bfloat16, False),
])
def test_bf16_on_hopper_refused_where_triton_aborts(monkeypatch,
                                                    triton_version, capability,
                                                    dtype, refused):
    monkeypatch.setattr(
        torch.cuda, 'get_device_capability', lambda device=None: capability)
    reason = versions.triton_unsupported_reason(
        fake_triton(triton_version), torch.device('cuda'), dtype)
    if refused:
        assert 'bfloat16 kernels for this GPU' in reason
        assert f'needs Triton >= 3.2 (older ones abort the process); this ' \
            f'is Triton {triton_version}' in reason
    else:
        assert reason is None


@pytest.mark.parametrize('value, expected', [('1', True), ('0', False),
                                             (None, False)])
def test_triton_interpret_from_environment_before_knobs(
        monkeypatch, value, expected):
    if value is None:
        monkeypatch.delenv('TRITON_INTERPRET', raising=False)
    else:
        monkeypatch.setenv('TRITON_INTERPRET', value)
    assert versions.triton_interpret_requested(
        fake_triton('3.0.0')) is expected


def test_triton_interpret_from_knobs():
    knobs = SimpleNamespace(runtime=SimpleNamespace(interpret=True))
    assert versions.triton_interpret_requested(
        fake_triton('3.4.0', knobs=knobs))


def test_autocast_enabled_per_device():
    assert not versions.autocast_enabled('cpu')
    with torch.autocast('cpu', dtype=torch.bfloat16):
        assert versions.autocast_enabled('cpu')
        assert not versions.autocast_enabled('cuda')
    assert not versions.autocast_enabled('cpu')


def test_not_compiling_or_exporting_in_eager_code():
    assert not versions.is_compiling()
    assert not versions.is_exporting()


def test_efficient_or_math_attention_gives_the_math_result():
    q, k, v = torch.randn(3, 1, 2, 5, 4, dtype=torch.float64)
    bias = torch.randn(5, 5, dtype=torch.float64)
    expected = torch.softmax(q @ k.transpose(-1, -2) / 2 + bias, -1) @ v
    with versions.efficient_or_math_attention():
        out = torch.nn.functional.scaled_dot_product_attention(
            q, k, v, attn_mask=bias)
    assert torch.allclose(out, expected)
