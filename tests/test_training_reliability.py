"""Interrupted training loses nothing, and training is deterministic.

A run is killed with SIGKILL in the middle of epoch 2, after epoch 1's
checkpoint was written; ``tools/train.py --resume`` continues from it, and
the final weights, optimiser state and learning rate equal those of an
uninterrupted run with the same seed. Randomness that mmengine checkpoints do
not carry (random flips, drop path) is switched off for the resume test;
two fresh runs with the same seed, flips and drop path included, log
identical losses.
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
NO_UNSAVED_RANDOMNESS = [
    'model.backbone.drop_path_rate=0.0',
    'train_dataloader.dataset.pipeline.3.prob=0.0'
]


def train_cmd(work, root, epochs, *extra, resume=False):
    return [
        sys.executable,
        str(TOOLS / 'train.py'),
        str(DEMO), '--work-dir',
        str(work), *(['--resume'] if resume else []),
        *demo_options(root, epochs), 'train_dataloader.batch_size=1',
        'default_hooks.logger.interval=1', *DETERMINISTIC, *extra
    ]


@pytest.fixture(scope='module')
def coco_root(tmp_path_factory):
    return make_coco(
        str(tmp_path_factory.mktemp('coco')), num_train=4, num_val=2)


def run_train(cmd):
    """Runs ``tools/train.py``; a failure shows the end of its output."""
    out = subprocess.run(cmd, capture_output=True, text=True)
    assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]
    return out


def losses(work):
    (log, ) = work.glob('*/vis_data/scalars.json')
    return [
        json.loads(line)['loss'] for line in log.read_text().splitlines()
        if '"loss"' in line
    ]


def test_same_seed_same_losses(coco_root, tmp_path):
    runs = []
    for name in ('a', 'b'):
        work = tmp_path / name
        run_train(train_cmd(work, coco_root, 1))
        runs.append(losses(work))
    assert len(runs[0]) == 4
    assert runs[0] == runs[1]


def test_sigkill_then_resume_equals_uninterrupted(coco_root, tmp_path):
    reference = tmp_path / 'reference'
    run_train(train_cmd(reference, coco_root, 3, *NO_UNSAVED_RANDOMNESS))

    work = tmp_path / 'interrupted'
    log = open(tmp_path / 'interrupted.log', 'w')
    proc = subprocess.Popen(
        train_cmd(work, coco_root, 3, *NO_UNSAVED_RANDOMNESS),
        stdout=log,
        stderr=subprocess.STDOUT)
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

    out = run_train(
        train_cmd(work, coco_root, 3, *NO_UNSAVED_RANDOMNESS, resume=True))
    assert 'resumed epoch: 1, iter: 4' in out.stdout + out.stderr

    ours = torch.load(work / 'epoch_3.pth', weights_only=True)
    ref = torch.load(reference / 'epoch_3.pth', weights_only=True)
    for key, value in ref['state_dict'].items():
        assert torch.equal(ours['state_dict'][key], value), key
    assert ours['meta']['iter'] == ref['meta']['iter'] == 12
    ours_opt, ref_opt = ours['optimizer'], ref['optimizer']
    assert ours_opt['param_groups'][0]['lr'] == ref_opt['param_groups'][0][
        'lr']
    for idx, state in ref_opt['state'].items():
        for name, value in state.items():
            assert torch.equal(ours_opt['state'][idx][name], value), name
