"""The user-facing tools, run for real as subprocesses on small generated
datasets: train -> test -> infer for detection, segmentation and
classification, and tools/test.py on a converted official checkpoint
(train.py --resume: test_training_reliability.py)."""
import json
import pickle
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config
from PIL import Image

from focal_mm.synthetic_data import make_ade20k, make_coco, make_imagenet
from conftest import ARCHS, ARCHS_V2, REPO_ROOT, load_case
from toy_configs import official_case_classifier, toy_segmentation

pytestmark = pytest.mark.slow
TOOLS = REPO_ROOT / 'tools'
DEMO = REPO_ROOT / 'configs' / 'demo' / 'mask_rcnn_focal_tiny_shapes.py'


def run(tool, *args, cwd=None):
    result = subprocess.run(
        [sys.executable, str(TOOLS / tool), *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd)
    assert result.returncode == 0, (
        result.stdout[-3000:] + result.stderr[-3000:])
    return result.stdout + result.stderr


def last_checkpoint(work_dir):
    return (work_dir / 'last_checkpoint').read_text().strip()


def demo_options(root, epochs=1):
    ann = f'{root}/annotations/instances_val.json'
    return [
        '--cfg-options', f'train_dataloader.dataset.data_root={root}',
        f'val_dataloader.dataset.data_root={root}',
        f'test_dataloader.dataset.data_root={root}',
        f'val_evaluator.ann_file={ann}', f'test_evaluator.ann_file={ann}',
        f'train_cfg.max_epochs={epochs}', f'train_cfg.val_interval={epochs}',
        'default_hooks.checkpoint.interval=1',
        'train_dataloader.num_workers=0', 'val_dataloader.num_workers=0',
        'test_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False',
        'val_dataloader.persistent_workers=False',
        'test_dataloader.persistent_workers=False'
    ]


def test_detection_train_test_infer(tmp_path):
    root = make_coco(str(tmp_path / 'coco'), num_train=4, num_val=2)
    work = tmp_path / 'work'
    run('train.py', DEMO, '--work-dir', work, *demo_options(root))
    assert last_checkpoint(work).endswith('epoch_1.pth')

    out = run('test.py', DEMO, last_checkpoint(work), '--work-dir', work,
              '--out', tmp_path / 'preds.pkl', '--show-dir', 'vis',
              *demo_options(root)[:6])
    assert 'coco/bbox_mAP' in out
    with open(tmp_path / 'preds.pkl', 'rb') as f:
        assert len(pickle.load(f)) == 2
    assert list(work.glob('*/vis/*.jpg'))

    picture = tmp_path / 'pred.png'
    run('infer.py', DEMO, last_checkpoint(work), f'{root}/val/val_0000.jpg',
        '--out', picture, '--score-thr', '0')
    assert Image.open(picture).size == (224, 160)


def test_segmentation_train_test_infer(tmp_path):
    root = make_ade20k(str(tmp_path / 'ade'), num_train=2, num_val=1)
    cfg = toy_segmentation(
        Config.fromfile(
            str(REPO_ROOT / 'configs' /
                'upernet_focal_tiny_512x512_160k_ade20k.py')), root,
        str(tmp_path / 'work'))
    cfg.default_hooks.checkpoint = dict(
        type='CheckpointHook', interval=cfg.train_cfg.max_iters)
    config = tmp_path / 'seg.py'
    cfg.dump(str(config))
    run('train.py', config)
    checkpoint = last_checkpoint(tmp_path / 'work')
    # Multi-scale + flip test-time augmentation, as the paper's MS numbers
    # (tools/test.py without --tta: the detection and classifier tests).
    assert 'mIoU' in run('test.py', config, checkpoint, '--tta')
    picture = tmp_path / 'seg.png'
    run('infer.py', config, checkpoint,
        f'{root}/images/validation/validation_0000.jpg', '--out', picture)
    assert Image.open(picture).size == (160, 128)


def test_converted_official_classifier_through_tools(tmp_path):
    """focal2mm -> tools/test.py on an ImageNet config, end to end."""
    case = load_case('conv_embed_prenorm_layerscale_224')
    official = tmp_path / 'official.pth'
    torch.save({'model': case['state_dict']}, official)
    converted = tmp_path / 'converted.pth'
    run('model_converters/focal2mm.py', official, converted)

    root = make_imagenet(
        str(tmp_path / 'imagenet'), per_class_train=1, per_class_val=2)
    cfg = official_case_classifier(case, root, str(tmp_path / 'work'))
    config = tmp_path / 'cls.py'
    cfg.dump(str(config))
    out = run('test.py', config, converted, '--out', tmp_path / 'preds.pkl')
    assert 'accuracy/top1' in out
    with open(tmp_path / 'preds.pkl', 'rb') as f:
        preds = pickle.load(f)
    assert len(preds) == 6 and preds[0]['pred_score'].shape == (10, )

    picture = tmp_path / 'cls.png'
    run('infer.py', config, converted, f'{root}/val/circle/circle_0000.jpg',
        '--out', picture)
    assert Image.open(picture).size[0] > 96


def test_make_synthetic(tmp_path):
    for layout in ('coco', 'ade20k', 'imagenet'):
        out = run('data/make_synthetic.py', layout, tmp_path / layout)
        assert 'Wrote' in out
    with open(tmp_path / 'coco' / 'annotations' / 'instances_val.json') as f:
        coco = json.load(f)
    assert coco['annotations'] and all(
        len(a['segmentation'][0]) >= 6 for a in coco['annotations'])


@pytest.mark.parametrize('config, official', [
    ('focal_tiny_in1k.py', ARCHS['tiny']),
    ('focal_fast_tiny_in1k.py', ARCHS_V2['tiny_useconv']),
])
def test_get_flops_counts_focal_attention(config, official):
    """Focal-T and Focal-fast-T at 224 against the official counter (4.92 G,
    5.32 G), within 3%."""
    out = run('analysis/get_flops.py', REPO_ROOT / 'configs' / config,
              '--shape', 224, 224)
    flops = float(out.split('FLOPs: ')[-1].split(' G')[0]) * 1e9
    params = float(out.split('Params: ')[-1].split(' M')[0]) * 1e6
    assert abs(flops - official['official_flops']) / \
        official['official_flops'] < 0.03, flops
    assert abs(params - official['params']) < 1e3


def test_visualize_focal_attention(tmp_path):
    image = tmp_path / 'image.jpg'
    Image.new('RGB', (160, 120), (90, 120, 200)).save(image)
    picture = tmp_path / 'attention.png'
    out = run('analysis/visualize_focal_attention.py', DEMO, image, '--stage',
              1, '--block', 1, '--query', 7, 9, '--size', 120, 160, '--out',
              picture)
    assert 'Query (7, 9) of stage 1 block 1' in out
    assert Image.open(picture).width == 320  # drawn at 2x


def test_benchmark_times_both_families_against_swin():
    """Wiring (one step, no speed asserted): a row per family, with the
    spread of the paired ratios and the FLOPs ratio."""
    out = run('analysis/benchmark.py', '--cases', 'infer_224', '--repeats', 1,
              '--warmup', 0, '--no-memory')
    rows = [line for line in out.splitlines() if line.startswith('| infer')]
    assert [r.split(' | ')[1] for r in rows] == ['Focal-T', 'Focal-fast-T']
    assert all(len(r.split(' | ')[5].split(' / ')) == 3 for r in rows)
    # Forward GMACs at 224: Swin-T 4.51, Focal-T 4.93, Focal-fast-T 5.13
    # (its bias MLPs as they run).
    assert [r.split(' | ')[6] for r in rows] == ['0.91', '0.88']


def test_benchmark_batch_and_no_flops(tmp_path):
    """--batch replaces the backbone cases' batch and --no-flops leaves the
    FLOPs ratio out: '-' in the table, null in the JSON (one step)."""
    out = run('analysis/benchmark.py', '--cases', 'infer_224', '--models',
              'focal', '--batch', 2, '--repeats', 1, '--warmup', 0,
              '--no-memory', '--no-flops', '--json', tmp_path / 'o.json')
    row = next(line for line in out.splitlines()
               if line.startswith('| infer_224'))
    cells = row.split(' | ')
    assert cells[1:3] == ['Focal-T', '2'] and cells[6] == '-'
    [result] = json.loads((tmp_path / 'o.json').read_text())['results']
    assert result['batch'] == 2 and result['flops_ratio'] is None


def test_benchmark_multiscale_training_case():
    """ms_train on one batch of one image of the 3x recipe's sizes: a row
    per family, and a new size's geometry at most 5% of its training step
    (the budget of issue 22; under 1% at batch 2, docs/benchmark.md)."""
    out = run('analysis/benchmark.py', '--cases', 'ms_train', '--ms-batches',
              1, '--batch', 1)
    rows = [line.split(' | ') for line in out.splitlines()
            if line.startswith('| Focal')]
    assert [r[0] for r in rows] == ['| Focal-T', '| Focal-fast-T']
    for r in rows:
        share = r[5].rstrip(' |').split(' / ')
        median, worst = (float(v.rstrip('%')) for v in share)
        assert 0 <= median <= worst <= 5


def test_benchmark_onnx_row():
    """Wiring of the ONNX Runtime row: the backbone is exported and both
    runtimes are timed on the same input (one repeat)."""
    out = run('analysis/benchmark.py', '--cases', 'onnx_infer_224',
              '--models', 'focal', '--repeats', 1, '--warmup', 0)
    row = next(line for line in out.splitlines()
               if line.startswith('| onnx_infer_224'))
    cells = row.split(' | ')
    assert cells[1:3] == ['Focal-T', '1']
    assert len(cells[5].split(' / ')) == 3


def test_benchmark_detector_case_and_memory():
    """Wiring of a whole-detector case (small images, one step) with the
    peak memory of its child processes."""
    out = run('analysis/benchmark.py', '--cases', 'det_retinanet_infer',
              '--models', 'focal', '--det-size', 128, 160, '--repeats', 1,
              '--warmup', 0)
    row = next(line for line in out.splitlines()
               if line.startswith('| det_retinanet_infer'))
    cells = row.split(' | ')
    assert cells[1:3] == ['Focal-T', '2']
    assert float(cells[7]) > 0 and float(cells[8]) > 0  # peak MB of both
    assert 'Initialized by' not in out  # mmengine's per-parameter log
