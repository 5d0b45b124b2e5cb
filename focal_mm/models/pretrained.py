# Copyright (c) focal_mm contributors. All rights reserved.
"""Loading official or converted checkpoints into a FocalTransformer."""
import logging
import math
import os.path as osp
import pickle
import re
from collections import OrderedDict
from typing import Dict, List

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.logging import print_log
from mmengine.runner.checkpoint import CheckpointLoader


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
    locations are left to mmengine's loaders)."""
    return '://' not in filename and not osp.exists(filename)


# Keys a checkpoint may lack or carry without being of another architecture:
# the output norms of a dense-prediction backbone, and the neighbour tables of
# blocks that fit one window at the classification size (see img_size).
TOLERATED = re.compile(
    r'^norm\d+\.|relative_position_bias_table_to_neighbors$')


def read_checkpoint(filename: str, trust_pickle: bool = False) -> dict:
    """Loads a checkpoint with ``weights_only=True``; clear errors for files
    that carry pickled code or cannot be read. ``trust_pickle`` lets a local
    file unpickle arbitrary objects (it runs code from the file)."""
    try:
        if osp.isfile(filename):
            return torch.load(
                filename, map_location='cpu', weights_only=not trust_pickle)
        # URLs and other storage: mmengine's loaders, which call torch.load
        # with its default (weights_only=True since torch 2.6).
        return CheckpointLoader.load_checkpoint(filename, map_location='cpu')
    except pickle.UnpicklingError as err:
        raise ValueError(
            f'{filename} holds pickled Python objects besides tensors, and '
            'loading them could run code from the file, so it was refused. '
            'If you trust it, convert it once with '
            'tools/model_converters/focal2mm.py --trust-pickle.\n'
            f'(torch said: {str(err).splitlines()[0]})') from None
    except (RuntimeError, EOFError) as err:
        raise ValueError(f'Could not read checkpoint {filename} (truncated '
                         f'or corrupt?): {err}') from None


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
    wrong = [k for k in dropped if not TOLERATED.search(k.split(':')[0])]
    wrong += [
        f'{k}: missing from the checkpoint' for k in missing
        if not TOLERATED.search(k)
    ]
    wrong += [
        f'{k}: not in the model' for k in unexpected if not TOLERATED.search(k)
    ]
    if wrong:
        raise ValueError(
            f'{filename} does not fit this FocalTransformer (a checkpoint '
            f'of another architecture or a damaged file): {len(wrong)} '
            'problems, e.g.\n  ' + '\n  '.join(wrong[:10]))
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
