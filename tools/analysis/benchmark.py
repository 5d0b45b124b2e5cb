#!/usr/bin/env python
"""Speed and memory of the Focal models of both families
(FocalTransformer, FocalFastTransformer) against mmdet's SwinTransformer of
the same size, measured side by side in one process: the backbones alone,
and whole Mask R-CNN and RetinaNet detectors.

    python tools/analysis/benchmark.py --arch tiny --device cpu
    python tools/analysis/benchmark.py --models focal \
        --cases det_mask_rcnn_infer
    python tools/analysis/benchmark.py --device cuda --dtype bf16 --json o.json

Backbone cases: inference at 224x224 (batch 8 on CPU, 64 on GPU), inference
at 800x1216 (batch 1 on CPU, 2 on GPU) and a training step (forward +
backward) at 224, each model with its classification geometry. Detector
cases (tiny only, see detector_cases.py): a training step and an inference
of two 640x800 images (CPU and GPU), built from the detection configs as
users run them (Focal windows enlarged to (15, 13, 9, 7)). Every repeat
runs every model, in an order that rotates from repeat to repeat, after
warm-up; images/s come from the median step, the ratio is the median of the
per-repeat ratios (each Focal step against the Swin step of the same
repeat), so machine noise hits both alike: read the ratio, not the absolute
numbers; the spread (min / max of the per-repeat ratios) shows a noisy run as
one. The FLOPs ratio is Swin's multiply-accumulates over the Focal model's
in one forward of one image (counted as get_flops.py counts what runs; a
detector in mmdet's tensor mode: backbone, neck and heads on the RPN's
proposals): the speed ratio a Focal model would have if it ran its
operations at Swin's pace; ``--no-flops`` leaves it out (its count traces
every model on the CPU, which a GPU run need not wait for). ``--dtype bf16``
runs everything under autocast, ``--compile`` compiles every backbone
(Swin's too) with torch.compile; their rows are labelled.
Peak memory is CUDA's allocator peak on GPU; on CPU it is the rise of the
resident memory's high-water mark (reset before the step) over the resident
memory before the step, in a fresh child process per model and case.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from contextlib import nullcontext
from functools import lru_cache, partial

import torch
from detector_cases import (DETECTOR_CONFIGS, build_detector, detector_batch,
                            detector_step)
from get_flops import TensorForward, data_samples, flop_analyzer
from multiscale_training import multiscale_rows
from operation_counts import count_rows

from focal_mm.timing import paired_seconds, ratio_spread

ARCHS = {
    'tiny': dict(embed_dims=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24)),
    'small':
    dict(embed_dims=96, depths=(2, 2, 18, 2), num_heads=(3, 6, 12, 24)),
    'base':
    dict(embed_dims=128, depths=(2, 2, 18, 2), num_heads=(4, 8, 16, 32)),
}
DTYPES = {'fp32': torch.float32, 'bf16': torch.bfloat16, 'fp16': torch.float16}
# Model name: (family, attention implementation, name in tables).
FOCAL_MODELS = {
    'focal': ('focal', 'auto', 'Focal'),
    'focal_fast': ('focal_fast', 'auto', 'Focal-fast'),
    'focal_triton': ('focal', 'triton', 'Focal'),
    'focal_fast_triton': ('focal_fast', 'triton', 'Focal-fast'),
}
# The CUDA plan that --count-ops --plan cuda forces: an 80 GB device.
COUNT_DEVICE_MEMORY = 80 * 2**30


def label(model: str, arch: str) -> str:
    """``Focal-T``, ``Focal-fast-T (Triton)``, ``Swin-T``..."""
    if model == 'swin':
        return f'Swin-{arch[0].upper()}'
    _, attn_impl, name = FOCAL_MODELS[model]
    suffix = ' (Triton)' if attn_impl == 'triton' else ''
    return f'{name}-{arch[0].upper()}{suffix}'


def build(model: str, arch: str, size: tuple):
    """Focal-{arch} or Focal-fast-{arch} (as released: conv embeddings) with
    the official geometry for ``size``, or Swin-{arch}."""
    if model in FOCAL_MODELS:
        from focal_mm import FocalFastTransformer, FocalTransformer
        family, attn_impl, _ = FOCAL_MODELS[model]
        if family == 'focal':
            return FocalTransformer(
                arch=arch,
                img_size=size,
                drop_path_rate=0.,
                attn_impl=attn_impl)
        return FocalFastTransformer(
            arch=arch,
            img_size=size,
            use_conv_embed=True,
            drop_path_rate=0.,
            attn_impl=attn_impl)
    from mmdet.models.backbones import SwinTransformer
    return SwinTransformer(drop_path_rate=0., **ARCHS[arch])


def family_and_impl(model: str):
    """``(config model name, attn_impl)`` of a model name."""
    if model == 'swin':
        return 'swin', 'auto'
    family, attn_impl, _ = FOCAL_MODELS[model]
    return family, attn_impl


def cases(device: str, detector_size=(640, 800), backbone_batch=None):
    """Every case by name; ``backbone_batch`` replaces the device's batch
    of the backbone cases."""
    gpu = device.startswith('cuda')
    backbone = {
        'infer_224':
        dict(size=(224, 224), batch=64 if gpu else 8, train=False),
        'infer_800x1216':
        dict(size=(800, 1216), batch=2 if gpu else 1, train=False),
        'train_224':
        dict(size=(224, 224), batch=64 if gpu else 8, train=True),
    }
    for case in backbone.values():
        case['batch'] = backbone_batch or case['batch']
    detector = {
        f'det_{name}_{mode}':
        dict(
            size=tuple(detector_size),
            batch=2,
            train=mode == 'train',
            detector=name)
        for name in DETECTOR_CONFIGS
        for mode in ('train', 'infer')
    }
    # Focal backbones exported to ONNX, in ONNX Runtime against PyTorch
    # eager (no Swin): see onnx_rows.
    onnx = {'onnx_infer_224': dict(size=(224, 224), batch=1, onnx=True)}
    # Training steps on the sizes of the 3x recipe: multiscale_training.py.
    multiscale = {'ms_train': dict(multiscale=True)}
    return {**backbone, **detector, **onnx, **multiscale}


def autocast_for(dtype, device):
    """Autocast to ``dtype`` (None for fp32)."""
    if dtype == torch.float32:
        return None
    return torch.autocast(device_type=device.split(':')[0], dtype=dtype)


def backbone_step(model, images, train: bool, autocast):
    autocast = autocast or nullcontext()

    def step():
        if train:
            with autocast:
                loss = sum(o.float().mean() for o in model(images))
            loss.backward()
        else:
            with torch.inference_mode(), autocast:
                model(images)

    return step


def make_step(name, arch, case, dtype, device, compile_backbone=False):
    """Model ``name`` (a Focal family or ``'swin'``) of ``case`` and its
    step, a callable that runs it once."""
    autocast = autocast_for(dtype, device)
    if 'detector' in case:
        net = build_detector(case['detector'],
                             *family_and_impl(name)).to(device)
        if compile_backbone:
            net.backbone = torch.compile(net.backbone)
        batch = detector_batch(case['batch'], case['size'], device)
        return net, detector_step(net, batch, case['train'], autocast)
    model = build(name, arch, case['size']).to(device)
    if compile_backbone:
        model = torch.compile(model)
    model.train(case['train'])
    images = torch.randn(case['batch'], 3, *case['size'], device=device)
    return model, backbone_step(model, images, case['train'], autocast)


@lru_cache(maxsize=None)
def forward_flops(name: str, arch: str, size: tuple, detector=None) -> int:
    """Multiply-accumulates of one forward of model ``name`` (or of the
    ``detector`` with that backbone, in tensor mode) on one ``size`` image,
    on the CPU."""
    if detector:
        model = build_detector(detector, family_and_impl(name)[0])
        model.eval()
        model = TensorForward(model, data_samples('mmdet', size))
    else:
        model = build(name, arch, size)
        model.eval()  # (mmdet's Swin returns None from eval)
    return flop_analyzer(model, torch.randn(1, 3, *size)).total()


def flops_ratio(name: str, arch: str, case: dict, count: bool = True):
    """Swin's FLOPs over those of model ``name`` in ``case`` (counted on the
    default attention of its family: the kernels do the same arithmetic),
    or None without ``count``."""
    if not count:
        return None
    key = (arch, case['size'], case.get('detector'))
    return forward_flops('swin', *key) / forward_flops(
        family_and_impl(name)[0], *key)


def sync(device):
    if device.startswith('cuda'):
        torch.cuda.synchronize()


def time_models(models,
                arch,
                case,
                dtype,
                device,
                warmup,
                repeats,
                compile_backbone,
                profile_to=None):
    """Seconds of every timed step of each model, in paired repeats
    (:func:`~focal_mm.timing.paired_seconds`); with ``profile_to`` (a path
    prefix), then one profiled step of each."""
    built = {
        name: make_step(name, arch, case, dtype, device, compile_backbone)
        for name in models
    }
    steps = {name: step for name, (_, step) in built.items()}
    times = paired_seconds(steps, repeats, warmup, partial(sync, device))
    if profile_to:
        for name, (model, step) in built.items():
            write_profile(model, step, device, f'{profile_to}_{name}.txt')
    return times


def write_profile(model, step, device, path):
    """Profiles one step: the operators by self time, and for a detector the
    forward time of its parts that run through ``forward`` (backbone, neck;
    mmdet calls the heads through ``loss``/``predict``) as labelled rows,
    against the whole step."""
    from torch.profiler import ProfilerActivity, profile, record_function
    handles, open_labels = [], {}
    for part in ('backbone', 'neck'):
        module = getattr(model, part, None)
        if module is None:
            continue

        def enter(mod, args, part=part):
            open_labels[part] = record_function(f'## {part} forward')
            open_labels[part].__enter__()

        def leave(mod, args, out, part=part):
            open_labels.pop(part).__exit__(None, None, None)

        handles += [
            module.register_forward_pre_hook(enter),
            module.register_forward_hook(leave)
        ]
    activities = [ProfilerActivity.CPU]
    if device.startswith('cuda'):
        activities.append(ProfilerActivity.CUDA)
    with profile(activities=activities) as prof:
        start = time.perf_counter()
        step()
        sync(device)
        seconds = time.perf_counter() - start
    for handle in handles:
        handle.remove()
    sort = 'self_cuda_time_total' if device.startswith('cuda') \
        else 'self_cpu_time_total'
    events = prof.key_averages()
    with open(path, 'w') as f:
        f.write(events.table(sort_by=sort, row_limit=30) + '\n')
        f.write(f'whole step: {seconds:.3f} s (profiled)\n')
        for e in sorted(events, key=lambda e: e.key):
            if e.key.startswith('## '):
                f.write(f'{e.key}: {e.cpu_time_total / 1e6:.3f} s\n')
    print(f'profile written to {path}', file=sys.stderr)


def peak_memory_mb(name, args, case_name):
    """Peak memory of one model's step (in a fresh process on CPU)."""
    device = args.device
    if device.startswith('cuda'):
        _, step = make_step(name, args.arch,
                            cases(device, args.det_size,
                                  args.batch)[case_name],
                            DTYPES[args.dtype], device, args.compile)
        step()
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        step()
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - base
        del step
        torch.cuda.empty_cache()
        return peak / 2**20
    out = subprocess.run(
        [
            sys.executable, __file__, '--child', name, '--arch', args.arch,
            '--case', case_name, '--dtype', args.dtype, '--det-size',
            *map(str, args.det_size)
        ] + ['--compile'] * args.compile +
        ['--batch', str(args.batch)] * bool(args.batch),
        capture_output=True,
        text=True,
        check=True)
    return float(out.stdout.strip().splitlines()[-1])


