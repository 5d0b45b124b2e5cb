# Copyright (c) focal_mm contributors. All rights reserved.
"""ONNX translation of the ``focal_mm::window_attention`` operator for
``torch.onnx.export(..., dynamo=True)``, in standard ONNX operators (no
custom domain, so ONNX Runtime runs it as it is).

The graph gathers the windows' rows, adds the bias (gathered by its column
index if there is one) and masks, takes a float32 softmax, weighs the
values and scatters the rows back: the unfused computation the Triton
kernels fuse, at the static shapes of the export. Pass
:data:`ONNX_TRANSLATIONS` as ``custom_translation_table``.
"""
import math

import onnx_ir as ir
import torch
from onnxscript import opset18 as op

# Registers the operator that the table below names.
from . import window_attention_op  # noqa: F401


def _ints(*values: int):
    return op.Constant(value_ints=list(values))


def _float32(x):
    return x if x.dtype == ir.DataType.FLOAT else op.Cast(
        x, to=ir.DataType.FLOAT)


def window_attention_onnx(queries, keys, values, query_rows, key_rows, bias,
                          bias_index, key_mask, region_mask, scale: float):
    """The operator's two outputs, the rows ``(Tq, C)`` and the base-2
    log-sum-exp ``(nWin, heads, L)``, from ONNX values of its inputs
    (absent optional inputs are None); shapes must be static."""
    num_windows, L = query_rows.shape
    N = key_rows.shape[1]
    heads = bias.shape[0]
    C = queries.shape[1]

    def windows(table, rows, slots, perm):
        """Rows of ``table`` gathered to (nWin, slots, heads, d), permuted."""
        gathered = op.Gather(table, rows, axis=0)
        return op.Transpose(
            op.Reshape(gathered, _ints(num_windows, slots, heads, C // heads)),
            perm=perm)

    def per_window(mask):
        """Row ``w % nW`` of a per-image mask for every window ``w``."""
        index = op.Mod(
            op.Range(
                op.Constant(value_int=0), op.Constant(value_int=num_windows),
                op.Constant(value_int=1)),
            op.Constant(value_int=mask.shape[0]))
        return _float32(op.Gather(mask, index, axis=0))

    q = windows(queries, query_rows, L, [0, 2, 1, 3])
    k = windows(keys, key_rows, N, [0, 2, 3, 1])
    v = windows(values, key_rows, N, [0, 2, 1, 3])
    logits = op.Mul(
        _float32(op.MatMul(q, k)), op.Constant(value_float=float(scale)))
    if bias_index is None:
        logits = op.Add(logits, _float32(bias))
    else:
        # (heads, L, nWin, N) -> (nWin, heads, L, N)
        gathered = op.Gather(bias, bias_index, axis=2)
        logits = op.Add(logits,
                        _float32(op.Transpose(gathered, perm=[2, 0, 1, 3])))
    if key_mask is not None:
        logits = op.Add(logits,
                        op.Unsqueeze(per_window(key_mask), _ints(1, 2)))
    if region_mask is not None:
        region = op.Pad(per_window(region_mask), _ints(0, 0, 0, 0, 0, N - L))
        logits = op.Add(logits, op.Unsqueeze(region, _ints(1)))
    weights = op.CastLike(op.Softmax(logits, axis=-1), queries)
    rows = op.Reshape(
        op.Transpose(op.MatMul(weights, v), perm=[0, 2, 1, 3]),
        _ints(num_windows * L, C))
    # Every query row is some window's slot: the scatter overwrites all.
    out = op.ScatterND(queries, op.Reshape(query_rows, _ints(-1, 1)), rows)
    lse = op.Div(
        op.ReduceLogSumExp(logits, _ints(-1), keepdims=0),
        op.Constant(value_float=math.log(2)))
    return out, lse


ONNX_TRANSLATIONS = {
    torch.ops.focal_mm.window_attention.default: window_attention_onnx
}
