#!/usr/bin/env python
"""Parameters and FLOPs of the model of any config (mmdet, mmseg or
mmpretrain), counted by tracing one forward with mmengine's FlopAnalyzer.

    python tools/analysis/get_flops.py CONFIG --shape H W

FLOPs are multiply-accumulates, as in the official Focal Transformer counter
and OpenMMLab's tools. Fused attention (``scaled_dot_product_attention``,
which the analyzer does not know) is counted as its two products, queries
by keys and weights by values, over every key a query attends.
"""
import argparse
import importlib
from typing import Any, List

import torch
import torch.nn as nn
from mmengine.analysis import FlopAnalyzer, parameter_count
from mmengine.analysis.jit_handles import get_shape
from mmengine.config import Config, DictAction
from mmengine.registry import DefaultScope

import focal_mm  # noqa: F401


def attention_flop_jit(inputs: List[Any], outputs: List[Any]) -> int:
    """``q @ k^T`` and ``attn @ v`` of a scaled_dot_product_attention."""
    q, k, v = (get_shape(t) for t in inputs[:3])
    batch = 1
    for n in q[:-2]:
        batch *= n
    return batch * q[-2] * k[-2] * (q[-1] + v[-1])


class TensorForward(nn.Module):
    """Calls a model in ``mode='tensor'`` with fixed data samples."""

    def __init__(self, model, data_samples):
        super().__init__()
        self.model = model
        self.data_samples = data_samples

    def forward(self, inputs):
        return self.model(inputs, self.data_samples, mode='tensor')


def data_samples(scope: str, shape):
    """Minimal meta information that dense heads read in tensor mode."""
    h, w = shape
    meta = dict(
        img_shape=(h, w),
        ori_shape=(h, w),
        pad_shape=(h, w),
        batch_input_shape=(h, w),
        scale_factor=(1., 1.))
    if scope == 'mmdet':
        from mmdet.structures import DetDataSample
        return [DetDataSample(metainfo=meta)]
    if scope == 'mmseg':
        from mmseg.structures import SegDataSample
        return [SegDataSample(metainfo=meta)]
    return None


def build_model(cfg: Config) -> nn.Module:
    scope = cfg.get('default_scope', 'mmengine')
    importlib.import_module(f'{scope}.utils').register_all_modules(False)
    registry = importlib.import_module(f'{scope}.registry').MODELS
    with DefaultScope.overwrite_default_scope(scope):
        return registry.build(cfg.model)


def complexity(cfg: Config, shape) -> dict:
    """``params``, ``flops`` and ``flops_by_module`` (top level)."""
    model = build_model(cfg).eval()
    scope = cfg.get('default_scope', 'mmengine')
    wrapped = TensorForward(model, data_samples(scope, shape))
    analyzer = FlopAnalyzer(wrapped, torch.randn(1, 3, *shape))
    analyzer.set_op_handle('aten::scaled_dot_product_attention',
                           attention_flop_jit)
    analyzer.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    by_module = analyzer.by_module()
    return dict(
        params=parameter_count(model)[''],
        flops=analyzer.total(),
        flops_by_module={
            name: by_module[f'model.{name}']
            for name, _ in model.named_children()
            if f'model.{name}' in by_module
        })


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument(
        '--shape', type=int, nargs=2, default=[224, 224], metavar=('H', 'W'))
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = parser.parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    result = complexity(cfg, tuple(args.shape))
    print(f'Input shape: (1, 3, {args.shape[0]}, {args.shape[1]})')
    for name, flops in result['flops_by_module'].items():
        print(f'  {name}: {flops / 1e9:.3f} GFLOPs')
    print(f"FLOPs: {result['flops'] / 1e9:.3f} G")
    print(f"Params: {result['params'] / 1e6:.3f} M")


if __name__ == '__main__':
    main()
