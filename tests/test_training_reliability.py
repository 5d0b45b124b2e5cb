"""Interrupted training loses nothing, and training is deterministic.

A run of the demo detector, random flips and drop path included, is killed
with SIGKILL in the middle of epoch 2, after epoch 1's checkpoint was
written; ``tools/train.py --resume`` continues from it. With the same seed,
the interrupted run logs the same losses as an uninterrupted run up to the
kill, and the resumed run ends with the same weights, optimiser state and
learning rate (RNGStateHook carries the generator states through the
checkpoint).
"""
import json
import signal
import subprocess
import sys
import time

import pytest
import torch

from focal_mm.synthetic_data import make_coco
from test_tools import DEMO, TOOLS, demo_options

pytestmark = pytest.mark.slow
DETERMINISTIC = ['randomness.seed=0', 'randomness.deterministic=True']


def train_cmd(work, root, epochs, resume=False):
    return [
        sys.executable,
        str(TOOLS / 'train.py'),
        str(DEMO), '--work-dir',
        str(work), *(['--resume'] if resume else []),
        *demo_options(root, epochs), 'train_dataloader.batch_size=1',
        'default_hooks.logger.interval=1', *DETERMINISTIC
    ]


def run_train(cmd):
    """Runs ``tools/train.py``; a failure shows the end of its output."""
    out = subprocess.run(cmd, capture_output=True, text=True)
    assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]
    return out


def logged_losses(work):
    """The losses of the first run in ``work`` (one per iteration)."""
    log = sorted(work.glob('*/vis_data/scalars.json'))[0]
    return [
        json.loads(line)['loss'] for line in log.read_text().splitlines()
        if '"loss"' in line
    ]


def test_sigkill_then_resume_equals_uninterrupted(tmp_path):
    # Four images of batch 1: four iterations per epoch.
    coco_root = make_coco(str(tmp_path / 'coco'), num_train=4, num_val=2)
    reference = tmp_path / 'reference'
    run_train(train_cmd(reference, coco_root, 2))

    work = tmp_path / 'interrupted'
    log = open(tmp_path / 'interrupted.log', 'w')
    proc = subprocess.Popen(
        train_cmd(work, coco_root, 2), stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 600
    text = ''
    while time.time() < deadline and proc.poll() is None:
        text = (tmp_path / 'interrupted.log').read_text()
        # Epoch 1 is saved and epoch 2 has run an iteration: kill it.
        if (work / 'epoch_1.pth').exists() and 'Epoch(train) [2][1/4]' in text:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.2)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, text[-2000:]
    assert not (work / 'epoch_2.pth').exists()

    # Same seed, same course: every loss logged before the kill (epoch 1's
    # four at least: the kill may come before the log of [2][1/4] is
    # written to scalars.json).
    before_kill = logged_losses(work)
    assert len(before_kill) >= 4
    assert before_kill == logged_losses(reference)[:len(before_kill)]

    out = run_train(train_cmd(work, coco_root, 2, resume=True))
    assert 'resumed epoch: 1, iter: 4' in out.stdout + out.stderr

    ours = torch.load(work / 'epoch_2.pth', weights_only=True)
    ref = torch.load(reference / 'epoch_2.pth', weights_only=True)
    for key, value in ref['state_dict'].items():
        assert torch.equal(ours['state_dict'][key], value), key
    assert ours['meta']['iter'] == ref['meta']['iter'] == 8
    ours_opt, ref_opt = ours['optimizer'], ref['optimizer']
    assert ours_opt['param_groups'][0]['lr'] == ref_opt['param_groups'][0][
        'lr']
    for idx, state in ref_opt['state'].items():
        for name, value in state.items():
            assert torch.equal(ours_opt['state'][idx][name], value), name
