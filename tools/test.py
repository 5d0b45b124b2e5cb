#!/usr/bin/env python
"""Evaluates a checkpoint, for mmdet, mmseg or mmpretrain alike (the config's
``default_scope`` picks the library).

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out FILE.pkl]
        [--show-dir DIR] [--tta] [--cfg-options k=v] [--launcher pytorch]
"""
import argparse

from mmengine.config import Config
from mmengine.evaluator import DumpResults
from mmengine.runner import Runner

import focal_mm  # noqa: F401  (registers the modules; checkpoint loading fix)
from focal_mm.checkpoints.pretrained import checkpoint_to_test
from focal_mm.runner_config import (add_launcher_args, export_local_rank,
                                    load_config)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test (and eval) a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument(
        'checkpoint',
        help='checkpoint file or URL: a trained or converted model, or for '
        'an ImageNet config the official release file itself or its '
        'PaddleViT port (.pdparams)')
    parser.add_argument('--work-dir', help='where to save the metrics')
    parser.add_argument('--out', help='dump the raw predictions to a .pkl')
    parser.add_argument(
        '--show-dir',
        help='draw the predictions into this folder (inside '
        'the work dir)')
    parser.add_argument(
        '--tta',
        action='store_true',
        help='test-time augmentation, from the config\'s tta_model and '
        'tta_pipeline')
    add_launcher_args(parser)
    args = parser.parse_args(argv)
    export_local_rank(args)
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
    cfg = load_config(args.config, args.cfg_options, args.work_dir,
                      args.launcher)
    # Official release files are converted; URLs downloaded once, safely.
    cfg.load_from = checkpoint_to_test(args.checkpoint, cfg.work_dir,
                                       cfg.model.type)
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
