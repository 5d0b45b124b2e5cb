#!/usr/bin/env bash
# The GPU check: the GPU benchmark of the backbones and the tests marked
# `gpu`, on a lent GPU machine whose Python has torch and Triton but no
# OpenMMLab package and no network (Python 3.12, torch 2.11, Triton 3.6,
# numpy 2.5), and its rehearsal on a CPU machine with that software.
#
#   bash tools/gpu_check.sh prepare    # with pip's network: the wheels a
#                                      # run carries, into .whl/
#   bash tools/gpu_check.sh rehearse   # on a CPU machine: prepare, then
#                                      # run's stages in a Python 3.12
#                                      # environment of the GPU machine's
#                                      # versions, CUDA absent, smoke sizes
#   bash tools/gpu_check.sh run        # on the GPU machine, .whl/ carried
#
# Each stage runs under its own time limit, and a failing stage never stops
# the others; each prints one line with its result and seconds. Everything
# goes to $OUT (default gpu_check_out/): gpu_check.log (every stage's
# output) and figures.json (each stage's status, seconds and results),
# both rewritten as each stage ends. The exit status is non-zero when a
# stage failed. GPU_CHECK_STAGES="count_ops ms_train" runs only those
# (after install, device and imports), for a second call. docs/benchmark.md
# gives the device invocation and the time of each stage.
#
# Whole detectors need mmcv's compiled CUDA ops, which take too long to
# build there: mmcv-lite is installed instead, with a stand-in for the
# compiled extension (tools/mmcv_lite_ext.py), so that mmdet's and
# mmpretrain's models import; no detector case runs.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SELF="$ROOT/tools/gpu_check.sh"
HELPERS="$ROOT/tools/gpu_check"
WHEELS="$ROOT/.whl"
VENV="${GPU_CHECK_VENV:-$ROOT/.venv-gpu312}"

# The GPU machine's software that the check uses, as its image has it
# (torch, Triton, torchvision, numpy, transformers and the ONNX packages at
# the versions seen there; the rest at versions of the same time, as only
# their names are known). transformers matters: with it (and pycocotools)
# mmpretrain imports its multimodal models, which fail under transformers 5.
IMAGE=(torch==2.11.0 triton==3.6.0 torchvision==0.26.0 numpy==2.5.2
    'setuptools<82' pyyaml==6.0.4 opencv-python-headless==5.1.0.95
    scipy==1.18.1 rich==15.0.0 matplotlib==3.11.2 pillow==13.0.0
    packaging==26.4 tqdm==4.70.1 six==1.17.0 einops==0.8.2 zipp==4.1.2
    click==8.5.1 markdown==3.11.4 tabulate==0.10.0 pytest==9.2.0
    onnx==1.23.1 onnxruntime==1.30.0 onnxscript==0.7.2 onnx-ir==1.0.0
    transformers==5.17.0 huggingface-hub==1.33.0 tokenizers==0.23.2
    safetensors==0.8.0)

# What the GPU machine lacks, one version each: the pure-Python OpenMMLab
# stack and what it imports that the image has not. platformdirs: yapf
# imports it (mmengine imports yapf); model-index provides the module
# `modelindex` that mmpretrain imports (the `modelindex` wheel is an empty
# shim); importlib-metadata: mmpretrain checks its dependencies with it;
# setuptools: mmengine reads `mmdet::` config bases (count_ops, ms_train)
# through pkg_resources, gone from setuptools 82, and the image's version
# is not known.
CARRIED=(mmengine==0.10.7 mmcv-lite==2.1.0 mmdet==3.3.0 mmpretrain==1.2.0
    addict==2.4.0 yapf==0.43.0 platformdirs==4.14.9 termcolor==3.3.0
    terminaltables==3.1.10 shapely==2.2.0 pycocotools==2.0.11
    importlib-metadata==8.7.0 mat4py==0.6.0 model-index==0.1.11
    ordered-set==4.1.0 setuptools==81.0.0)

say() { echo "[gpu_check] $*"; }

wheel_file() {  # wheel_file NAME==VERSION -> the file's name pattern
    local name="${1%%==*}" version="${1##*==}"
    echo "${name//-/_}-${version}-*.whl"
}

