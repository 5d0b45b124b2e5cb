# Copyright (c) focal_mm contributors. All rights reserved.
"""Ops: gathered window attention on a device.

The data an attention call takes (:mod:`.window_rows`, :mod:`.window_masks`,
:mod:`.window_chunks`), the per-device execution plan
(:mod:`.execution_plan`), the chunked autograd function
(:mod:`.chunked_attention`) and its dispatch (:mod:`.window_attention`),
the ``focal_mm::window_attention`` operator with its Triton kernels
(:mod:`.window_attention_op`, :mod:`.window_attention_kernel`) and its ONNX
translation (:mod:`.window_attention_onnx`, imported only by export), and
what the installed torch and Triton provide (:mod:`.versions`, every
version gate of focal_mm). The bottom layer: it imports no other part of
focal_mm.
"""
