#!/usr/bin/env bash
# Creates (or checks) the environment of the oldest stack focal_mm supports,
# requirements-oldest.txt (torch 2.1, mmcv-lite 2.1.0, mmdet 3.3), in
# .venv-oldest, for `make test-oldest`. Idempotent: when everything is in
# place it takes seconds.
#
#   FOCAL_MM_OLDEST_VENV    where the environment lives
#                           (default: <repo>/.venv-oldest)
#   FOCAL_MM_OLDEST_PYTHON  the Python that creates it (default: python3.11,
#                           else python3; torch 2.1 has wheels for Python
#                           3.8 to 3.11)
#
# mmcv-lite is mmcv without its compiled ops; tools/mmcv_lite_ext.py stands
# in for them (raising when called) so that mmdet's, mmseg's and
# mmpretrain's models import.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${FOCAL_MM_OLDEST_VENV:-$ROOT/.venv-oldest}"
BASE_PYTHON="${FOCAL_MM_OLDEST_PYTHON:-python3.11}"
command -v "$BASE_PYTHON" >/dev/null || BASE_PYTHON=python3
PY="$VENV/bin/python"
STAMP="$VENV/.focal_mm_stamp"
REQUIREMENTS="$ROOT/requirements-oldest.txt"
EXT_STAND_IN="$ROOT/tools/mmcv_lite_ext.py"

step() { echo "[setup_oldest_env] $*"; }
fail() { echo "[setup_oldest_env] FAILED at step: $1" >&2; exit 1; }

# Everything the environment depends on; a change reinstalls what is needed.
fingerprint() {
    cat "$REQUIREMENTS" "$ROOT/setup.py" "$EXT_STAND_IN" \
        "$ROOT/tools/setup_oldest_env.sh" | sha256sum | cut -d' ' -f1
}

check_stack() {
    "$PY" -W ignore - <<'PYEOF'
import torch, torchvision, mmcv, mmengine
import mmdet.utils, mmseg.utils, mmpretrain.utils
for lib in (mmdet, mmseg, mmpretrain):
    lib.utils.register_all_modules(init_default_scope=False)
import mmdet.models, mmseg.models, mmpretrain.models  # noqa: F401
import focal_mm  # noqa: F401
print(f'[setup_oldest_env] stack OK: torch {torch.__version__}, '
      f'torchvision {torchvision.__version__}, mmcv {mmcv.__version__} '
      f'(lite), mmengine {mmengine.__version__}')
PYEOF
}

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$(fingerprint)" ]] && check_stack; then
    exit 0
fi

step "virtual environment at $VENV ($BASE_PYTHON)"
if [[ ! -x "$PY" ]]; then
    "$BASE_PYTHON" -c 'import sys; sys.exit(not (3, 8) <= sys.version_info < (3, 12))' \
        || fail "torch 2.1 needs Python 3.8 to 3.11: set FOCAL_MM_OLDEST_PYTHON"
    "$BASE_PYTHON" -m venv "$VENV" || fail "create virtual environment"
fi
# --isolated: the pins alone decide, whatever pip configuration the machine
# has (a find-links folder with another torch, constraints).
PIP=("$PY" -m pip --isolated --disable-pip-version-check)

step "packages of $(basename "$REQUIREMENTS")"
"${PIP[@]}" install -q -r "$REQUIREMENTS" || fail "install requirements"

step "stand-in for mmcv's compiled ops"
MMCV_DIR="$("$PY" -c 'import mmcv, os; print(os.path.dirname(mmcv.__file__))')" \
    || fail "find mmcv"
cp "$EXT_STAND_IN" "$MMCV_DIR/_ext.py" || fail "install the mmcv._ext stand-in"

step "focal_mm (editable)"
"${PIP[@]}" install -q --no-deps --no-build-isolation -e "$ROOT" \
    || fail "install focal_mm"

step "checking the stack"
check_stack || fail "stack check (imports, register_all_modules)"
fingerprint > "$STAMP"