def status_mb(field: str) -> float:
    """A memory figure of this process from /proc/self/status, in MB."""
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f'no {field} in /proc/self/status')


def child(args):
    """Runs one step and prints the rise of the resident memory's high-water
    mark over the resident memory before the step (of the second step where
    the first one compiles). The mark is reset before the step, so that
    what building the model took and gave back does not count."""
    _, step = make_step(args.child, args.arch,
                        cases('cpu', args.det_size, args.batch)[args.case],
                        DTYPES[args.dtype], 'cpu', args.compile)
    if args.compile:
        step()
    with open('/proc/self/clear_refs', 'w') as f:
        f.write('5')  # resets VmHWM to the current resident size
    before = status_mb('VmRSS')
    step()
    print(status_mb('VmHWM') - before)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--arch', default='tiny', choices=sorted(ARCHS))
    parser.add_argument(
        '--models',
        nargs='+',
        default=None,
        choices=list(FOCAL_MODELS),
        help='the Focal models to time against Swin (default: both '
        'families; on CUDA also with attn_impl="triton")')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--dtype', default='fp32', choices=sorted(DTYPES))
    parser.add_argument(
        '--cases',
        nargs='+',
        default=None,
        help='subset of the cases (default: all but ms_train)')
    parser.add_argument(
        '--det-size',
        type=int,
        nargs=2,
        default=(640, 800),
        metavar=('H', 'W'),
        help='image size of the detector cases (default: 640 800)')
    parser.add_argument(
        '--batch',
        type=int,
        help='batch of the backbone cases (default: 8, 1, 8 on CPU; 64, '
        '2, 64 on CUDA) and of ms_train (default: 2)')
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--repeats', type=int, default=7)
    parser.add_argument('--no-memory', action='store_true')
    parser.add_argument(
        '--no-flops',
        action='store_true',
        help='leave out the FLOPs ratio (counted on the CPU)')
    parser.add_argument(
        '--compile',
        action='store_true',
        help='torch.compile every backbone (Swin included)')
    parser.add_argument(
        '--ms-batches',
        type=int,
        default=12,
        help='batches of the ms_train case (default: 12)')
    parser.add_argument(
        '--count-ops',
        action='store_true',
        help='instead of timing, count the operations of the detection '
        'backbones per inference forward and training step')
    parser.add_argument(
        '--plan',
        default='device',
        choices=('device', 'cpu', 'cuda'),
        help="the execution plan of --count-ops: the device's own, or "
        'another forced (cuda: that of an 80 GB GPU)')
    parser.add_argument(
        '--count-size',
        type=int,
        nargs=2,
        default=(800, 1344),
        metavar=('H', 'W'),
        help='image size of --count-ops, batch 2 (default: 800 1344)')
    parser.add_argument('--json', help='also write the results here')
    parser.add_argument(
        '--profile',
        metavar='DIR',
        help='after timing, profile one step of every model and case and '
        'write the tables to DIR/<case>_<model>.txt')
    parser.add_argument(
        '--child',
        choices=list(FOCAL_MODELS) + ['swin'],
        help=argparse.SUPPRESS)
    parser.add_argument('--case', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.models is None:
        args.models = list(FOCAL_MODELS) if args.device.startswith('cuda') \
            else ['focal', 'focal_fast']
    return args


def cannot_run(case, args):
    """Why ``case`` cannot run with these arguments (None if it can)."""
    if case.get('onnx') and args.device != 'cpu':
        return 'ONNX Runtime runs on the CPU here'
    if case.get('onnx') and any(
            family_and_impl(m)[1] == 'triton' for m in args.models):
        return 'the Triton kernels have no ONNX Runtime translation here'
    if 'detector' in case and args.arch != 'tiny':
        return 'detector cases exist for --arch tiny only (the configs)'
    if 'detector' in case and args.dtype != 'fp32' \
            and not args.device.startswith('cuda'):
        return ("detectors run in fp32 on the CPU: mmcv's CPU NMS takes "
                'float32 boxes only and fails under autocast')
    return None


def onnx_rows(args, case_name, case):
    """ONNX Runtime (CPU) against PyTorch eager for each Focal backbone of
    ``args.models`` (exported to a temporary file), paired repeats."""
    import tempfile

    from focal_mm.deployment import benchmark_onnx, export_onnx
    rows = []
    for name in args.models:
        model = build(name, args.arch, case['size']).eval()
        image = torch.randn(case['batch'], 3, *case['size'])
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, 'backbone.onnx')
            export_onnx(model, image, path,
                        [f'stage{i}' for i in model.out_indices])
            speed = benchmark_onnx(model, path, image, args.repeats,
                                   args.warmup)
        low, mid, high = speed.ratios
        rows.append(
            dict(
                case=case_name,
                model=label(name, args.arch),
                batch=case['batch'],
                torch_img_s=case['batch'] / speed.torch_s,
                onnx_img_s=case['batch'] / speed.onnx_s,
                ratio=mid,
                ratio_min=low,
                ratio_max=high))
        print(json.dumps(rows[-1]), file=sys.stderr)
    return rows


