"""The Triton window attention operator (focal_mm::window_attention) against
a plain PyTorch reference: outputs and the gradients of the queries, keys,
values and bias for both families' forms of the bias, under torch.compile
and torch.export, its input checks, and its ONNX translation in ONNX
Runtime; and the compiled kernels built for sm_90 without a GPU.

Without a CUDA device the kernels run on CPU tensors in Triton's
interpreter (``TRITON_INTERPRET=1``, set by conftest.py before Triton is
first imported). With a CUDA device the same tests run the compiled kernels
on it. Tests marked ``gpu`` need the device.
"""
import importlib
import os
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple, Optional

import pytest
import torch
from torch import Tensor

from focal_mm.ops import window_attention_op as op
from focal_mm.ops.window_attention_op import (triton_unavailable_reason,
                                              triton_window_attention)

DEVICE = torch.device('cuda' if torch.cuda.is_available() else 'cpu')


@pytest.fixture(scope='module', autouse=True)
def kernels():
    """The kernel module, after checking that it can run on ``DEVICE``."""
    reason = triton_unavailable_reason(DEVICE)
    if reason is not None:
        pytest.fail(f'the kernels cannot run on {DEVICE}: {reason}')
    return importlib.import_module(op.KERNEL_MODULE)


class Case(NamedTuple):
    """Inputs of the operator (argument order of the operator)."""
    queries: Tensor
    keys: Tensor
    values: Tensor
    query_rows: Tensor
    key_rows: Tensor
    bias: Tensor
    bias_index: Optional[Tensor]
    key_mask: Optional[Tensor]
    region_mask: Optional[Tensor]
    scale: float


def make_case(windows: int,
              heads: int,
              d: int,
              L: int,
              N: int,
              key_table: int,
              bias_cols: Optional[int] = None,
              key_mask: bool = False,
              region_mask: bool = False,
              image_windows: int = 3,
              dtype: torch.dtype = torch.float32,
              seed: int = 0,
              device: torch.device = DEVICE) -> Case:
    """Random inputs on ``device``: ``windows`` windows of ``L`` queries
    over ``N`` key slots drawn (with repeats, also within a window) from
    ``key_table`` key rows; a shared ``(heads, L, N)`` bias, or with
    ``bias_cols`` a ``(heads, L, bias_cols)`` table and a random column per
    key slot; masks of -100 at random places, per ``image_windows``
    windows."""
    g = torch.Generator().manual_seed(seed)
    C = heads * d

    def randn(*shape, std=1.0):
        return (torch.randn(*shape, generator=g) * std).to(device, dtype)

    def masked(*shape):
        hit = torch.rand(*shape, generator=g) < 0.25
        return (hit * -100.0).to(device)

    bias_index = None
    if bias_cols is not None:
        bias_index = torch.randint(
            0, bias_cols, (windows, N), generator=g).to(device)
    return Case(
        queries=randn(windows * L, C),
        keys=randn(key_table, C),
        values=randn(key_table, C),
        query_rows=torch.randperm(windows * L, generator=g).view(windows,
                                                                 L).to(device),
        key_rows=torch.randint(0, key_table, (windows, N),
                               generator=g).to(device),
        bias=randn(heads, L, bias_cols or N, std=0.5),
        bias_index=bias_index,
        key_mask=masked(image_windows, N) if key_mask else None,
        region_mask=masked(image_windows, L, L) if region_mask else None,
        scale=d**-0.5)


