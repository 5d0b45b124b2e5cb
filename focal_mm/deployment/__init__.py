# Copyright (c) focal_mm contributors. All rights reserved.
"""Deployment of Focal models to ONNX Runtime, at one fixed input size.

- :mod:`.models`: the exportable model of a config (an mmpretrain classifier,
  image to logits; or the Focal backbone of an mmdet / mmseg config, image to
  its stage outputs) with its weights.
- :mod:`.export`: :func:`export_onnx`, an eval model to an ONNX file.
- :mod:`.runtime`: :func:`run_onnx` in ONNX Runtime (CPU) and
  :func:`compare` against PyTorch's outputs.
- :mod:`.speed`: :func:`benchmark_onnx`, ONNX Runtime against PyTorch eager,
  paired repeats.

Every index table that depends on the map size (window gathers, masks,
position-bias indices) is a constant of the exported graph: a file runs at
the size it was exported for, and no other.

Importing this package imports onnx, onnxruntime and onnxscript (pinned in
requirements.txt); ``import focal_mm`` alone does not. It needs torch >= 2.6
(``torch.onnx.export`` with ``dynamo=True``, ``external_data`` and
``optimize``): on an older torch its import raises ImportError saying so.
"""
from ..ops.versions import ONNX_EXPORT_TORCH, torch_lacks

_UNSUPPORTED = torch_lacks(
    ONNX_EXPORT_TORCH, 'The ONNX export of focal_mm (focal_mm.deployment: '
    'torch.onnx.export with dynamo=True, external_data and optimize)')
if _UNSUPPORTED is not None:
    raise ImportError(_UNSUPPORTED)

from .export import export_onnx  # noqa: E402
from .models import Exportable, build_exportable  # noqa: E402
from .runtime import Difference, compare, run_onnx  # noqa: E402
from .speed import SpeedComparison, benchmark_onnx  # noqa: E402

__all__ = [
    'Difference', 'Exportable', 'SpeedComparison', 'benchmark_onnx',
    'build_exportable', 'compare', 'export_onnx', 'run_onnx'
]
