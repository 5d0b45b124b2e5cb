#!/usr/bin/env bash
# The GPU check: the tests marked `gpu` and the GPU benchmark of the
# backbones, on a machine with one CUDA device and a Python that has torch
# and triton but no OpenMMLab packages (and no network).
#
#   bash tools/gpu_check.sh prepare   # on a machine with pip's network:
#                                     # the missing wheels into .whl/
#   bash tools/gpu_check.sh run       # on the GPU machine, .whl/ beside:
#                                     # install, test, benchmark; the logs
#                                     # and JSON go to $OUT (default
#                                     # gpu_check_out/)
#
# Whole detectors need mmcv's compiled CUDA ops, which take too long to
# build there: mmcv-lite is installed instead, with a stand-in for the
# compiled extension whose functions raise when called, so that mmdet's and
# mmpretrain's models import (the backbones, Swin-T's included, call none;
# checked with this CPU's Python). The benchmark's detector cases are
# therefore not run.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WHEELS="$ROOT/.whl"
PY="${PYTHON:-python3}"

prepare() {
    mkdir -p "$WHEELS"
    grep -qx '/.whl/' "$ROOT/.git/info/exclude" 2>/dev/null \
        || echo '/.whl/' >> "$ROOT/.git/info/exclude"
    # The pure-Python OpenMMLab stack and what it imports that the GPU
    # machine's image lacks (its image has opencv, scipy, rich, einops...).
    "$PY" -m pip download -q --no-deps --only-binary=:all: \
        --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 -d "$WHEELS" \
        mmengine==0.10.7 mmcv-lite==2.1.0 mmdet==3.3.0 mmpretrain==1.2.0 \
        addict yapf termcolor terminaltables shapely pycocotools==2.0.11 \
        mat4py modelindex ordered-set
    ls -la "$WHEELS"
}

run() {
    OUT="${OUT:-$ROOT/gpu_check_out}"
    mkdir -p "$OUT"
    SITE=/tmp/focal_mm_site
    "$PY" -m pip install -q --no-index --no-deps --no-compile \
        --no-cache-dir --upgrade --target "$SITE" "$WHEELS"/*.whl || exit 1
    cp "$ROOT/tools/mmcv_lite_ext.py" "$SITE/mmcv/_ext.py" || exit 1
    export PYTHONPATH="$ROOT:$SITE"
    export PYTHONUNBUFFERED=1
    cd "$ROOT"
    {
        nvidia-smi
        "$PY" -c 'import torch, triton; print("torch", torch.__version__, "triton", triton.__version__, torch.cuda.get_device_name())'
    } > "$OUT/device.txt" 2>&1
    cat "$OUT/device.txt"

    # Every test of the kernel runs on the device when there is one.
    "$PY" -m pytest -q -ra tests/test_gpu.py -m gpu 2>&1 \
        | tee "$OUT/gpu_tests.log"
    "$PY" -m pytest -q -ra tests/test_triton_window_attention.py \
        -m 'gpu or not gpu' 2>&1 | tee -a "$OUT/gpu_tests.log"

    local bench=(tools/analysis/benchmark.py --device cuda --repeats 7)
    for dtype in fp16 bf16 fp32; do
        "$PY" "${bench[@]}" --dtype "$dtype" \
            --cases infer_224 infer_800x1216 train_224 \
            --json "$OUT/backbones_$dtype.json" 2>&1 \
            | tee "$OUT/backbones_$dtype.log" | grep '^|'
    done
    "$PY" "${bench[@]}" --count-ops --json "$OUT/count_ops.json" 2>&1 \
        | tee "$OUT/count_ops.log" | grep '^|'
    "$PY" "${bench[@]}" --dtype fp16 --cases ms_train \
        --json "$OUT/ms_train.json" 2>&1 | tee "$OUT/ms_train.log" \
        | grep '^|'
}

case "${1:-}" in
    prepare) prepare ;;
    run) run ;;
    *) echo "usage: $0 prepare|run" >&2; exit 2 ;;
esac
