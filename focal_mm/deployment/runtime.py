# Copyright (c) focal_mm contributors. All rights reserved.
"""Running an exported file in ONNX Runtime (CPU) and comparing its outputs
with PyTorch's."""
from typing import List, NamedTuple, Optional, Sequence, Union

import numpy as np
import onnxruntime as ort
import torch
from torch import Tensor

Array = Union[np.ndarray, Tensor]


def _numpy(x: Array) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, Tensor) else \
        np.asarray(x)


def make_session(path: str,
                 threads: Optional[int] = None) -> ort.InferenceSession:
    """An ONNX Runtime CPU session of the file ``path``, with ``threads``
    intra-op threads (default: as many as PyTorch uses,
    ``torch.get_num_threads()``, so that timings compare like with like)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    return ort.InferenceSession(
        path, sess_options=options, providers=['CPUExecutionProvider'])


def run_onnx(session: Union[str, ort.InferenceSession],
             image: Array) -> List[np.ndarray]:
    """The outputs of an exported model (a path or a session of
    :func:`make_session`) on the ``(B, 3, H, W)`` float32 ``image``, in the
    order of the graph's outputs.

    Raises:
        ValueError: If ``image`` does not have the shape the graph was
            exported for (each file is for one size).
    """
    if isinstance(session, str):
        session = make_session(session)
    (graph_input, ) = session.get_inputs()
    image = _numpy(image).astype(np.float32, copy=False)
    if list(image.shape) != list(graph_input.shape):
        raise ValueError(
            f'This ONNX graph was exported for inputs of shape '
            f'{tuple(graph_input.shape)} (its index tables are constants '
            f'for that size), got {tuple(image.shape)}: export one for this '
            'size')
    return session.run(None, {graph_input.name: image})


class Difference(NamedTuple):
    """How far one output of ONNX Runtime is from PyTorch's.

    ``max_abs`` is ``max |onnx - torch|`` over all elements, ``max_rel``
    that over ``max |torch|`` (relative to the output's largest magnitude,
    not element-wise: elements near zero do not blow it up). NaNs on
    either side make both NaN: test with ``not max_rel <= tolerance``.
    """
    name: str
    max_abs: float
    max_rel: float


def compare(outputs: Sequence[Array], reference: Sequence[Array],
            names: Sequence[str]) -> List[Difference]:
    """The :class:`Difference` of each output against its reference.

    Raises:
        ValueError: If the numbers of outputs or their shapes differ.
    """
    if not len(outputs) == len(reference) == len(names):
        raise ValueError(f'{len(outputs)} outputs, {len(reference)} '
                         f'references and {len(names)} names')
    differences = []
    for name, out, ref in zip(names, outputs, reference):
        out, ref = _numpy(out).astype(np.float64), _numpy(ref).astype(
            np.float64)
        if out.shape != ref.shape:
            raise ValueError(f'Output {name}: shape {out.shape}, expected '
                             f'{ref.shape}')
        max_abs = float(np.abs(out - ref).max())
        scale = float(np.abs(ref).max())
        differences.append(
            Difference(
                name, max_abs, max_abs / scale if scale else
                (float('inf') if max_abs else 0.)))
    return differences
