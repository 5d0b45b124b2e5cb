"""Operations per inference forward and per training step of the detection
backbones (the Mask R-CNN configs' Focal-T and Focal-fast-T against mmdet's
Swin-T) with the execution plan of a chosen device: ``benchmark.py
--count-ops``.

An operation is an ATen call that reaches the backend, views and
allocations left out (``focal_mm.op_count``): on a GPU about one kernel
launch each. The plan of another device is forced (``--plan cuda`` on a
CPU); there the CPU's math attention stands in for CUDA's fused kernel, so
the CUDA counts of the Focal models are upper bounds (a few operations per
block more than on a GPU).
"""
from typing import Callable, Dict, List, Tuple

import torch
from detector_cases import build_backbone

from focal_mm.models import forced_plan
from focal_mm.op_count import count_operations
from focal_mm.ops.execution_plan import cuda_plan, execution_plan


def plan_for(name: str, device: str, cuda_memory: int):
    """The plan ``--plan name`` forces (``'device'``: the device's own)."""
    if name == 'cuda':
        return cuda_plan(cuda_memory)
    if name == 'cpu':
        return execution_plan(torch.device('cpu'))
    return execution_plan(torch.device(device))


def count_steps(backbone: torch.nn.Module, images: torch.Tensor
                ) -> Dict[str, int]:
    """Operations of one inference forward and of one training step
    (forward, a loss and backward), each after a step that builds the
    per-size tables."""

    def infer():
        with torch.no_grad():
            backbone(images)

    def train():
        sum(o.float().mean() for o in backbone(images)).backward()
        backbone.zero_grad(set_to_none=True)

    backbone.eval()
    infer()
    inference = sum(count_operations(infer).values())
    backbone.train()
    train()
    return dict(infer=inference, train=sum(count_operations(train).values()))


def count_rows(models: List[str], resolve: Callable[[str], Tuple[str, str]],
               size: tuple, batch: int, plan: str, device: str,
               cuda_memory: int) -> List[dict]:
    """A row per model (``'swin'`` first) with its counts and their ratios
    to Swin-T's; ``resolve`` gives a model's ``(family, attn_impl)``."""
    images = torch.randn(batch, 3, *size, device=device)
    counts = {}
    with forced_plan(plan_for(plan, device, cuda_memory)):
        for model in ['swin'] + models:
            backbone = build_backbone('mask_rcnn',
                                      *resolve(model)).to(device)
            counts[model] = count_steps(backbone, images)
    swin = counts['swin']
    return [
        dict(
            model=model,
            plan=plan,
            size=f'{batch} x {size[0]}x{size[1]}',
            infer=c['infer'],
            infer_ratio=c['infer'] / swin['infer'],
            train=c['train'],
            train_ratio=c['train'] / swin['train'])
        for model, c in counts.items()
    ]