def timed_rows(args, name, case):
    """The rows of one timed case: each Focal model against Swin."""
    times = time_models(args.models + ['swin'], args.arch, case,
                        DTYPES[args.dtype], args.device, args.warmup,
                        args.repeats, args.compile, args.profile
                        and os.path.join(args.profile, name))
    swin_median = statistics.median(times['swin'])
    swin_peak = None if args.no_memory else peak_memory_mb('swin', args, name)
    rows = []
    for model in args.models:
        # Each Focal step against the Swin step of the same repeat, so
        # that a slow spell of the machine hits both sides of a ratio.
        low, mid, high = ratio_spread(times['swin'], times[model])
        row = dict(
            case=name,
            model=label(model, args.arch),
            batch=case['batch'],
            focal_img_s=case['batch'] / statistics.median(times[model]),
            swin_img_s=case['batch'] / swin_median,
            ratio=mid,
            ratio_min=low,
            ratio_max=high,
            flops_ratio=flops_ratio(model, args.arch, case,
                                    not args.no_flops))
        if swin_peak is not None:
            row['focal_peak_mb'] = peak_memory_mb(model, args, name)
            row['swin_peak_mb'] = swin_peak
            row['memory_ratio'] = row['focal_peak_mb'] / swin_peak
        rows.append(row)
        print(json.dumps(row), file=sys.stderr)
    return rows