def reference(case: Case, dtype: torch.dtype = torch.float64) -> Tensor:
    """The operator in plain PyTorch, computed in ``dtype``: gather the
    windows' rows, add bias and masks, softmax, weigh the values, scatter
    the rows back."""
    windows, L = case.query_rows.shape
    N = case.key_rows.shape[1]
    heads = case.bias.shape[0]
    T, C = case.queries.shape

    def gather(table, rows, n):
        return table.to(dtype)[rows.reshape(-1)].view(windows, n, heads,
                                                      -1).transpose(1, 2)

    q = gather(case.queries, case.query_rows, L)
    k = gather(case.keys, case.key_rows, N)
    v = gather(case.values, case.key_rows, N)
    cols = case.bias_index if case.bias_index is not None else \
        torch.arange(N, device=q.device).expand(windows, N)
    # (heads, L, windows, N) -> (windows, heads, L, N)
    bias = case.bias.to(dtype)[:, :, cols].permute(2, 0, 1, 3)
    logits = case.scale * (q @ k.transpose(-2, -1)) + bias
    w = torch.arange(windows, device=q.device)
    if case.key_mask is not None:
        mask = case.key_mask.to(dtype)
        logits = logits + mask[w % mask.shape[0]][:, None, None]
    if case.region_mask is not None:
        region = case.region_mask.to(dtype)
        region = region[w % region.shape[0]][:, None]
        logits = torch.cat([logits[..., :L] + region, logits[..., L:]], -1)
    attn = logits.softmax(-1)
    rows = (attn @ v).transpose(1, 2).reshape(windows * L, C)
    out = rows.new_empty(T, C).index_copy(0, case.query_rows.reshape(-1), rows)
    return out


DIFFERENTIABLE = ('queries', 'keys', 'values', 'bias')


def with_grad(case: Case) -> Case:
    """``case`` with fresh leaves of its differentiable inputs."""
    return case._replace(
        **{
            name: getattr(case, name).detach().clone().requires_grad_()
            for name in DIFFERENTIABLE
        })


def outputs_and_grads(fn, case: Case, grad_out: Tensor):
    """``fn(case)`` and the gradients of its differentiable inputs for
    ``grad_out``."""
    case = with_grad(case)
    out = fn(case)
    grads = torch.autograd.grad(out,
                                [getattr(case, n) for n in DIFFERENTIABLE],
                                grad_out.to(out.dtype))
    return out.detach(), dict(zip(DIFFERENTIABLE, grads))


def relative_error(x: Tensor, ref: Tensor) -> float:
    """``|x - ref| / |ref|`` (Frobenius norms, in float64)."""
    ref = ref.double()
    return ((x.double() - ref).norm() / ref.norm()).item()


def kernel(case: Case) -> Tensor:
    return triton_window_attention(*case)


def check_against_reference(case: Case, out_tol: float, grad_tol: float):
    """Output and gradients of the kernel against the float64 reference,
    by relative error."""
    grad_out = torch.randn(
        case.queries.shape,
        dtype=torch.float64,
        generator=torch.Generator().manual_seed(1)).to(DEVICE)
    out, grads = outputs_and_grads(kernel, case, grad_out)
    ref_out, ref_grads = outputs_and_grads(reference, case, grad_out)
    errors = {'out': relative_error(out, ref_out)}
    errors.update({
        name: relative_error(grads[name], ref_grads[name])
        for name in DIFFERENTIABLE
    })
    for name in DIFFERENTIABLE:
        assert grads[name].dtype == getattr(case, name).dtype
    assert out.dtype == case.queries.dtype
    assert errors['out'] < out_tol, errors
    assert max(errors[name] for name in DIFFERENTIABLE) < grad_tol, errors


# (windows, heads, d, L, N, key table rows): N is never a multiple of the
# key blocks (64 forward, 32 backward); L = 81 takes two query blocks.
SHAPES = {
    'd32-L49': (4, 2, 32, 49, 70, 60),
    'd16-L25': (6, 3, 16, 25, 41, 40),
    'd8-L16': (5, 1, 8, 16, 33, 30),
    'd8-L81': (2, 1, 8, 81, 90, 50),
}


@pytest.mark.usefixtures('interpreted_kernels')
@pytest.mark.parametrize('shape', SHAPES.values(), ids=SHAPES.keys())
def test_shared_bias_with_masks(shape):
    """The Focal form: one (heads, L, N) bias for all windows, a key mask
    and a region mask."""
    case = make_case(*shape, key_mask=True, region_mask=True)
    check_against_reference(case, 1e-5, 1e-4)


@pytest.mark.usefixtures('interpreted_kernels')
@pytest.mark.parametrize(
    'shape', [SHAPES['d32-L49'], SHAPES['d16-L25']],
    ids=['d32-L49', 'd16-L25'])
def test_per_window_bias_index(shape):
    """The Focal-fast form: per-window columns of a (heads, L, D) table
    (columns repeat within and across windows), no masks."""
    case = make_case(*shape, bias_cols=57)
    check_against_reference(case, 1e-5, 1e-4)


