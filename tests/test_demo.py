"""The README's main job, for real: tools/demo.py generates the shapes
dataset, trains a Focal-T Mask R-CNN on it from scratch on CPU, evaluates it
(COCO metric on the held-out images) and draws its predictions.

The test trains one epoch of the demo's four (``make demo`` trains all
four) and asks for a box and a mask mAP that every measured one-epoch run
exceeds with margin and an untrained model does not reach (docs/demo.md)."""
import re
import subprocess
import sys

import pytest
from PIL import Image

from conftest import REPO_ROOT

pytestmark = pytest.mark.slow
# One epoch gave box / mask mAP from 0.227 / 0.317 (seed 1) to 0.330 / 0.496
# (the demo's seed 0; 0.280 / 0.457 with one thread, as in make test's
# workers), docs/demo.md; the model as training starts it gives 0.001 /
# 0.000. The bounds sit four to five times below the worst working run and
# far above the untrained model.
MIN_BOX_MAP = 0.05
MIN_MASK_MAP = 0.07


def test_demo_learns_the_shapes(tmp_path):
    command = [
        sys.executable,
        str(REPO_ROOT / 'tools' / 'demo.py'), '--work-dir',
        str(tmp_path / 'work'), '--data-root',
        str(tmp_path / 'shapes_coco'), '--epochs', '1'
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    maps = re.search(r'COCO box mAP ([\d.]+), mask mAP ([\d.]+)',
                     result.stdout)
    print(result.stdout[-800:])
    assert maps, result.stdout[-2000:]
    assert float(maps[1]) > MIN_BOX_MAP, result.stdout[-2000:]
    assert float(maps[2]) > MIN_MASK_MAP, result.stdout[-2000:]
    picture = tmp_path / 'work' / 'prediction.png'
    assert Image.open(picture).size == (672, 480)
