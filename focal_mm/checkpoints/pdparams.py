# Copyright (c) focal_mm contributors. All rights reserved.
"""Reading PaddleViT's ports of the official weights (``.pdparams``)
without Paddle.

PaddleViT (BR-IDL/PaddleViT, ``image_classification/Focal_Transformer``)
publishes the six official Focal ImageNet-1K checkpoints as ``.pdparams``
files: what ``paddle.save(model.state_dict())`` writes, a pickle (protocol 2
up to Paddle 2.0, 4 since) of a plain dict of numpy arrays under the
official parameter names, plus a table ``'StructuredToParameterName@@'`` of
Paddle's internal names. Two things differ from the official state dict:

- Paddle's ``nn.Linear`` stores its weight as ``[in, out]``, the transpose
  of PyTorch's ``[out, in]``: qkv, proj, the MLPs, the fc pooling layers
  and the head. The relative-position tables are plain parameters that
  PaddleViT's model indexes exactly as the official one does, so they keep
  the official orientation (so do all 1-D, 3-D and 4-D parameters).
- The index buffers (``relative_position_index*``, ``valid_ind_*``, int64)
  and the shift masks are Paddle's own; focal_mm computes them for each
  input size, and they are left out.

:func:`read_pdparams` reads such a file through an allow-list of exactly
the globals these pickles refer to (:data:`ALLOWED_GLOBALS`), checks the
layout and returns the official state dict, which
:mod:`~focal_mm.checkpoints.official` converts from there.
"""
import codecs
import pickle
import re
from collections import OrderedDict
from typing import Dict, Optional

import numpy as np
import torch

from .official import OFFICIAL_BUFFERS, is_official_state_dict
from .safe_globals import numpy_core

SUFFIX = '.pdparams'
# paddle.save's table of Paddle's internal parameter names.
NAME_TABLE = 'StructuredToParameterName@@'
# The only 2-D parameters that are not nn.Linear weights.
POSITION_TABLE = re.compile(
    r'relative_position_bias_table(_to_windows\.\d+)?$')

# Everything a pickled dict of numpy arrays refers to: the array
# constructor (under numpy 1's module name or numpy 2's), the array and
# dtype types, and, in protocol 2, the codec that restores raw bytes.
ALLOWED_GLOBALS = ('numpy.core.multiarray._reconstruct',
                   'numpy._core.multiarray._reconstruct', 'numpy.ndarray',
                   'numpy.dtype', '_codecs.encode')


def _allowed_objects() -> Dict[str, object]:
    # Either numpy's name of the constructor means the installed one.
    reconstruct = numpy_core().multiarray._reconstruct
    return {
        'numpy.core.multiarray._reconstruct': reconstruct,
        'numpy._core.multiarray._reconstruct': reconstruct,
        'numpy.ndarray': np.ndarray,
        'numpy.dtype': np.dtype,
        '_codecs.encode': codecs.encode,  # the same function
    }


class RefusedGlobal(pickle.UnpicklingError):
    """A pickle referred to a global outside :data:`ALLOWED_GLOBALS`."""

    def __init__(self, name: str):
        super().__init__(name)
        self.name = name


class _ArrayUnpickler(pickle.Unpickler):
    """Resolves only :data:`ALLOWED_GLOBALS`: a pickle can call nothing
    else, since every callable it uses must first be looked up here."""

    def __init__(self, file):
        super().__init__(file)
        self.allowed = _allowed_objects()

    def find_class(self, module: str, name: str):
        try:
            return self.allowed[f'{module}.{name}']
        except KeyError:
            raise RefusedGlobal(f'{module}.{name}') from None

    def persistent_load(self, pid):
        raise RefusedGlobal(f'a persistent id ({pid!r})')


def is_pdparams(filename: str) -> bool:
    """Whether ``filename`` names a Paddle parameter file (by its suffix)."""
    return filename.endswith(SUFFIX)


def load_paddle_pickle(path: str, source: Optional[str] = None):
    """The object pickled in the Paddle file ``path``, built from numpy
    arrays only (``source``, the name in errors, defaults to ``path``).

    Raises:
        ValueError: for a file that is no pickle of protocol 2 to 4, one
            that refers to anything outside :data:`ALLOWED_GLOBALS` (refused
            when the pickle names it, so nothing it names is ever called),
            or one that cannot be read.
    """
    source = source or path
    with open(path, 'rb') as f:
        head = f.read(2)
        if len(head) < 2 or head[0] != 0x80 or head[1] not in (2, 3, 4):
            start = (head + f.read(78)).decode('utf-8', 'replace')
            raise ValueError(
                f'{source} is not a Paddle parameter file (a pickle of '
                f'protocol 2 to 4, as paddle.save writes): it starts with '
                f'{start!r}')
        f.seek(0)
        try:
            return _ArrayUnpickler(f).load()
        except RefusedGlobal as err:
            raise ValueError(
                f'{source} refers to {err.name}, not only to numpy arrays, '
                'and loading it could run code from the file, so it was '
                f'refused: {err.name} was never called. A .pdparams file '
                'that paddle.save wrote refers to nothing but '
                f'{", ".join(ALLOWED_GLOBALS)}.') from None
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError,
                AttributeError, IndexError, KeyError, MemoryError) as err:
            raise ValueError(f'Could not read {source} (truncated or '
                             f'corrupt?): {type(err).__name__}: {err}') \
                from None


