#!/usr/bin/env python
"""Evaluates a checkpoint, for mmdet, mmseg or mmpretrain alike (the config's
``default_scope`` picks the library).

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out FILE.pkl]
        [--show-dir DIR] [--tta] [--cfg-options k=v] [--launcher pytorch]
"""
import argparse
import os
import os.path as osp

from mmengine.config import Config, DictAction
from mmengine.evaluator import DumpResults
from mmengine.runner import Runner

import focal_mm  # noqa: F401  (registers the modules; checkpoint loading fix)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test (and eval) a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='where to save the metrics')
    parser.add_argument('--out', help='dump the raw predictions to a .pkl')
    parser.add_argument(
        '--show-dir', help='draw the predictions into this folder (inside '
        'the work dir)')
    parser.add_argument(
        '--tta', action='store_true',
        help='test-time augmentation, from the config\'s tta_model and '
        'tta_pipeline')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config settings, key=value')
    parser.add_argument(
        '--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def _enable_visualization(cfg: Config, show_dir: str) -> None:
    hooks = cfg.default_hooks
    name = next((k for k, v in hooks.items()
                 if v and 'Visualization' in v.get('type', '')), None)
    if name is None:
        raise ValueError('--show-dir needs a visualization hook in '
                         'default_hooks')
    hooks[name].draw = True
    hooks[name].test_out_dir = show_dir
    if 'interval' in hooks[name]:
        hooks[name].interval = 1


def _enable_tta(cfg: Config) -> None:
    if 'tta_model' not in cfg or 'tta_pipeline' not in cfg:
        raise ValueError('--tta needs tta_model and tta_pipeline in the '
                         'config')
    cfg.tta_model.module = cfg.model
    cfg.model = cfg.tta_model
    cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline


def build_config(args) -> Config:
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    cfg.load_from = args.checkpoint
    if args.show_dir:
        _enable_visualization(cfg, args.show_dir)
    if args.tta:
        _enable_tta(cfg)
    return cfg


def main(argv=None):
    args = parse_args(argv)
    runner = Runner.from_cfg(build_config(args))
    if args.out is not None:
        if not args.out.endswith(('.pkl', '.pickle')):
            raise ValueError('--out must be a .pkl file')
        runner.test_evaluator.metrics.append(
            DumpResults(out_file_path=args.out))
    runner.test()


if __name__ == '__main__':
    main()
