"""The README's main job, for real: a Focal-T Mask R-CNN trained from scratch
for a few minutes on CPU learns the generated shapes dataset (COCO metric on
held-out images) and draws its predictions."""
import re
import subprocess
import sys

import pytest
from PIL import Image

from conftest import REPO_ROOT

pytestmark = pytest.mark.slow


def test_demo_learns_the_shapes(tmp_path):
    command = [
        sys.executable,
        str(REPO_ROOT / 'tools' / 'demo.py'), '--work-dir',
        str(tmp_path / 'work'), '--data-root',
        str(tmp_path / 'shapes_coco')
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    box_map = float(re.search(r'COCO box mAP ([\d.]+)', result.stdout)[1])
    print(result.stdout[-800:])
    assert box_map > 0.3, result.stdout[-2000:]
    picture = tmp_path / 'work' / 'prediction.png'
    assert Image.open(picture).size == (672, 480)
