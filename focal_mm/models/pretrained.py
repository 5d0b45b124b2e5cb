# Copyright (c) focal_mm contributors. All rights reserved.
"""Loading official or converted checkpoints, local or by URL (downloaded
once into the torch hub cache), into a FocalTransformer, and preparing the
checkpoint that tools/test.py evaluates."""
import logging
import math
import os
import os.path as osp
import pickle
import re
import sys
from collections import OrderedDict
from http.client import HTTPException
from typing import Dict, List
from urllib.parse import urlparse

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.dist import get_dist_info
from mmengine.logging import print_log
from mmengine.runner.checkpoint import CheckpointLoader

# Where the official release keeps its ImageNet-1K checkpoints, RELEASE_URL +
# RELEASE_FILES (the configs name the same prefix as ``focal_in1k_url`` in
# configs/_base_/focal_in1k_checkpoints.py). Focal-fast's are
# focalv2-{tiny,small,base}-useconv-is224-ws7.pth.
RELEASE_URL = ('https://projects4jw.blob.core.windows.net/model/'
               'focal-transformer/imagenet1k/')
RELEASE_FILES = 'focal-{tiny,small,base}[-useconv]-is224-ws7.pth'


def extract_state_dict(checkpoint) -> Dict[str, torch.Tensor]:
    """The state dict of a checkpoint stored bare or under ``state_dict`` /
    ``model``, without DataParallel's ``module.`` prefixes."""
    if not isinstance(checkpoint, dict):
        raise TypeError(f'A checkpoint must be a dict, got {type(checkpoint)}')
    for key in ('state_dict', 'model'):
        if isinstance(checkpoint.get(key), dict):
            checkpoint = checkpoint[key]
            break
    return OrderedDict((k[7:] if k.startswith('module.') else k, v)
                       for k, v in checkpoint.items())