@pytest.mark.usefixtures('interpreted_kernels')
def test_heavily_shared_keys():
    """12 windows whose 70 key slots all come from 6 key rows, a bias
    index and a key mask: many windows add to each key gradient row and
    bias column."""
    case = make_case(12, 2, 16, 16, 70, 6, bias_cols=9, key_mask=True)
    check_against_reference(case, 1e-5, 1e-4)


@pytest.mark.usefixtures('interpreted_kernels')
def test_float16():
    """float16 tables: the products run in float16 with float32
    accumulation (the weights are rounded to float16 before weighing the
    values): the output within 1e-3 and the gradients within 2e-3 of
    float64 (float16 rounds to 4.9e-4; measured 2.4e-4 and 4.0e-4). The
    results come in float16, the bias gradient in the bias' float32."""
    case = make_case(
        *SHAPES['d32-L49'],
        key_mask=True,
        region_mask=True,
        dtype=torch.float16)
    case = case._replace(bias=case.bias.float())
    check_against_reference(case, 1e-3, 2e-3)


@pytest.mark.usefixtures('interpreted_kernels')
def test_refuses_deterministic_mode():
    """The backward adds with atomics: it raises under
    torch.use_deterministic_algorithms(True) and warns in warn-only mode;
    the forward runs either way."""
    case = with_grad(make_case(*SHAPES['d8-L16']))
    before = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    try:
        torch.use_deterministic_algorithms(True)
        out = kernel(case)
        with pytest.raises(RuntimeError, match='not deterministic'):
            out.sum().backward()
        torch.use_deterministic_algorithms(True, warn_only=True)
        with pytest.warns(UserWarning, match='not deterministic'):
            kernel(case).sum().backward()
    finally:
        torch.use_deterministic_algorithms(before, warn_only=warn_only)


@pytest.mark.usefixtures('interpreted_kernels')
def test_compile_fullgraph_matches_eager():
    """torch.compile (aot_eager, no graph break) of a function calling the
    operator gives eager's output and gradients."""
    case = make_case(*SHAPES['d16-L25'], key_mask=True, region_mask=True)

    def fn(c: Case):
        return triton_window_attention(*c) * 2

    torch._dynamo.reset()
    compiled = torch.compile(fn, backend='aot_eager', fullgraph=True)
    grad_out = torch.randn(case.queries.shape).to(DEVICE)
    out, grads = outputs_and_grads(compiled, case, grad_out)
    ref_out, ref_grads = outputs_and_grads(fn, case, grad_out)
    torch.testing.assert_close(out, ref_out, rtol=0, atol=0)
    for name in DIFFERENTIABLE:
        torch.testing.assert_close(grads[name], ref_grads[name])


class Attention(torch.nn.Module):
    """A module that attends its inputs' windows with a learned bias."""

    def __init__(self, case: Case):
        super().__init__()
        self.bias = torch.nn.Parameter(case.bias)
        self.register_buffer('query_rows', case.query_rows)
        self.register_buffer('key_rows', case.key_rows)
        self.register_buffer('bias_index', case.bias_index)
        self.register_buffer('key_mask', case.key_mask)
        self.register_buffer('region_mask', case.region_mask)
        self.scale = case.scale

    def forward(self, queries, keys, values):
        return triton_window_attention(queries, keys, values, self.query_rows,
                                       self.key_rows, self.bias,
                                       self.bias_index, self.key_mask,
                                       self.region_mask, self.scale)


@pytest.mark.usefixtures('interpreted_kernels')
def test_export_holds_one_operator():
    """torch.export of a module calling the operator: one
    focal_mm.window_attention node, and the exported program runs."""
    case = make_case(*SHAPES['d8-L16'], bias_cols=20, key_mask=True)
    module = Attention(case)
    inputs = (case.queries, case.keys, case.values)
    program = torch.export.export(module, inputs)
    targets = [node.target for node in program.graph.nodes]
    assert targets.count(torch.ops.focal_mm.window_attention.default) == 1
    with torch.no_grad():
        torch.testing.assert_close(
            program.module()(*inputs), module(*inputs), rtol=0, atol=0)


