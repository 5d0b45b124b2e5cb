# Copyright (c) focal_mm contributors. All rights reserved.
"""Speed of an exported model in ONNX Runtime (CPU) against the same model
in PyTorch eager, on the same input, in paired repeats."""
import statistics
from typing import NamedTuple, Tuple, Union

import onnxruntime as ort
import torch
import torch.nn as nn
from torch import Tensor

from ..timing import paired_seconds, ratio_spread
from .runtime import make_session, run_onnx


class SpeedComparison(NamedTuple):
    """Timings of :func:`benchmark_onnx`.

    Attributes:
        torch_s (float): Median seconds of a PyTorch eager forward
            (``inference_mode``).
        onnx_s (float): Median seconds of an ONNX Runtime run.
        ratios (tuple[float]): Min, median and max over the repeats of
            ``torch / onnx`` of the same repeat: above 1, ONNX Runtime is
            faster. Machine noise hits both steps of a repeat alike, so read
            the ratio, and its spread, rather than the seconds.
        repeats (int): Timed repeats.
        threads (int): Threads of both (PyTorch's intra-op threads, given to
            ONNX Runtime too).
    """
    torch_s: float
    onnx_s: float
    ratios: Tuple[float, float, float]
    repeats: int
    threads: int

    def summary(self) -> str:
        low, mid, high = self.ratios
        return (f'PyTorch eager {self.torch_s * 1e3:.1f} ms, ONNX Runtime '
                f'{self.onnx_s * 1e3:.1f} ms (medians of {self.repeats}, '
                f'{self.threads} threads); PyTorch / ONNX Runtime per repeat: '
                f'{mid:.2f} (min {low:.2f}, max {high:.2f})')


def benchmark_onnx(model: nn.Module,
                   session: Union[str, ort.InferenceSession],
                   image: Tensor,
                   repeats: int = 5,
                   warmup: int = 1) -> SpeedComparison:
    """Times ``model`` (eval, PyTorch eager) and its export ``session`` (a
    path or a session of :func:`~.runtime.make_session`) on ``image``
    ``(B, 3, H, W)``, the shape the file was exported for.

    Every repeat runs both, in alternating order, after ``warmup`` untimed
    repeats (:func:`~focal_mm.timing.paired_seconds`); the per-repeat ratio
    pairs steps that ran under the same machine load.

    Raises:
        ValueError: If ``repeats < 1``, ``warmup < 0`` or the model is in
            training mode.
    """
    if model.training:
        raise ValueError('benchmark_onnx times inference: call model.eval()')
    if isinstance(session, str):
        session = make_session(session)
    array = image.detach().cpu().numpy()

    def torch_step():
        with torch.inference_mode():
            model(image)

    def onnx_step():
        run_onnx(session, array)

    times = paired_seconds(
        dict(torch=torch_step, onnx=onnx_step), repeats, warmup)
    return SpeedComparison(
        torch_s=statistics.median(times['torch']),
        onnx_s=statistics.median(times['onnx']),
        ratios=ratio_spread(times['torch'], times['onnx']),
        repeats=repeats,
        threads=session.get_session_options().intra_op_num_threads)