def to_backbone_keys(
        state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Official keys are converted; a whole detector or classifier is cut
    down to its ``backbone.`` entries."""
    from ..official import is_official_state_dict, official_to_backbone
    if is_official_state_dict(state_dict):
        return official_to_backbone(state_dict)
    if any(k.startswith('backbone.') for k in state_dict):
        return OrderedDict((k[9:], v) for k, v in state_dict.items()
                           if k.startswith('backbone.'))
    return state_dict


def _resize_square_table(table: torch.Tensor, side_dim: int,
                         new_side: int) -> torch.Tensor:
    """Bicubically resizes a table whose dim ``side_dim`` is a flattened
    ``side x side`` grid."""
    moved = table.movedim(side_dim, -1)
    lead = moved.shape[:-1]
    side = math.isqrt(moved.shape[-1])
    grid = moved.reshape(-1, 1, side, side).float()
    grid = F.interpolate(
        grid, size=(new_side, new_side), mode='bicubic', align_corners=False)
    return grid.reshape(*lead,
                        new_side * new_side).movedim(-1,
                                                     side_dim).to(table.dtype)


def adapt_shapes(model: nn.Module,
                 state_dict: Dict[str, torch.Tensor]) -> List[str]:
    """Resizes relative-position tables and the absolute position embedding
    of ``state_dict`` in place to the shapes of ``model``.

    Returns the keys that cannot be resized (dropped from ``state_dict``).
    """
    own = model.state_dict()
    dropped = []
    for key in list(state_dict):
        if key not in own or own[key].shape == state_dict[key].shape:
            continue
        old, new = state_dict[key], own[key]
        # Which dim is a flattened square grid; the others must agree.
        if re.search(r'relative_position_bias_table$', key):
            grid_dim = 0
        elif re.search(r'relative_position_bias_table_to_windows\.\d+$',
                       key) or key == 'absolute_pos_embed':
            grid_dim = 1
        else:
            grid_dim = None
        same_rest = grid_dim is not None and old.dim() == new.dim() and all(
            a == b for i, (a, b) in enumerate(zip(old.shape, new.shape))
            if i != grid_dim)
        if not same_rest:
            dropped.append(f'{key}: checkpoint {tuple(old.shape)}, model '
                           f'{tuple(new.shape)}')
            del state_dict[key]
            continue
        state_dict[key] = _resize_square_table(old, grid_dim,
                                               math.isqrt(new.shape[grid_dim]))
        print_log(
            f'Resized {key} from {tuple(old.shape)} to {tuple(new.shape)}',
            logger='current')
    return dropped


def missing_local_file(filename: str) -> bool:
    """True for a local path that does not exist (URLs and ``scheme://``
    locations are left to their loaders)."""
    return '://' not in filename and not osp.exists(filename)


def is_url(filename: str) -> bool:
    return filename.startswith(('http://', 'https://'))


def _missing_file_message(filename: str) -> str:
    name = osp.basename(filename)
    release = re.fullmatch(
        r'focal(v2)?-(tiny|small|base)(-useconv)?-is224-ws7\.pth', name)
    where = (f'{RELEASE_URL}{name}'
             if release else f'{RELEASE_URL}{RELEASE_FILES}')
    return (f'Checkpoint {filename} does not exist. The official ImageNet-1K '
            f'weights are at {where}: give the URL as the checkpoint (it is '
            'downloaded once and cached) or download it to this path; '
            'init_cfg=None trains from scratch (README, "Official '
            'checkpoints").')


def download_checkpoint(url: str) -> str:
    """The local copy of a checkpoint URL: downloaded once into
    ``torch.hub.get_dir()/checkpoints``, as mmengine does, then reused. In a
    distributed run rank 0 downloads first, the others after a barrier.

    Raises:
        OSError: naming the URL, when the download fails.
    """
    path = osp.join(torch.hub.get_dir(), 'checkpoints',
                    osp.basename(urlparse(url).path))
    rank, world_size = get_dist_info()
    if rank == 0:
        _download(url, path)
    if world_size > 1:
        torch.distributed.barrier()
        if rank > 0:
            _download(url, path)  # ranks on other machines
    return path


def _download(url: str, path: str) -> None:
    if osp.isfile(path):
        return
    os.makedirs(osp.dirname(path), exist_ok=True)
    print_log(f'Downloading {url} to {path}', logger='current')
    try:
        # Writes a temporary file and moves it into place when complete.
        torch.hub.download_url_to_file(url, path, progress=sys.stderr.isatty())
    except (OSError, HTTPException) as err:
        raise OSError(f'Could not download checkpoint {url}: {err}') from None


def read_checkpoint(filename: str, trust_pickle: bool = False) -> dict:
    """Loads a local file or an http(s) URL (downloaded once, see
    :func:`download_checkpoint`) with ``weights_only=True``; clear errors for
    missing files, files that carry pickled code and files that cannot be
    read. ``trust_pickle`` lets the file unpickle arbitrary objects (it runs
    code from the file)."""
    if '://' in filename and not is_url(filename):
        # Other storage (s3://, ...): mmengine's loaders, which call
        # torch.load with its default (weights_only=True since torch 2.6).
        return CheckpointLoader.load_checkpoint(filename, map_location='cpu')
    if missing_local_file(filename):
        raise FileNotFoundError(_missing_file_message(filename))
    local = download_checkpoint(filename) if is_url(filename) else filename
    source = filename if local == filename else f'{filename} ({local})'
    try:
        return torch.load(
            local, map_location='cpu', weights_only=not trust_pickle)
    except pickle.UnpicklingError as err:
        raise ValueError(
            f'{source} holds pickled Python objects besides tensors, and '
            'loading them could run code from the file, so it was refused. '
            'If you trust it, convert it once with '
            'tools/model_converters/focal2mm.py --trust-pickle.\n'
            f'(torch said: {str(err).splitlines()[0]})') from None
    except (RuntimeError, EOFError) as err:
        raise ValueError(f'Could not read checkpoint {source} (truncated '
                         f'or corrupt?): {err}') from None


# Keys a checkpoint may lack or carry without being of another architecture:
# the output norms of a dense-prediction backbone, and the neighbour tables of
# blocks that fit one window at the classification size (see img_size).
TOLERATED = re.compile(
    r'^norm\d+\.|relative_position_bias_table_to_neighbors$')


def tolerated_key(key: str, prefix: str = '') -> bool:
    """Whether a checkpoint may lack or carry ``key`` (:data:`TOLERATED`,
    matched after ``prefix``, e.g. ``'backbone.'`` for a whole model)."""
    return key.startswith(prefix) and bool(TOLERATED.search(key[len(prefix):]))


def unfit_keys(missing: List[str],
               unexpected: List[str],
               prefix: str = '') -> List[str]:
    """The keys of ``load_state_dict(strict=False)`` that do not fit and
    are not tolerated (:func:`tolerated_key`), each with what is wrong."""
    return [
        f'{k}: missing from the checkpoint'
        for k in missing if not tolerated_key(k, prefix)
    ] + [
        f'{k}: not in the model'
        for k in unexpected if not tolerated_key(k, prefix)
    ]


def raise_unless_fits(filename: str, target: str, wrong: List[str]) -> None:
    """Raises ValueError listing ``wrong`` (of :func:`unfit_keys`), if any:
    the checkpoint does not fit ``target``."""
    if wrong:
        raise ValueError(
            f'{filename} does not fit this {target} (a checkpoint of another '
            f'architecture or a damaged file): {len(wrong)} problems, e.g.'
            '\n  ' + '\n  '.join(wrong[:10]))


def load_pretrained(model: nn.Module, filename: str) -> None:
    """Loads a checkpoint into a :class:`FocalTransformer` and reports what
    did not fit.

    Accepts the official release (keys under ``model``), this project's
    converted files, and whole mmdet / mmseg / mmpretrain checkpoints.
    Relative-position tables and the absolute position embedding are resized
    to the model; output norms and neighbour tables may be missing (they are
    reported). Anything else that does not fit means the checkpoint is of
    another architecture, and raises ``ValueError``.
    """
    state_dict = to_backbone_keys(
        extract_state_dict(read_checkpoint(filename)))
    dropped = adapt_shapes(model, state_dict)
    missing, unexpected = model.load_state_dict(state_dict, strict=False)
    wrong = [k for k in dropped if not tolerated_key(k.split(':')[0])]
    raise_unless_fits(filename, 'FocalTransformer',
                      wrong + unfit_keys(missing, unexpected))
    report = []
    if dropped:
        report.append('shapes that do not fit (left at initialisation):\n  ' +
                      '\n  '.join(dropped))
    if missing:
        report.append('missing from the checkpoint (left at '
                      'initialisation):\n  ' + '\n  '.join(missing))
    if unexpected:
        report.append('in the checkpoint but not in the model (ignored):\n  ' +
                      '\n  '.join(unexpected))
    summary = f'Loaded {filename} into FocalTransformer'
    if report:
        print_log(
            summary + '; ' + '\n'.join(report),
            logger='current',
            level=logging.WARNING)
    else:
        print_log(summary + ': every key matched', logger='current')


def checkpoint_to_test(filename: str, work_dir: str, model_type: str) -> str:
    """The file that ``tools/test.py`` gives mmengine as ``load_from`` for the
    checkpoint ``filename`` (a local path or an http(s) URL).

    - An official release file, for an ``ImageClassifier`` (``model_type``),
      is converted with :func:`~focal_mm.official.official_to_mmpretrain`
      into ``work_dir``.
    - A checkpoint of a whole model (``backbone.*`` keys: saved by mmengine,
      or converted by ``tools/model_converters/focal2mm.py``) is used as it
      is; a URL as its downloaded copy.

    Anything else raises ``ValueError``.
    """
    from ..official import is_official_state_dict, official_to_mmpretrain
    # Download once (one barrier in distributed runs), then read the copy.
    local = download_checkpoint(filename) if is_url(filename) else filename
    state_dict = extract_state_dict(read_checkpoint(local))
    if is_official_state_dict(state_dict):
        model_type = getattr(model_type, '__name__', str(model_type))
        if not model_type.endswith('ImageClassifier'):
            raise ValueError(
                f'{filename} is an official Focal Transformer release file, '
                'an ImageNet classifier: test it with a '
                f'configs/focal_*_in1k.py config, not a {model_type}')
        converted = {
            k: v.contiguous()
            for k, v in official_to_mmpretrain(state_dict).items()
        }
        out = osp.join(work_dir, 'mmpretrain_' + osp.basename(local))
        os.makedirs(work_dir, exist_ok=True)
        part = f'{out}.{os.getpid()}.part'  # ranks may write at once
        torch.save({'state_dict': converted}, part)
        os.replace(part, out)
        print_log(
            f'{filename} is an official release file: converted to {out}',
            logger='current')
        return out
    if not any(k.startswith('backbone.') for k in state_dict):
        raise ValueError(
            f'{filename} is neither an official Focal Transformer release '
            'file nor a checkpoint of a whole model (no "backbone." keys; a '
            'file converted with --backbone-only is for init_cfg, not for '
            'testing)')
    return local