BAD_INPUTS = {
    'keys float64': (dict(keys=lambda c: c.keys.double()), 'keys must be of'),
    'values float16':
    (dict(values=lambda c: c.values.half()), 'share a dtype'),
    'queries not contiguous':
    (dict(queries=lambda c: c.queries.t().contiguous().t()),
     'queries must be contiguous'),
    'keys 3-D': (dict(keys=lambda c: c.keys[None]), 'keys must have 2'),
    'keys channels': (dict(keys=lambda c: c.keys[:, 1:].contiguous()),
                      'keys and values must be'),
    'query_rows int32': (dict(query_rows=lambda c: c.query_rows.int()),
                         'query_rows must be of dtype torch.int64'),
    'query_rows too few': (dict(query_rows=lambda c: c.query_rows[1:]),
                           'one slot per query row'),
    'key_rows windows': (dict(key_rows=lambda c: c.key_rows[1:]),
                         'key_rows must be'),
    'bias heads': (dict(bias=lambda c: c.bias.repeat(3, 1, 1)), 'must divide'),
    'bias columns': (dict(bias=lambda c: c.bias[..., 1:].contiguous()),
                     'one column per key slot'),
    'bias_index shape':
    (dict(bias_index=lambda c: c.key_rows[:, 1:].contiguous()),
     'bias_index must be'),
    'key_mask slots': (dict(key_mask=lambda c: c.key_mask[:, 1:].contiguous()),
                       'key_mask must be'),
    'region_mask size':
    (dict(region_mask=lambda c: c.region_mask[:, 1:].contiguous()),
     'region_mask must be'),
    'keys on meta': (dict(keys=lambda c: c.keys.to('meta')), 'keys is on'),
}