def print_timed(header, results):
    print(header)
    print('| case | model | batch | img/s | Swin img/s | ratio (min / median'
          ' / max) | FLOPs ratio | peak MB | Swin peak MB | memory ratio |')
    print('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |')
    for r in results:
        mem = (f"{r['focal_peak_mb']:.0f} | {r['swin_peak_mb']:.0f} | "
               f"{r['memory_ratio']:.2f}") if 'memory_ratio' in r else \
            '- | - | -'
        flops = '-' if r['flops_ratio'] is None else f"{r['flops_ratio']:.2f}"
        print(f"| {r['case']} | {r['model']} | {r['batch']} | "
              f"{r['focal_img_s']:.2f} | {r['swin_img_s']:.2f} | "
              f"{r['ratio_min']:.2f} / {r['ratio']:.2f} / "
              f"{r['ratio_max']:.2f} | {flops} | {mem} |")


def print_onnx(args, results):
    print(f'\nFocal backbones in ONNX Runtime (CPU) vs PyTorch eager, '
          f'{torch.get_num_threads()} threads, median of {args.repeats} '
          'paired repeats')
    print('| case | model | batch | PyTorch img/s | ONNX Runtime img/s | '
          'ratio ORT vs eager (min / median / max) |')
    print('| --- | --- | --- | --- | --- | --- |')
    for r in results:
        print(f"| {r['case']} | {r['model']} | {r['batch']} | "
              f"{r['torch_img_s']:.2f} | {r['onnx_img_s']:.2f} | "
              f"{r['ratio_min']:.2f} / {r['ratio']:.2f} / "
              f"{r['ratio_max']:.2f} |")