check_wheels() {
    local pin found
    for pin in "${CARRIED[@]}"; do
        # shellcheck disable=SC2207
        found=($(cd "$WHEELS" 2>/dev/null && ls $(wheel_file "$pin") 2>/dev/null))
        if [[ ${#found[@]} -ne 1 ]]; then
            say "FAILED: .whl/ lacks $pin (run: bash tools/gpu_check.sh prepare)"
            return 1
        fi
    done
    found=("$WHEELS"/*.whl)
    if [[ ${#found[@]} -ne ${#CARRIED[@]} ]]; then
        say "FAILED: .whl/ holds ${#found[@]} wheels, not the" \
            "${#CARRIED[@]} of tools/gpu_check.sh (run prepare again)"
        return 1
    fi
}

prepare() {
    local pins="${CARRIED[*]}"
    if [[ "$(cat "$WHEELS/.pins" 2>/dev/null)" == "$pins" ]] \
            && check_wheels >/dev/null; then
        say "wheels: .whl/ is up to date (${#CARRIED[@]} wheels)"
        return 0
    fi
    local new="$WHEELS.new"
    rm -rf "$new" && mkdir -p "$new"
    python3 -m pip download -q --no-deps --only-binary=:all: \
        --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 -d "$new" "${CARRIED[@]}" \
        || { say "FAILED: pip download"; return 1; }
    rm -rf "$WHEELS" && mv "$new" "$WHEELS"
    echo "$pins" > "$WHEELS/.pins"
    check_wheels || return 1
    say "wheels: ${#CARRIED[@]} in .whl/ ($(du -sh "$WHEELS" | cut -f1))"
}

python312() {  # an interpreter to make the rehearsal's environment with
    local py
    for py in "${GPU_CHECK_PYTHON312:-}" "$(command -v python3.12)" \
            "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.12.*/bin/python; do
        [[ -n "$py" && -x "$py" ]] && { echo "$py"; return 0; }
    done
    say "FAILED: no Python 3.12 (set GPU_CHECK_PYTHON312)" >&2
    return 1
}

make_venv() {  # the rehearsal's Python 3.12 environment, made once
    local stamp="$VENV/.gpu_check_image"
    if [[ "$(cat "$stamp" 2>/dev/null)" == "${IMAGE[*]}" ]]; then
        say "environment: $VENV is up to date"
        return 0
    fi
    local py
    py="$(python312)" || return 1
    say "environment: making $VENV (torch's CUDA wheels: a few GB)"
    [[ -x "$VENV/bin/python" ]] || "$py" -m venv "$VENV" || return 1
    "$VENV/bin/python" -m pip install -q "${IMAGE[@]}" \
        || { say "FAILED: installing the GPU image's packages"; return 1; }
    echo "${IMAGE[*]}" > "$stamp"
}

install_into() {  # install_into SITE: the carried wheels, as a run needs
    local site="$1"
    "$PY" -m pip install -q --no-index --no-deps --no-compile \
        --no-cache-dir --upgrade --target "$site" "$WHEELS"/*.whl || return 1
    cp "$ROOT/tools/mmcv_lite_ext.py" "$site/mmcv/_ext.py" || return 1
    # mmpretrain imports its multimodal models when it finds the
    # distributions pycocotools and transformers; those fail under the
    # image's transformers 5 (BertPreTrainedModel(PreTrainedModel) with
    # PreTrainedModel None). Without pycocotools' metadata (its module
    # stays) they stay off, as in the project's own stack, which has no
    # transformers.
    rm -r "$site"/pycocotools-*.dist-info
}

STATUS=0

report() {  # report NAME STATUS SECONDS [WHY]: its line, and figures.json
    say "$(printf '%-22s %-8s %5ds' "$1" "$2" "$3")${4:+  ($4)}"
    local result=""
    for result in "$TMP/$1.json" "$TMP/$1.xml" ""; do
        [[ -z "$result" || -f "$result" ]] && break
    done
    "$PY" "$HELPERS/record.py" "$OUT/figures.json" "$1" "$2" "$3" \
        $result >> "$LOG" 2>&1
}

stage() {  # stage NAME SECONDS COMMAND...: one line with result and time
    local name="$1" limit="$2" start rc status
    shift 2
    if [[ -n "${GPU_CHECK_STAGES:-}" && ! " install device imports \
            $GPU_CHECK_STAGES " =~ [[:space:]]$name[[:space:]] ]]; then
        report "$name" skipped 0 'not selected'
        return
    fi
    if [[ "$MODE" == run ]]; then
        local left=$((DEADLINE - SECONDS))
        if ((left < 15)); then
            report "$name" skipped 0 'budget spent'
            return
        fi
        ((limit > left)) && limit=$left
    else
        limit=$REHEARSAL_LIMIT
    fi
    start=$SECONDS
    echo "===== $name (limit ${limit}s): $*" >> "$LOG"
    timeout -k 10 "$limit" "$@" >> "$LOG" 2>&1
    rc=$?
    case $rc in
        0) status=ok ;;
        124 | 137) status=timeout; STATUS=1 ;;
        *) status="failed"; STATUS=1 ;;
    esac
    echo "===== $name: $status (exit $rc) in $((SECONDS - start)) s" >> "$LOG"
    report "$name" "$status" $((SECONDS - start))
}

IMPORTS='import torch, triton, numpy, mmengine, mmcv, mmcv.ops, mmdet.models
import mmpretrain.models, focal_mm
from mmdet.models.backbones import SwinTransformer
from focal_mm.ops import window_attention_kernel
print("imported: mmengine", mmengine.__version__, "mmcv", mmcv.__version__,
      "mmdet", mmdet.__version__, "mmpretrain", mmpretrain.__version__,
      "focal_mm from", focal_mm.__file__)'

stages() {
    local site="$TMP/site"
    stage install 120 bash "$SELF" _install "$PY" "$site"
    export PYTHONPATH="$ROOT:$site"
    if [[ "$MODE" == run ]]; then
        stage device 60 "$PY" "$HELPERS/device.py" "$TMP/device.json" \
            --require-cuda
    else
        stage device 60 "$PY" "$HELPERS/device.py" "$TMP/device.json"
    fi
    stage imports 120 "$PY" -W ignore -c "$IMPORTS"

    local bench=("$PY" tools/analysis/benchmark.py --no-flops)
    local plan=(--models focal focal_fast) triton=(--models focal_triton
        focal_fast_triton) backbones=(--cases infer_224 infer_800x1216
        train_224) pytest=("$PY" -m pytest -q -ra --tb=short
        -p no:cacheprovider) collect=() kernel_marks='gpu or not gpu'
    local ms_batches=12 ms_dtype=fp16 count_size=()
    local fp16_cases=("${backbones[@]}")
    local ms_models=("${plan[@]}")
    if [[ "$MODE" == run ]]; then
        bench+=(--device cuda --warmup 2 --repeats 7)
        ms_models+=("${triton[@]:1}")
    else
        # One step of each model, batch 1. CPUs without fp16 arithmetic
        # take 10-50 s for one fp16 step at 224: fp16 runs the smallest
        # case only, and ms_train runs in fp32. count_ops counts a smaller
        # image (the CUDA plan takes minutes at 800 x 1344 here). The Triton models run on
        # CUDA only (kernel_tests compiles their kernels for sm_90), and
        # the GPU tests are only collected.
        bench+=(--device cpu --warmup 0 --repeats 1 --no-memory --batch 1)
        collect=(--collect-only) kernel_marks='not gpu'
        fp16_cases=(--cases infer_224)
        ms_batches=1 ms_dtype=fp32 count_size=(--count-size 320 448)
    fi
    local dtype cases
    for dtype in fp16 bf16; do
        cases=("${backbones[@]}")
        [[ $dtype == fp16 ]] && cases=("${fp16_cases[@]}")
        stage "bench_${dtype}_plan" 100 "${bench[@]}" --dtype "$dtype" \
            "${cases[@]}" "${plan[@]}" --json "$TMP/bench_${dtype}_plan.json"
        if [[ "$MODE" == run ]]; then
            stage "bench_${dtype}_triton" 100 "${bench[@]}" \
                --dtype "$dtype" "${backbones[@]}" "${triton[@]}" \
                --json "$TMP/bench_${dtype}_triton.json"
        fi
    done
    stage gpu_tests 150 "${pytest[@]}" "${collect[@]}" -m gpu \
        tests/test_gpu.py --junitxml "$TMP/gpu_tests.xml"
    stage kernel_tests 120 "${pytest[@]}" -m "$kernel_marks" \
        tests/test_triton_window_attention.py --junitxml "$TMP/kernel_tests.xml"
    stage count_ops 60 "${bench[@]}" --count-ops --plan cuda "${plan[@]}" \
        "${count_size[@]}" --json "$TMP/count_ops.json"
    stage ms_train 90 "${bench[@]}" --dtype "$ms_dtype" --cases ms_train \
        --ms-batches "$ms_batches" "${ms_models[@]}" \
        --json "$TMP/ms_train.json"
    stage bench_fp32 90 "${bench[@]}" --dtype fp32 "${backbones[@]}" \
        "${plan[@]}" --json "$TMP/bench_fp32.json"
    report detectors skipped 0 "they need mmcv's CUDA ops"
}

main() {
    MODE="$1"
    OUT="${OUT:-$ROOT/gpu_check_out}"
    mkdir -p "$OUT" || exit 1
    LOG="$OUT/gpu_check.log"
    : > "$LOG"
    rm -f "$OUT/figures.json"
    TMP="$(mktemp -d)"
    trap 'rm -rf "$TMP"' EXIT
    cd "$ROOT" || exit 1
    export PYTHONUNBUFFERED=1
    if [[ "$MODE" == run ]]; then
        PY="${PYTHON:-python3}"
        # About 6 minutes of an H100 for the stages, so that a second try
        # fits in the device time too; stages past it are skipped.
        DEADLINE=$((SECONDS + ${GPU_CHECK_BUDGET:-360}))
        command -v nvidia-smi >/dev/null && nvidia-smi >> "$LOG" 2>&1
        check_wheels || exit 1
    else
        REHEARSAL_LIMIT="${GPU_CHECK_STAGE_LIMIT:-1200}"
        prepare && make_venv || exit 1
        PY="$VENV/bin/python"
    fi
    local start=$SECONDS
    stages
    say "$MODE: done in $((SECONDS - start)) s;" \
        "$([[ $STATUS == 0 ]] && echo 'every stage passed' \
            || echo 'SOME STAGE FAILED')" \
        "(log and figures in $OUT)"
    exit $STATUS
}

case "${1:-}" in
    prepare) prepare ;;
    rehearse | run) main "$1" ;;
    _install) PY="$2" install_into "$3" ;;  # (a stage of rehearse, run)
    *) echo "usage: $0 prepare|rehearse|run" >&2; exit 2 ;;
esac
