# Copyright (c) focal_mm contributors. All rights reserved.
"""Exporting an eval model to an ONNX file at one fixed input size.

Exporter: torch's default, the dynamo exporter (``torch.export`` in
non-strict mode, then onnxscript), with static shapes. The TorchScript
exporter (``dynamo=False``) does not fit this code: its tracer hands the
model every size as a 0-dim tensor, so the per-size geometry cache
(``geometry_cache.py``, keyed by the map size) misses and the index tables
are rebuilt inside the graph, as operators; Focal-fast's (``torch.unique``,
``argsort``) and Focal's merged position bias (``logaddexp``) have no ONNX
translation there.

The geometry caches and the trace: ``torch.export`` runs the model's Python
code on FakeTensors. A table built during the trace would be a FakeTensor,
cached under its size for every later eager call. :func:`export_onnx`
therefore runs the model eagerly first, so that every table of the size is
built for real and the trace only hits the cache (the tables become
constants of the graph); it checks that the trace built none, and if it did
it empties the caches and raises.
"""
import os.path as osp
from typing import Sequence, Tuple

import torch
import torch.nn as nn
from torch import Tensor

from ..models.geometry.geometry_cache import (clear_geometry_caches,
                                              geometry_cache_info)

INPUT_NAME = 'image'


def export_onnx(model: nn.Module,
                image: Tensor,
                path: str,
                output_names: Sequence[str],
                opset_version: int = 18) -> Tuple[Tensor, ...]:
    """Exports ``model`` for inputs of exactly the shape of ``image`` to the
    ONNX file ``path`` (one file, weights inside).

    Args:
        model (nn.Module): In eval mode; maps a ``(B, 3, H, W)`` float image
            batch to a tensor or a tuple of tensors.
        image (Tensor): ``(B, 3, H, W)``: the batch size and the size the
            graph is for. Its values do not matter to the graph.
        path (str): The ``.onnx`` file to write.
        output_names (Sequence[str]): One name per output of ``model``.
        opset_version (int): ONNX opset of the graph.

    Returns:
        tuple[Tensor]: The outputs of the eager model on ``image``, computed
        before the export (the run that caches the per-size tables).

    Raises:
        ValueError: For a model in training mode, an image that is not a
            4-D floating-point batch, or output names that do not match the
            outputs.
        RuntimeError: If the trace built a geometry table (see the module
            docstring); the caches are emptied first.
    """
    if model.training:
        raise ValueError('export_onnx needs a model in eval mode (call '
                         'model.eval()): the graph is an inference graph')
    if image.dim() != 4 or not image.is_floating_point():
        raise ValueError('export_onnx expects a (B, C, H, W) floating-point '
                         f'image batch, got {tuple(image.shape)} '
                         f'{image.dtype}')
    with torch.no_grad():
        outputs = model(image)
        outputs = (outputs, ) if isinstance(outputs, Tensor) else \
            tuple(outputs)
        if len(outputs) != len(output_names):
            raise ValueError(f'{len(output_names)} output names '
                             f'{list(output_names)} for {len(outputs)} '
                             'outputs')
        before = geometry_cache_info().misses
        try:
            torch.onnx.export(
                model,
                (image, ),
                path,
                dynamo=True,
                external_data=False,
                # onnxscript's graph optimiser takes minutes on these graphs
                # and ONNX Runtime optimises the graph when it loads it.
                optimize=False,
                opset_version=opset_version,
                input_names=[INPUT_NAME],
                output_names=list(output_names),
                verbose=False)
        finally:
            # Also after a failed export: no FakeTensor may stay cached.
            traced_tables = geometry_cache_info().misses != before
            if traced_tables:
                clear_geometry_caches()
    if traced_tables:
        raise RuntimeError(
            'The export built a geometry table during the trace (it would '
            'have cached a FakeTensor): the geometry caches were emptied and '
            f'{osp.basename(path)} may be wrong. The eager run before the '
            'export should have built every table of this size; this is a '
            'bug in focal_mm.')
    return outputs
