"""tools/dist_train.sh on CPU: two processes (gloo) train a Focal detector
for a few iterations, rank 0 saves one checkpoint, and every rank ends with
the same weights as that checkpoint; tools/dist_test.sh then evaluates it
with two processes."""
import os
import subprocess
import sys

import pytest
import torch

from focal_mm.synthetic_data import make_coco
from conftest import REPO_ROOT
from test_tools import DEMO, demo_options

pytestmark = pytest.mark.slow


def launch(script, *args):
    """Runs a tools/dist_*.sh script with two CPU processes; its output."""
    env = dict(
        os.environ,
        PYTHON=sys.executable,
        PORT='29533',
        OMP_NUM_THREADS='1',
        PYTHONPATH=str(REPO_ROOT / 'tests'))
    result = subprocess.run(
        ['bash', str(REPO_ROOT / 'tools' / script), *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=900)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    return output


def test_two_process_training_agrees(tmp_path):
    root = make_coco(str(tmp_path / 'coco'), num_train=4, num_val=2)
    work = tmp_path / 'work'
    config = tmp_path / 'dist.py'
    config.write_text(
        f"_base_ = '{DEMO}'\n"
        "custom_imports = dict(imports=['focal_mm', 'rank_dump_hook'], "
        "allow_failed_imports=False)\n"
        "custom_hooks = [dict(type='RNGStateHook'), "
        "dict(type='RankStateDumpHook')]\n")
    output = launch('dist_train.sh', config, 2, '--work-dir', work,
                    *demo_options(root), 'train_dataloader.batch_size=1')
    assert 'Distributed training is not used' not in output
    checkpoints = sorted(work.glob('epoch_*.pth'))
    assert [c.name for c in checkpoints] == ['epoch_1.pth']
    saved = torch.load(checkpoints[0], weights_only=True)['state_dict']
    ranks = [
        torch.load(work / f'rank{r}.pth', weights_only=True) for r in (0, 1)
    ]
    assert saved.keys() == ranks[0].keys() == ranks[1].keys()
    for key, value in saved.items():
        assert torch.equal(ranks[0][key], value), key
        assert torch.equal(ranks[1][key], value), key

    # The same checkpoint evaluated by two processes.
    output = launch('dist_test.sh', config, checkpoints[0], 2, '--work-dir',
                    work,
                    *demo_options(root)[:6])
    assert 'coco/bbox_mAP' in output