def _arrays(saved, source: str) -> 'OrderedDict[str, np.ndarray]':
    """The numeric arrays of a loaded ``.pdparams`` dict, without the name
    table; anything else in it is an error."""
    if not isinstance(saved, dict):
        raise ValueError(
            f'{source} holds a {type(saved).__name__}, not the dict of '
            'arrays that paddle.save writes for a state dict')
    arrays = OrderedDict()
    for key, value in saved.items():
        if key == NAME_TABLE:
            continue
        if not (isinstance(key, str) and isinstance(value, np.ndarray)
                and value.dtype.kind in 'biuf'):
            what = (f'an array of {value.dtype}' if isinstance(
                value, np.ndarray) else f'a {type(value).__name__}')
            raise ValueError(
                f'{source} is not a Paddle state dict of parameters: its '
                f'entry {key!r} is {what}, not a numeric array')
        arrays[key] = value
    return arrays


def _drop_buffers(arrays: Dict[str, np.ndarray], source: str) -> None:
    """Removes Paddle's index buffers and masks from ``arrays``; an integer
    array under any other name is an error (parameters are floats)."""
    for key in list(arrays):
        if OFFICIAL_BUFFERS.search(key):
            del arrays[key]
        elif arrays[key].dtype.kind != 'f':
            raise ValueError(
                f'{source}: {key} is an array of {arrays[key].dtype}, but '
                'it names a parameter (only index buffers are integers)')


def _linear_weight_to_official(arrays: Dict[str, np.ndarray], key: str,
                               source: str) -> np.ndarray:
    """The ``[out, in]`` weight of the Paddle ``nn.Linear`` weight
    ``arrays[key]`` (``[in, out]``), checked against its bias if any."""
    weight = arrays[key]
    bias = arrays.get(key[:-len('weight')] + 'bias')
    if bias is not None and bias.shape != (weight.shape[1], ):
        raise ValueError(
            f'{source}: {key} is {list(weight.shape)}, but Paddle\'s '
            f'nn.Linear stores [in, out] and its bias is {list(bias.shape)}: '
            'this is not the layout of a PaddleViT .pdparams file (are its '
            'weights transposed already?)')
    return weight.T


def paddlevit_to_official(saved,
                          source: str) -> 'OrderedDict[str, torch.Tensor]':
    """The official state dict (PyTorch orientation, no buffers) of the
    dict that a PaddleViT Focal Transformer ``.pdparams`` file holds.

    2-D ``*.weight`` arrays are ``nn.Linear`` weights, transposed back; the
    relative-position tables are kept; any other 2-D array is an error, as
    is a dict without the official keys.
    """
    arrays = _arrays(saved, source)
    if not is_official_state_dict(arrays):
        found = ', '.join(list(arrays)[:4]) or 'nothing'
        raise ValueError(
            f'{source} is a Paddle state dict, but not of a Focal Transformer '
            'in the layout of PaddleViT\'s ports (official parameter names, '
            '"layers.0.blocks.0. ..."): it holds '
            f'{len(arrays)} arrays such as {found}')
    _drop_buffers(arrays, source)
    state_dict = OrderedDict()
    for key, value in arrays.items():
        if value.ndim == 2 and key.endswith('.weight'):
            value = _linear_weight_to_official(arrays, key, source)
        elif value.ndim == 2 and not POSITION_TABLE.search(key):
            raise ValueError(
                f'{source}: {key} is a 2-D parameter that PaddleViT\'s Focal '
                'Transformer does not have (neither an nn.Linear weight nor '
                'a relative-position table), so its orientation is unknown')
        state_dict[key] = torch.from_numpy(np.array(value, order='C'))
    return state_dict


def read_pdparams(path: str,
                  source: Optional[str] = None
                  ) -> 'OrderedDict[str, torch.Tensor]':
    """The official state dict in the PaddleViT ``.pdparams`` file ``path``
    (see the module's description); ``source`` names it in errors.

    Raises:
        ValueError: for a file that is not a Paddle pickle of numpy arrays,
            refers to anything else (:func:`load_paddle_pickle`), or is not
            a Focal Transformer in PaddleViT's layout.
    """
    source = source or path
    return paddlevit_to_official(load_paddle_pickle(path, source), source)