def multiscale_case(args):
    """The ms_train rows (see multiscale_training.py), printed."""
    autocast = autocast_for(DTYPES[args.dtype], args.device) or nullcontext()
    batch = args.batch or 2
    rows = multiscale_rows(args.models, family_and_impl, args.ms_batches,
                           batch, args.device, autocast,
                           partial(sync, args.device))
    print(f'\nMulti-scale training (ms_train): backbone training steps on '
          f'{args.ms_batches} batches of {batch} drawn from the 3x pipeline, '
          f'{args.device}, {args.dtype}, {torch.get_num_threads()} threads')
    print('| model | ratio, new sizes | ratio, cached sizes | difference | '
          'geometry per new size (median / max) | share of the step '
          '(median / max) |')
    print('| --- | --- | --- | --- | --- | --- |')
    for r in rows:
        r['model'] = label(r['model'], args.arch)
        print(f"| {r['model']} | {r['cold_ratio']:.3f} | "
              f"{r['warm_ratio']:.3f} | "
              f"{r['warm_ratio'] - r['cold_ratio']:+.3f} | "
              f"{r['geometry_s'] * 1e3:.0f} / {r['geometry_max_s'] * 1e3:.0f}"
              f" ms | {r['geometry_share']:.1%} / "
              f"{r['geometry_share_max']:.1%} |")
    return rows


