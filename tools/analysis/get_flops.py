#!/usr/bin/env python
"""Parameters and FLOPs of the model of any config (mmdet, mmseg or
mmpretrain), counted by tracing one forward with mmengine's FlopAnalyzer.

    python tools/analysis/get_flops.py CONFIG --shape H W

FLOPs are multiply-accumulates, as in the official Focal Transformer counter
and OpenMMLab's tools. Fused attention (``scaled_dot_product_attention``,
which the analyzer does not know) is counted as its two products, queries
by keys and weights by values, over every key a query attends.

Focal-fast's position-bias MLPs are counted as the model defines them (and
the official code and counter compute them): once for every window, query
and key. focal_mm evaluates them once per distinct offset and gathers the
results, far fewer operations; the line "executed" gives the count of what
this implementation runs.
"""
import argparse
import importlib
import math
from functools import partial
from typing import Any, Dict, List

import torch
import torch.nn as nn
from mmengine.analysis import FlopAnalyzer, parameter_count
from mmengine.analysis.jit_handles import get_shape
from mmengine.config import Config, DictAction
from mmengine.registry import DefaultScope

from focal_mm import FocalFastAttention


def attention_flop_jit(inputs: List[Any], outputs: List[Any]) -> int:
    """``q @ k^T`` and ``attn @ v`` of a scaled_dot_product_attention."""
    q, k, v = (get_shape(t) for t in inputs[:3])
    batch = 1
    for n in q[:-2]:
        batch *= n
    return batch * q[-2] * k[-2] * (q[-1] + v[-1])


def flop_analyzer(model: nn.Module, inputs: torch.Tensor) -> FlopAnalyzer:
    """mmengine's FlopAnalyzer of ``model`` on ``inputs`` that also counts
    fused attention (:func:`attention_flop_jit`), without warnings about
    operators that cost nothing."""
    analyzer = FlopAnalyzer(model, inputs)
    analyzer.set_op_handle('aten::scaled_dot_product_attention',
                           attention_flop_jit)
    analyzer.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    return analyzer


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


def count_bias_mlps_per_key(model: nn.Module) -> Dict[str, int]:
    """Forward hooks that count, for every :class:`FocalFastAttention`
    call, its bias MLPs evaluated once per window, query and key: the
    returned dict fills in with the module name -> multiply-accumulates."""
    counts = {}

    def hook(name, module, inputs, output):
        B, H, W, _ = inputs[0].shape
        w = module.window_size
        geom = module.geometry(
            math.ceil(H / w) * w,
            math.ceil(W / w) * w, inputs[0].device)
        num_windows, num_keys = geom.key_index.shape
        hidden = module.head_dims
        per_pair = 2 * hidden + hidden * module.num_heads
        counts[name] = counts.get(name, 0) + \
            B * num_windows * w * w * num_keys * per_pair

    for name, module in model.named_modules():
        if isinstance(module, FocalFastAttention):
            module.register_forward_hook(partial(hook, name))
    return counts


def complexity(cfg: Config, shape) -> dict:
    """``params``, ``flops`` (Focal-fast bias MLPs per key, see above),
    ``executed_flops`` and ``flops_by_module`` (top level)."""
    model = build_model(cfg).eval()
    scope = cfg.get('default_scope', 'mmengine')
    per_key = count_bias_mlps_per_key(model)
    wrapped = TensorForward(model, data_samples(scope, shape))
    analyzer = flop_analyzer(wrapped, torch.randn(1, 3, *shape))
    by_module = analyzer.by_module()
    executed = analyzer.total()
    # What the MLPs on the distinct offsets executed, replaced by the count
    # per key.
    tabled = sum(
        by_module.get(f'model.{name}.bias_mlps', 0) for name in per_key)
    flops = executed - tabled + sum(per_key.values())
    by_top = {}
    for name, _ in model.named_children():
        if f'model.{name}' not in by_module:
            continue
        extra = sum(n - by_module.get(f'model.{m}.bias_mlps', 0)
                    for m, n in per_key.items() if m.startswith(name + '.'))
        by_top[name] = by_module[f'model.{name}'] + extra
    return dict(
        params=parameter_count(model)[''],
        flops=flops,
        executed_flops=executed,
        flops_by_module=by_top)


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
    if result['executed_flops'] != result['flops']:
        print(f"  executed: {result['executed_flops'] / 1e9:.3f} G (the "
              'position-bias MLPs once per distinct offset)')
    print(f"Params: {result['params'] / 1e6:.3f} M")


if __name__ == '__main__':
    main()