@pytest.mark.parametrize(
    'change, message', BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
def test_bad_inputs(change, message):
    case = make_case(*SHAPES['d8-L16'], key_mask=True, region_mask=True)
    case = case._replace(**{name: fn(case) for name, fn in change.items()})
    with pytest.raises(ValueError, match=message):
        triton_window_attention(*case)


def test_unavailable_reasons(kernels, monkeypatch):
    """The reasons say what to do: an unsupported device type, the CPU
    without the interpreter, kernels already compiled for the GPU (asked
    about CPU tensors on any machine)."""
    assert 'not on mps' in triton_unavailable_reason('mps')
    monkeypatch.setattr(kernels, 'INTERPRETED', False)
    assert 'compiled for the GPU' in triton_unavailable_reason('cpu')
    with pytest.raises(RuntimeError, match='cannot run on cpu'):
        triton_window_attention(*make_case(*SHAPES['d8-L16'], device='cpu'))
    monkeypatch.delitem(sys.modules, op.KERNEL_MODULE)
    monkeypatch.setenv('TRITON_INTERPRET', '0')
    assert 'needs TRITON_INTERPRET=1' in triton_unavailable_reason('cpu')


# Compiles both kernels for an H100/H200 (sm_90) with Triton's own ptxas,
# which needs no GPU, in a process where Triton is not interpreting.
SM90_COMPILE = """
import itertools
import torch
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from focal_mm.ops import window_attention_kernel as K

assert not K.INTERPRETED
DTYPES = dict(fp32=torch.float32, bf16=torch.bfloat16)
for dtype, indexed in itertools.product(DTYPES, (False, True)):
    types = dict(lse='*fp32', query_rows='*i64', key_rows='*i64',
                 bias='*fp32', bias_index='*i64', key_mask='*fp32',
                 region_mask='*fp32', grad_k='*fp32', grad_v='*fp32',
                 grad_bias='*fp32', scale='fp32', scale_log2='fp32')
    for name in ('queries', 'keys', 'values', 'out', 'grad_out', 'grad_q'):
        types[name] = '*' + dtype
    flags = dict(HAS_BIAS_INDEX=indexed, HAS_KEY_MASK=True,
                 HAS_REGION=not indexed, BLOCK_M=64, BLOCK_D=32)
    options = K._launch_options(DTYPES[dtype])
    for kernel, block_n in ((K._forward_kernel, K.FORWARD_BLOCK_N),
                            (K._backward_kernel, K.BACKWARD_BLOCK_N)):
        constants = dict(flags, BLOCK_N=block_n)
        signature = {
            name: 'constexpr' if name in constants else types.get(name, 'i32')
            for name in kernel.arg_names
        }
        triton.compile(ASTSource(kernel, signature, constants),
                       target=GPUTarget('cuda', 90, 32), options=options)
print('compiled')
"""


def test_kernels_compile_for_sm90():
    """The compiled (not interpreted) kernels build for sm_90 in float32 and
    bfloat16, both bias forms, with the launch options of the module."""
    env = {k: v for k, v in os.environ.items() if k != 'TRITON_INTERPRET'}
    env['PYTHONPATH'] = os.pathsep.join(
        [str(Path(__file__).resolve().parents[1])] +
        [p for p in env.get('PYTHONPATH', '').split(os.pathsep) if p])
    run = subprocess.run([sys.executable, '-c', SM90_COMPILE],
                         env=env,
                         capture_output=True,
                         text=True,
                         timeout=300)
    assert run.returncode == 0 and 'compiled' in run.stdout, run.stderr[-3000:]


def require_gpu(kernels):
    assert DEVICE.type == 'cuda', 'this test needs a CUDA device'
    assert not kernels.INTERPRETED, 'TRITON_INTERPRET is set'


@pytest.mark.gpu
@pytest.mark.parametrize('form', ['shared', 'indexed'])
def test_gpu_detection_sized_windows(kernels, form):
    """Compiled kernels at detection sizes (L = 49, N = 401, d = 32, 600
    windows sharing 2,000 key rows), float32."""
    require_gpu(kernels)
    indexed = form == 'indexed'
    case = make_case(
        600,
        3,
        32,
        49,
        401,
        2000,
        bias_cols=300 if indexed else None,
        key_mask=True,
        region_mask=not indexed,
        image_windows=150)
    check_against_reference(case, 1e-5, 1e-4)


@pytest.mark.gpu
@pytest.mark.parametrize(
    'dtype', [torch.bfloat16, torch.float16], ids=['bf16', 'fp16'])
def test_gpu_half_precision(kernels, dtype):
    """bfloat16 (rounding to 3.9e-3: outputs within 1e-2, gradients within
    2e-2 of float64) and float16 (as on the CPU) on the GPU, forward and
    backward."""
    require_gpu(kernels)
    case = make_case(
        64, 4, 32, 49, 150, 500, key_mask=True, region_mask=True, dtype=dtype)
    tols = (1e-2, 2e-2) if dtype == torch.bfloat16 else (1e-3, 2e-3)
    check_against_reference(case, *tols)


ONNX_FORMS = {
    'shared': dict(key_mask=True, region_mask=True),
    'indexed': dict(bias_cols=20, key_mask=True),
    'float16': dict(key_mask=True, region_mask=True, dtype=torch.float16),
}


@pytest.mark.usefixtures('interpreted_kernels')
@pytest.mark.parametrize('form', ONNX_FORMS.values(), ids=ONNX_FORMS.keys())
def test_onnx_export_runs_in_onnxruntime(form):
    """torch.onnx.export (dynamo) with the operator's translation table:
    ONNX Runtime gives the kernel's output (relative error within 1e-5 in
    float32, 1e-3 in float16)."""
    import onnxruntime

    from focal_mm.ops.window_attention_onnx import ONNX_TRANSLATIONS
    case = make_case(*SHAPES['d8-L16'], **form)
    module = Attention(case).eval()
    inputs = (case.queries, case.keys, case.values)
    program = torch.onnx.export(
        module,
        inputs,
        dynamo=True,
        custom_translation_table=ONNX_TRANSLATIONS,
        input_names=['queries', 'keys', 'values'],
        optimize=False,
        verbose=False)
    session = onnxruntime.InferenceSession(
        program.model_proto.SerializeToString(),
        providers=['CPUExecutionProvider'])
    out = session.run(
        None, {
            name: x.cpu().numpy()
            for name, x in zip(['queries', 'keys', 'values'], inputs)
        })[0]
    with torch.no_grad():
        ref = module(*inputs)
    tol = 1e-3 if case.queries.dtype == torch.float16 else 1e-5
    assert relative_error(torch.from_numpy(out), ref.cpu()) < tol
