# Copyright (c) focal_mm contributors. All rights reserved.
"""Config preparation shared by tools/train.py and tools/test.py."""
import os
import os.path as osp

import torch
from mmengine.config import Config


def load_config(path: str,
                cfg_options=None,
                work_dir=None,
                launcher: str = 'none') -> Config:
    """Reads ``path`` and applies the command-line options every tool takes:
    ``--cfg-options``, ``--work-dir`` (default ``work_dirs/<config name>``)
    and ``--launcher``."""
    cfg = Config.fromfile(path)
    cfg.launcher = launcher
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(path))[0])
    if launcher != 'none' and not torch.cuda.is_available():
        distributed_on_cpu(cfg)
    return cfg


def distributed_on_cpu(cfg: Config) -> None:
    """mmengine 0.10.7's pytorch launcher selects a CUDA device, defaults to
    NCCL and hands DDP the local rank as device id, all of which fail on a
    CPU-only machine. Start the gloo process group here (mmengine then keeps
    it) and give DDP ``device_ids=None``."""
    cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})
    cfg.env_cfg.dist_cfg.backend = 'gloo'
    if cfg.launcher == 'pytorch' and not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend='gloo')
    if cfg.get('model_wrapper_cfg') is None:
        cfg.model_wrapper_cfg = dict(
            type='MMDistributedDataParallel',
            device_ids=None,
            broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False))


def add_launcher_args(parser) -> None:
    """``--cfg-options``, ``--launcher`` and ``--local-rank``."""
    from mmengine.config import DictAction
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, key=value')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def export_local_rank(args) -> None:
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
