# Copyright (c) focal_mm contributors. All rights reserved.
"""Loading official, converted or self-trained checkpoints, local or by URL
(downloaded once into the torch hub cache), into a Focal backbone, and
preparing the checkpoint that tools/test.py evaluates."""
import logging
import math
import os
import os.path as osp
import pickle
import re
import sys
import zipfile
from collections import OrderedDict
from http.client import HTTPException
from typing import Dict, List, Optional
from urllib.error import HTTPError
from urllib.parse import urlparse

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.dist import get_dist_info
from mmengine.logging import print_log
from mmengine.runner.checkpoint import CheckpointLoader

from .pdparams import is_pdparams, read_pdparams
from .safe_globals import untrusted_load_args
from .surviving_copies import RELEASE_FILES, mirror_url, surviving_copy_lines

# Where the official release kept its ImageNet-1K checkpoints: RELEASE_URL +
# a name of surviving_copies.RELEASE_FILES (the configs name the same prefix
# as ``focal_in1k_url`` in configs/_base_/focal_in1k_checkpoints.py). The
# storage no longer serves them (RELEASE_GONE); the configs keep the URLs as
# the files' identity. A copy in the torch hub cache under the same name is
# used (cache_path); a file that survives elsewhere as itself is downloaded
# from there into that place, and the errors name where the others survive.
RELEASE_URL = ('https://projects4jw.blob.core.windows.net/model/'
               'focal-transformer/imagenet1k/')


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
    from .official import is_official_state_dict, official_to_backbone
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


# Why the release files cannot be had: stated for the release URLs only.
RELEASE_GONE = (
    'The official Focal Transformer checkpoints cannot be downloaded from '
    'their release URLs: the storage account behind them has refused public '
    'access since 2023 (HTTP 409, PublicAccessNotPermitted; see '
    'https://github.com/microsoft/Focal-Transformer/issues/27).')


def _pretraining_config(name: str) -> Optional[str]:
    """The ImageNet-1K config that trains the backbone of release file
    ``name``; None for other names."""
    release = RELEASE_FILES.get(name)
    return None if release is None else release.config


def _ways_to_start(name: str) -> str:
    """The ready command-line options that replace an unavailable
    checkpoint ``name``."""
    config = _pretraining_config(name)
    which = ''
    if config is None:
        config, which = 'CONFIG', ', the focal_*_in1k config of your backbone'
    return '\n'.join([
        'Start the backbone another way, adding one of these to the '
        'tools/train.py command:',
        '  a copy of the file that you have:',
        '    --cfg-options model.backbone.init_cfg.checkpoint=PATH',
        '  your own ImageNet-1K pretraining (python tools/train.py '
        f'configs/{config}.py{which}):',
        '    --cfg-options model.backbone.init_cfg.checkpoint='
        f'work_dirs/{config}/epoch_300.pth',
        '  no pretraining (train from scratch):',
        '    --cfg-options model.backbone.init_cfg=None',
        '(tools/test.py and tools/deployment/pytorch2onnx.py take the path '
        'of a copy in place of the URL; README, "Weights".)',
    ])


def _missing_file_message(filename: str) -> str:
    name = osp.basename(filename)
    lines = [f'Checkpoint {filename} does not exist.']
    if name in RELEASE_FILES:
        lines.append(f'{name} is an official release file. ' + RELEASE_GONE)
    lines += surviving_copy_lines(name)
    return '\n'.join(lines + [_ways_to_start(name)])


def _download_source(url: str) -> str:
    """Where checkpoint ``url`` is downloaded from: for a release URL whose
    file survives as itself, the surviving copy; else ``url``."""
    if url.startswith(RELEASE_URL):
        return mirror_url(url[len(RELEASE_URL):]) or url
    return url


