"""Whether Triton's interpreter, which runs the kernels on CPU tensors in
the tests, works with the numpy installed.

Triton 3.6's interpreter turns a loop bound that the kernel receives at run
time into a Python int with ``int()`` of a one-element array, which numpy
refuses from 2.4 on ("only 0-dimensional arrays can be converted to Python
scalars"; 2.3 only warns). Every kernel of focal_mm loops to such a bound,
so none runs in that interpreter; compiled kernels on a GPU do not use it.
A probe kernel with such a loop finds the failure out. Import this module
only where ``TRITON_INTERPRET=1`` was set before Triton was first imported
(conftest.py does that on machines without CUDA).
"""
import functools
from typing import Optional

import numpy
import torch
import triton
import triton.language as tl
from triton.runtime.errors import InterpreterError

NUMPY_REFUSAL = 'only 0-dimensional arrays can be converted to Python scalars'


@triton.jit
def _count_to(out, n):
    total = 0
    for _ in range(0, n):
        total += 1
    tl.store(out, total)


@functools.lru_cache(maxsize=None)
def interpreter_failure() -> Optional[str]:
    """Why the interpreter cannot run a loop to a run-time bound, or None
    if it can. Any other failure of the probe is raised, not reported."""
    out = torch.zeros(1, dtype=torch.int32)
    try:
        _count_to[(1, )](out, 3)
    except InterpreterError as error:
        if NUMPY_REFUSAL not in str(error):
            raise
        return (f"Triton {triton.__version__}'s interpreter cannot run the "
                f'kernels under numpy {numpy.__version__}: it takes a loop '
                f'bound as int() of a one-element array, which numpy '
                f'refuses ({NUMPY_REFUSAL}); compiled kernels are not '
                f'affected')
    if out.item() != 3:
        raise AssertionError(f'the interpreter counted to {out.item()}, not 3')
    return None
