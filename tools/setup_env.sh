#!/usr/bin/env bash
# Creates (or checks) the project's virtual environment in .venv with the whole
# OpenMMLab stack. Idempotent: when everything is in place it takes seconds.
#
#   FOCAL_MM_VENV   where the environment lives      (default: <repo>/.venv)
#   FOCAL_MM_CACHE  where the built mmcv wheel is kept (default: ~/.cache/focal_mm)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${FOCAL_MM_VENV:-$ROOT/.venv}"
CACHE="${FOCAL_MM_CACHE:-$HOME/.cache/focal_mm}"
PY="$VENV/bin/python"
STAMP="$VENV/.focal_mm_stamp"

step() { echo "[setup_env] $*"; }
fail() { echo "[setup_env] FAILED at step: $1" >&2; exit 1; }

pin() {  # pin NAME -> the version requirements.txt gives for NAME
    sed -n "s/^$1==\([^ ]*\).*/\1/p" "$ROOT/requirements.txt"
}

# Everything the environment depends on; a change rebuilds what is needed.
fingerprint() {
    cat "$ROOT/requirements.txt" "$ROOT/requirements-test.txt" "$ROOT/setup.py" \
        "$ROOT/tools/setup_env.sh" | sha256sum | cut -d' ' -f1
}

check_stack() {
    "$PY" - <<'PYEOF'
import torch, torchvision, mmcv, mmengine
from mmcv.ops import nms as mmcv_nms
import torchvision.ops
boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.], [20., 20., 30., 30.]])
scores = torch.tensor([0.9, 0.8, 0.7])
assert torchvision.ops.nms(boxes, scores, 0.5).tolist() == [0, 2], 'torchvision nms'
_, keep = mmcv_nms(boxes, scores, 0.5)
assert keep.tolist() == [0, 2], 'mmcv nms'
import mmdet.utils, mmseg.utils, mmpretrain.utils
mmdet.utils.register_all_modules(init_default_scope=False)
mmseg.utils.register_all_modules(init_default_scope=False)
mmpretrain.utils.register_all_modules(init_default_scope=False)
import focal_mm  # noqa: F401
print(f'[setup_env] stack OK: torch {torch.__version__}, torchvision {torchvision.__version__}, '
      f'mmcv {mmcv.__version__}, mmengine {mmengine.__version__}')
PYEOF
}

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$(fingerprint)" ]] && check_stack; then
    exit 0
fi

step "virtual environment at $VENV"
if [[ ! -x "$PY" ]]; then
    python3 -m venv "$VENV" || fail "create virtual environment"
fi
PIP=("$PY" -m pip --disable-pip-version-check)

TORCH="$(pin torch)"; TV="$(pin torchvision)"; MMCV="$(pin mmcv)"
step "torch $TORCH + torchvision $TV (package index build)"
if ! "$PY" -c "import torch, torchvision, sys; sys.exit(torch.__version__.split('+')[0] != '$TORCH' or torchvision.__version__.split('+')[0] != '$TV')" 2>/dev/null; then
    # --isolated skips the machine's find-links folder, whose CPU-only torch
    # wheel lacks the operators torchvision registers.
    "${PIP[@]}" install --isolated -q "torch==$TORCH" "torchvision==$TV" || fail "install torch/torchvision"
fi


step "mmcv $MMCV with compiled ops"
if ! "$PY" -c "import mmcv, mmcv._ext, sys; sys.exit(mmcv.__version__ != '$MMCV')" 2>/dev/null; then
    mkdir -p "$CACHE/wheels"
    WHEEL="$(ls "$CACHE"/wheels/mmcv-"$MMCV"-*.whl 2>/dev/null | head -1 || true)"
    if [[ -z "$WHEEL" ]]; then
        step "building mmcv $MMCV from source (about 12 minutes on 2 cores)"
        # mmcv 2.1's setup.py needs an old setuptools; the runtime pin follows.
        "${PIP[@]}" install -q "setuptools<70" wheel ninja psutil "numpy==$(pin numpy)" \
            || fail "install mmcv build tools"
        MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-2}" "${PIP[@]}" wheel --no-build-isolation --no-deps \
            -w "$CACHE/wheels" "mmcv==$MMCV" || fail "build mmcv $MMCV"
        WHEEL="$(ls "$CACHE"/wheels/mmcv-"$MMCV"-*.whl | head -1)"
    fi
    "${PIP[@]}" install -q --no-deps --force-reinstall "$WHEEL" || fail "install mmcv wheel"
fi

step "OpenMMLab libraries, test tools and focal_mm (editable)"
"${PIP[@]}" install -q -r "$ROOT/requirements.txt" -r "$ROOT/requirements-test.txt" \
    || fail "install requirements"
"${PIP[@]}" install -q --no-deps --no-build-isolation -e "$ROOT" || fail "install focal_mm"

step "checking the stack"
check_stack || fail "stack check (mmcv.ops.nms, torchvision.ops.nms, register_all_modules)"
fingerprint > "$STAMP"
