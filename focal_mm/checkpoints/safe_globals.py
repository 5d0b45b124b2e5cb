# Copyright (c) focal_mm contributors. All rights reserved.
"""What a checkpoint's pickle may name besides tensors, and how torch is
told so.

mmengine's runner checkpoints hold a few non-tensor types (the message
hub's ``HistoryBuffer``, numpy arrays and scalars, ``ConfigDict``). A
pickled ``HistoryBuffer`` also calls ``getattr(HistoryBuffer, 'mean')``
(and min, max, current) to restore its statistics methods. ``getattr``
itself is never allowed (it opens a path to any attribute of any allowed
object); the unpickler gets :func:`history_buffer_getattr`, which resolves
exactly those names.

From torch 2.6 these are added to torch's own weights-only allow-list
(:func:`register_with_torch`, called by ``focal_mm/compat.py``, which holds
the version gate). Older torch cannot take them (no ``add_safe_globals``
before 2.4, no ``(object, name)`` entries before 2.6): there
:data:`restricted_pickle` is the pickle module ``torch.load`` is given
instead, which allows torch's weights-only globals and these, and refuses
anything else (:func:`untrusted_load_args` says which).
"""
import _compat_pickle
import pickle
import types
from functools import lru_cache
from typing import Any, Dict

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
    types_ = [np.ndarray, np.dtype]
    core = numpy_core()
    types_ += [core.multiarray._reconstruct, core.multiarray.scalar]
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        types_ += [getattr(dtypes, name) for name in dtypes.__all__]
    return types_


def mmengine_checkpoint_types() -> list:
    """The non-tensor types of mmengine's runner checkpoints."""
    return [HistoryBuffer, ConfigDict] + _numpy_types()


def history_buffer_getattr(obj, name: str):
    """``getattr`` restricted to the statistics methods of HistoryBuffer."""
    allowed = {'min', 'max', 'current', 'mean'}
    allowed.update(HistoryBuffer._statistics_methods)  # custom registered ones
    if obj is HistoryBuffer and name in allowed:
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f'Refused getattr({obj!r}, {name!r}) while loading a checkpoint: '
        'only HistoryBuffer statistics methods are allowed')


@lru_cache(maxsize=None)
def _allowed_globals() -> Dict[str, Any]:
    """``'module.name'`` -> object: torch's weights-only globals (tensors,
    storages, ``OrderedDict``...), the types above, and ``_codecs.encode``
    (how protocol 2, torch.save's, writes the bytes of numpy values)."""
    import codecs

    # Private, but fixed in the torch versions that use this (< 2.6).
    from torch._weights_only_unpickler import _get_allowed_globals
    allowed = dict(_get_allowed_globals())
    for obj in mmengine_checkpoint_types():
        allowed[f'{obj.__module__}.{obj.__qualname__}'] = obj
    allowed['_codecs.encode'] = codecs.encode
    allowed['builtins.getattr'] = history_buffer_getattr
    return allowed


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that finds only the globals of :func:`_allowed_globals`
    and refuses every other with ``UnpicklingError``."""

    def find_class(self, module: str, name: str):
        # Protocol 2 (torch.save's) names Python 2 modules, e.g.
        # __builtin__ for builtins: mapped as pickle's own find_class does.
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        obj = _allowed_globals().get(f'{module}.{name}')
        if obj is None:
            raise pickle.UnpicklingError(
                f'Unsupported global: {module}.{name} (not one of the '
                'types a checkpoint may hold)')
        return obj


def _restricted_load(file, **kwargs):
    return RestrictedUnpickler(file, **kwargs).load()


# What torch.load(..., pickle_module=restricted_pickle) uses: its Unpickler
# for the checkpoint's data, its load for the legacy format's headers.
restricted_pickle = types.ModuleType('focal_mm_restricted_pickle')
restricted_pickle.Unpickler = RestrictedUnpickler
restricted_pickle.load = _restricted_load

_registered = False


def register_with_torch() -> None:
    """Adds mmengine's checkpoint types and the ``getattr`` stand-in to
    torch's weights-only allow-list (torch >= 2.6)."""
    global _registered
    torch.serialization.add_safe_globals(mmengine_checkpoint_types() +
                                         [(history_buffer_getattr,
                                           'builtins.getattr')])
    _registered = True


def untrusted_load_args() -> dict:
    """The ``torch.load`` arguments for a file whose pickled code must not
    run: torch's weights-only unpickler where it knows mmengine's types
    (:func:`register_with_torch`), else :data:`restricted_pickle`."""
    if _registered:
        return dict(weights_only=True)
    return dict(weights_only=False, pickle_module=restricted_pickle)
