# Copyright (c) focal_mm contributors. All rights reserved.
"""What the installed torch and Triton provide: every version gate of
focal_mm, in one place.

focal_mm runs from torch 2.1 on (docs/compatibility.md). Newer APIs are
used where they exist, through the functions below, and the features that
need them (the Triton operator, the ONNX export, the safe-globals
registration of mmengine's checkpoint types) say which version they need
where they are missing. Nothing here imports Triton: the functions that
look at it are given the module.
"""
import os
import re
import sys
from contextlib import AbstractContextManager
from typing import Optional, Tuple

import torch


def release(version: str) -> Tuple[int, int]:
    """``(major, minor)`` of a version string such as ``'2.1.2+cu121'``."""
    match = re.match(r'(\d+)\.(\d+)', version)
    if match is None:
        raise ValueError(f'cannot read a version from {version!r}')
    return int(match.group(1)), int(match.group(2))


def _text(version: Tuple[int, int]) -> str:
    return '.'.join(map(str, version))


TORCH = release(torch.__version__)
# torch.library.custom_op (with register_fake and register_autograd).
CUSTOM_OP_TORCH = (2, 4)
# torch.onnx.export(dynamo=True, external_data=..., optimize=...).
ONNX_EXPORT_TORCH = (2, 6)
# torch.load's default weights_only=True, and add_safe_globals entries
# given as (object, 'module.name'), which the getattr stand-in needs.
SAFE_GLOBALS_TORCH = (2, 6)
# tl.dot(..., input_precision=...), used by every kernel.
KERNEL_TRITON = (3, 0)
# Before 3.2, compiling the bfloat16 kernels for Hopper (sm_90) aborts the
# process on an assertion ("mma -> mma layout conversion is only supported
# on Ampere"; triton-lang/triton#4418, fixed by #4492; the assertion is in
# 3.1.0's libtriton and gone from 3.2.0's).
HOPPER_BF16_TRITON = (3, 2)


def torch_lacks(version: Tuple[int, int], what: str) -> Optional[str]:
    """Why ``what`` cannot run on the installed torch (the version it
    needs), or None if it can."""
    if TORCH >= version:
        return None
    return (f'{what} needs torch >= {_text(version)}; this is torch '
            f'{torch.__version__}')


def triton_unsupported_reason(triton, device: torch.device,
                              dtype: Optional[torch.dtype]) -> Optional[str]:
    """Why the installed ``triton`` (the module) cannot compile or run
    focal_mm's kernels on ``device`` with ``dtype`` (None: any dtype), or
    None if it can."""
    installed = release(triton.__version__)
    if installed < KERNEL_TRITON:
        return (f'the kernels need Triton >= {_text(KERNEL_TRITON)}; this '
                f'is Triton {triton.__version__}')
    if (dtype == torch.bfloat16 and device.type == 'cuda'
            and installed < HOPPER_BF16_TRITON
            and torch.cuda.get_device_capability(device) >= (9, 0)):
        return (f'compiling the bfloat16 kernels for this GPU (compute '
                f'capability 9.0 or newer) needs Triton >= '
                f'{_text(HOPPER_BF16_TRITON)} (older ones abort the process); '
                f'this is Triton {triton.__version__}; use float16 or '
                'float32')
    return None


def triton_interpret_requested(triton) -> bool:
    """Whether ``TRITON_INTERPRET`` asks ``triton`` (the module) to
    interpret kernels on the CPU: read through ``triton.knobs`` from Triton
    3.4, from the environment before."""
    knobs = getattr(triton, 'knobs', None)
    if knobs is not None:
        return bool(knobs.runtime.interpret)
    return os.environ.get('TRITON_INTERPRET', '0') == '1'


def is_compiling() -> bool:
    """Whether ``torch.compile`` (Dynamo) is tracing the caller."""
    if hasattr(torch.compiler, 'is_compiling'):  # torch >= 2.3
        return torch.compiler.is_compiling()
    # Before, Dynamo's own flag; Dynamo cannot be tracing if never imported.
    dynamo = sys.modules.get('torch._dynamo')
    return dynamo is not None and dynamo.is_compiling()


def is_exporting() -> bool:
    """Whether ``torch.export`` is tracing the caller (never before torch
    2.5, where focal_mm's export does not run: :data:`ONNX_EXPORT_TORCH`)."""
    exporting = getattr(torch.compiler, 'is_exporting', None)
    return exporting is not None and exporting()


def autocast_enabled(device_type: str) -> bool:
    """Whether autocast is on for ``device_type`` (``'cpu'``, ``'cuda'``,
    ...)."""
    if TORCH >= (2, 4):
        return torch.is_autocast_enabled(device_type)
    if device_type == 'cpu':
        return torch.is_autocast_cpu_enabled()
    if device_type == 'cuda':
        return torch.is_autocast_enabled()
    return False


def efficient_or_math_attention() -> AbstractContextManager:
    """A context in which ``scaled_dot_product_attention`` runs the
    memory-efficient kernel, or the math one where that cannot run."""
    try:  # torch >= 2.3
        from torch.nn.attention import SDPBackend, sdpa_kernel
    except ImportError:
        return torch.backends.cuda.sdp_kernel(
            enable_flash=False, enable_math=True, enable_mem_efficient=True)
    return sdpa_kernel([SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH])