def count_case(args):
    """The --count-ops table."""
    rows = count_rows(args.models, family_and_impl, tuple(args.count_size), 2,
                      args.plan, args.device, COUNT_DEVICE_MEMORY)
    print(f'Operations (ATen calls reaching the backend, views and '
          f'allocations left out) of the Mask R-CNN detection backbones, '
          f'batch 2 of {args.count_size[0]}x{args.count_size[1]}, '
          f'{args.plan} plan, {args.device}')
    print('| model | plan | inference forward | vs Swin | training step | '
          'vs Swin |')
    print('| --- | --- | --- | --- | --- | --- |')
    for r in rows:
        r['model'] = label(r['model'], args.arch)
        print(f"| {r['model']} | {r['plan']} | {r['infer']} | "
              f"{r['infer_ratio']:.2f} | {r['train']} | "
              f"{r['train_ratio']:.2f} |")
    return rows


def selected_cases(args, all_cases):
    """The names of the cases to run: those asked for (an error for one
    that is unknown or cannot run), else every one that can run but
    ms_train."""
    unknown = sorted(set(args.cases or ()) - set(all_cases))
    if unknown:
        raise SystemExit(f'unknown cases {unknown}; the cases are '
                         f'{list(all_cases)}')
    if args.cases:
        for name in args.cases:
            reason = cannot_run(all_cases[name], args)
            if reason:
                raise SystemExit(f'{name}: {reason}')
        return args.cases
    return [
        name for name, case in all_cases.items()
        if not cannot_run(case, args) and not case.get('multiscale')
    ]


def main(argv=None):
    args = parse_args(argv)
    if args.child:
        return child(args)
    if args.count_ops:
        rows = count_case(args)
        setting = f'operation counts, {args.plan} plan'
    else:
        rows, setting = run_cases(args)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(setting=setting, results=rows), f, indent=1)


def run_cases(args):
    """Runs and prints the selected cases; their rows and the setting."""
    all_cases = cases(args.device, args.det_size, args.batch)
    names = selected_cases(args, all_cases)
    if args.profile:
        os.makedirs(args.profile, exist_ok=True)
    timed, onnx, multiscale = [], [], []
    for name in names:
        case = all_cases[name]
        if case.get('onnx'):
            onnx += onnx_rows(args, name, case)
        elif case.get('multiscale'):
            multiscale += multiscale_case(args)
        else:
            timed += timed_rows(args, name, case)
    header = (f'Focal models vs Swin-{args.arch[0].upper()}, '
              f'{args.device}, {args.dtype}'
              f'{", compiled backbones" if args.compile else ""}, '
              f'{torch.get_num_threads()} threads, median of {args.repeats} '
              'paired repeats')
    if timed:
        print_timed(header, timed)
    if onnx:
        print_onnx(args, onnx)
    return timed + onnx + multiscale, header


if __name__ == '__main__':
    main()