def _unavailable_message(url: str, problem: str) -> str:
    """The error of a checkpoint URL that gave no checkpoint: ``problem``
    (naming the URL tried), why (for the release URLs), where the file
    survives, where a copy is used from, what to do."""
    name = osp.basename(urlparse(url).path)
    source = _download_source(url)
    tried = url if source == url else f'{url} (from its surviving copy ' \
        f'{source})'
    lines = [f'Could not download checkpoint {tried}: {problem}']
    if url.startswith(RELEASE_URL):
        lines.append(RELEASE_GONE)
    lines += surviving_copy_lines(name)
    lines.append(f'A copy saved as {cache_path(url)} is used without '
                 'downloading.')
    return '\n'.join(lines + [_ways_to_start(name)])


def _http_error(err: HTTPError) -> str:
    """``err`` with the code and message of the XML error body that storage
    services (Azure, S3) send, if it has one."""
    try:
        body = err.read(4096).decode('utf-8', 'replace')
    except (OSError, HTTPException):
        body = ''
    details = []
    for tag in ('Code', 'Message'):
        found = re.search(rf'<{tag}>\s*(.*?)\s*</{tag}>', body, re.DOTALL)
        if found:
            # Drop the request's id and time, which only the service reads.
            text = re.split(r'\s*RequestId:', found.group(1))[0]
            if text and text not in str(err):
                details.append(text)
    return f'{err}' + (f' ({": ".join(details)})' if details else '')


def cache_path(url: str) -> str:
    """Where the copy of a checkpoint URL is kept:
    ``torch.hub.get_dir()/checkpoints/<file name>``, as mmengine keeps it."""
    return osp.join(torch.hub.get_dir(), 'checkpoints',
                    osp.basename(urlparse(url).path))


def download_checkpoint(url: str) -> str:
    """The local copy of a checkpoint URL (:func:`cache_path`): downloaded
    once, then reused. A release URL whose file survives elsewhere as itself
    (:func:`~.surviving_copies.mirror_url`) is downloaded from there, kept
    under the release name. In a distributed run rank 0 downloads first, the
    others after a barrier.

    Raises:
        OSError: naming the URL downloaded, when the download fails or what
            came is not a PyTorch checkpoint (nothing is kept then).
    """
    path = cache_path(url)
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
    source = _download_source(url)
    print_log(
        f'Downloading {url} to {path}' +
        ('' if source == url else f' from its surviving copy {source}'),
        logger='current')
    # Checked under a name of its own, moved into place only if it is a
    # checkpoint: the cache never holds an error page or a partial file.
    part = f'{path}.{os.getpid()}.part'
    try:
        torch.hub.download_url_to_file(
            source, part, progress=sys.stderr.isatty())
        problem = not_a_checkpoint(part)
        if problem is None:
            os.replace(part, path)
            return
        problem = f'the file received is {problem}'
    except HTTPError as err:
        problem = _http_error(err)
    except (OSError, HTTPException) as err:
        problem = str(err)
    finally:
        if osp.exists(part):
            os.remove(part)
    raise OSError(_unavailable_message(url, problem))


# What torch.save writes first: a zip archive (the format since torch 1.6),
# or, in the legacy format, the pickled magic number (protocols 2 to 5).
ZIP_START = b'PK\x03\x04'
LEGACY_STARTS = tuple(
    pickle.dumps(torch.serialization.MAGIC_NUMBER, protocol=p)
    for p in range(2, pickle.HIGHEST_PROTOCOL + 1))


