# Copyright (c) focal_mm contributors. All rights reserved.
"""Keeps mmengine 0.10.7 checkpoints loadable under torch >= 2.6.

torch 2.6 made ``torch.load`` default to ``weights_only=True``, and mmengine
0.10.7 (its last release) does not pass the argument. Its own checkpoints
hold a few non-tensor types (the message hub's ``HistoryBuffer``, numpy
arrays and scalars, ``ConfigDict``), so ``--resume``, ``load_from`` and
``tools/test.py`` fail with "Unsupported global". Rather than switching safe
loading off, this allow-lists exactly those types: anything else a pickle
asks for is still refused.

A pickled ``HistoryBuffer`` also calls ``getattr(HistoryBuffer, 'mean')``
(and min, max, current) to restore its statistics methods. ``getattr`` itself
is never allowed (it opens a path to any attribute of any allowed object);
the unpickler gets a stand-in that resolves exactly those names.
"""
import pickle

import numpy as np
import torch
from mmengine.config import ConfigDict
from mmengine.logging import HistoryBuffer


def numpy_core():
    """The installed numpy's core module: ``numpy._core`` since numpy 2,
    ``numpy.core`` before (numpy 1 has only a partial ``_core`` stub, numpy 2
    keeps ``numpy.core`` as a deprecated alias)."""
    return np.core if np.__version__.startswith('1.') else np._core


def _numpy_types() -> list:
    types = [np.ndarray, np.dtype]
    core = numpy_core()
    types += [core.multiarray._reconstruct, core.multiarray.scalar]
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        types += [getattr(dtypes, name) for name in dtypes.__all__]
    return types


def history_buffer_getattr(obj, name: str):
    """``getattr`` restricted to the statistics methods of HistoryBuffer."""
    allowed = {'min', 'max', 'current', 'mean'}
    allowed.update(HistoryBuffer._statistics_methods)  # custom registered ones
    if obj is HistoryBuffer and name in allowed:
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f'Refused getattr({obj!r}, {name!r}) while loading a checkpoint: '
        'only HistoryBuffer statistics methods are allowed')


def allow_mmengine_checkpoint_types() -> None:
    """Adds the types of mmengine's checkpoints to torch's safe globals."""
    torch.serialization.add_safe_globals([HistoryBuffer, ConfigDict] +
                                         _numpy_types() +
                                         [(history_buffer_getattr,
                                           'builtins.getattr')])


allow_mmengine_checkpoint_types()