def not_a_checkpoint(path: str) -> Optional[str]:
    """Why the file at ``path`` is not a PyTorch checkpoint (what it starts
    with, or that its archive is incomplete), or None if it is one.

    A zip archive must be whole (a truncated one has lost its closing
    record) and hold torch's ``data.pkl``; a legacy-format file is known
    by its first bytes only, its completeness shows when it is read.
    """
    with open(path, 'rb') as f:
        head = f.read(max(map(len, LEGACY_STARTS)))
    if not head:
        return 'not a PyTorch checkpoint: the file is empty'
    if head.startswith(ZIP_START):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except zipfile.BadZipFile:
            return ('not a complete PyTorch checkpoint (truncated or '
                    'corrupt?): its zip archive has no end')
        if any(n == 'data.pkl' or n.endswith('/data.pkl') for n in names):
            return None
        return ('not a PyTorch checkpoint: a zip archive without '
                'data.pkl')
    if head.startswith(LEGACY_STARTS):
        return None
    with open(path, 'rb') as f:
        start = f.read(80).decode('utf-8', 'replace')
    return f'not a PyTorch checkpoint: it starts with {start!r}'


def read_checkpoint(filename: str, trust_pickle: bool = False) -> dict:
    """Loads a local file or an http(s) URL (downloaded once, see
    :func:`download_checkpoint`) with ``weights_only=True``; clear errors for
    missing files, files that are not PyTorch checkpoints, files that carry
    pickled code and files that cannot be read. ``trust_pickle`` lets the
    file unpickle arbitrary objects (it runs code from the file).

    A local ``.pdparams`` file (PaddleViT's port of the official weights)
    gives the official state dict: :func:`~focal_mm.checkpoints.pdparams.
    read_pdparams`."""
    if '://' in filename and not is_url(filename):
        # Other storage (s3://, ...): mmengine's loaders, which call
        # torch.load with its default (weights_only=True since torch 2.6).
        return CheckpointLoader.load_checkpoint(filename, map_location='cpu')
    if missing_local_file(filename):
        raise FileNotFoundError(_missing_file_message(filename))
    local = download_checkpoint(filename) if is_url(filename) else filename
    source = filename if local == filename else f'{filename} ({local})'
    if is_pdparams(local):
        # PaddleViT's port of official weights: always read through its own
        # allow-list (it never needs trust_pickle), in the official layout.
        return read_pdparams(local, source)
    problem = not_a_checkpoint(local)
    if problem is not None:
        raise ValueError(f'{source} is {problem}')
    try:
        # Untrusted: tensors and mmengine's checkpoint types only
        # (safe_globals.py), on every torch.
        args = dict(weights_only=False) if trust_pickle else \
            untrusted_load_args()
        return torch.load(local, map_location='cpu', **args)
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
    """Loads a checkpoint into a Focal backbone (:class:`FocalTransformer`
    or :class:`FocalFastTransformer`) and reports what did not fit.

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
    target = type(model).__name__
    raise_unless_fits(filename, target,
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
    summary = f'Loaded {filename} into {target}'
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

    - An official release file or a PaddleViT ``.pdparams`` port of one, for
      an ``ImageClassifier`` (``model_type``), is converted with
      :func:`~focal_mm.checkpoints.official.official_to_mmpretrain` into
      ``work_dir``.
    - A checkpoint of a whole model (``backbone.*`` keys: saved by mmengine,
      or converted by ``tools/model_converters/focal2mm.py``) is used as it
      is; a URL as its downloaded copy.

    Anything else raises ``ValueError``.
    """
    from .official import is_official_state_dict, official_to_mmpretrain

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
        # Always a .pth: a converted .pdparams is a PyTorch file.
        stem = osp.splitext(osp.basename(local))[0]
        out = osp.join(work_dir, f'mmpretrain_{stem}.pth')
        os.makedirs(work_dir, exist_ok=True)
        part = f'{out}.{os.getpid()}.part'  # ranks may write at once
        torch.save({'state_dict': converted}, part)
        os.replace(part, out)
        print_log(
            f'{filename} holds official weights: converted to {out}',
            logger='current')
        return out
    if not any(k.startswith('backbone.') for k in state_dict):
        raise ValueError(
            f'{filename} is neither an official Focal Transformer release '
            'file nor a checkpoint of a whole model (no "backbone." keys; a '
            'file converted with --backbone-only is for init_cfg, not for '
            'testing)')
    return local
