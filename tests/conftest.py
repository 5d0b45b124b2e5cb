"""Shared fixtures: the reference data of both official families, and a log
capture.

Two sets of reference outputs of the official models exist for each family
(``focal_v1``: Focal, ``focal_v2``: Focal-fast):

- the compact set in ``tests/data/reference/<family>`` (a few cases that
  cover each family's options, made by ``tests/data/reference/make_compact.py``
  from the full set), always present in the repository;
- the full set in ``shared/reference/<family>`` beside the repository (or
  ``$FOCAL_MM_SHARED/reference``), which the project's own machines and CI
  have. When it is there its cases run too; ``FOCAL_MM_FULL_REFERENCE=1``
  (set by ``.ci/run``) makes its absence a failure.

Missing data is never a skip: a case or file that cannot be found fails the
test that asked for it, saying what is missing.

Tests marked ``gpu`` need a CUDA device: ``pytest.ini`` deselects them
(the summary counts them as deselected); ``pytest -m gpu`` runs them on a
GPU machine. Without a GPU, Triton kernels run in Triton's interpreter on
CPU tensors, which must be chosen before Triton is first imported
(importing focal_mm imports it).
"""
import ast
import json
import os
from pathlib import Path
from typing import Dict, List

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault('TRITON_INTERPRET', '1')

# Under pytest-xdist (``make test`` runs two workers) each worker takes its
# share of the cores: two workers of two threads each on two cores would
# fight over them. OMP_NUM_THREADS hands the share on to the tools that the
# tests run as subprocesses.
WORKERS = int(os.environ.get('PYTEST_XDIST_WORKER_COUNT', '1'))
if WORKERS > 1:
    THREADS = max(1, torch.get_num_threads() // WORKERS)
    torch.set_num_threads(THREADS)
    os.environ['OMP_NUM_THREADS'] = str(THREADS)

from reference_cases import COMPACT_CASES, FULL_CASES  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
COMPACT_ROOT = REPO_ROOT / 'tests' / 'data' / 'reference'
SHARED = Path(os.environ.get('FOCAL_MM_SHARED', REPO_ROOT.parent / 'shared'))
FULL_ROOT = SHARED / 'reference'
FAMILIES = ('focal_v1', 'focal_v2')
REQUIRE_FULL = os.environ.get('FOCAL_MM_FULL_REFERENCE') == '1'


def full_set_present() -> bool:
    return all((FULL_ROOT / family).is_dir() for family in FAMILIES)


def case_ids(family: str) -> List[str]:
    """Test ids of the cases to run: ``compact/<name>`` always, and
    ``full/<name>`` when the full set is beside the repository."""
    ids = [f'compact/{name}' for name in COMPACT_CASES[family]]
    if full_set_present():
        ids += [f'full/{name}' for name in FULL_CASES[family]]
    return ids


def case_path(case_id: str, family: str) -> Path:
    where, name = case_id.split('/')
    root = COMPACT_ROOT if where == 'compact' else FULL_ROOT
    return root / family / f'{name}.pt'


def load_case(case_id: str, family: str = 'focal_v1') -> Dict:
    """A reference case by id (``compact/NAME``, ``full/NAME``) or bare name
    (the compact copy if there is one, else the full set's)."""
    if '/' not in case_id:
        where = 'compact' if case_id in COMPACT_CASES[family] else 'full'
        case_id = f'{where}/{case_id}'
    path = case_path(case_id, family)
    if not path.is_file():
        hint = ('it is part of the repository: restore tests/data'
                if case_id.startswith('compact/') else
                f'the full reference set is expected at {FULL_ROOT} '
                '(or set FOCAL_MM_SHARED)')
        pytest.fail(f'Reference case {case_id} of {family} is missing: no '
                    f'{path} ({hint})')
    return torch.load(path, weights_only=True)


def rel_err(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """Relative error ``|actual - expected| / |expected|`` (Frobenius
    norms, in float64)."""
    expected = expected.double()
    return ((actual.double() - expected).norm() /
            expected.norm().clamp_min(1e-300)).item()


def projected_gradients(ours: torch.Tensor, ref: torch.Tensor,
                        inputs: List[torch.Tensor]) -> list:
    """Pairs ``(ours, ref)`` of the gradients, with respect to each of
    ``inputs`` (``None`` where it is unused), of one random projection of
    the two outputs."""
    proj = torch.randn_like(ours)
    grads = torch.autograd.grad((ours * proj).sum(), inputs, allow_unused=True)
    ref_grads = torch.autograd.grad(
        (ref * proj).sum(), inputs, allow_unused=True)
    return list(zip(grads, ref_grads))


def official_architectures(family: str = 'focal_v1') -> Dict:
    """The released ImageNet variants of a family: constructor arguments,
    parameter counts, the official FLOPs and state-dict keys."""
    path = COMPACT_ROOT / family / 'official_architectures.json'
    if not path.is_file():
        pytest.fail(f'{path} is missing (part of the repository)')
    with open(path) as f:
        archs = json.load(f)
    for arch in archs.values():
        # One file stores values as Python literals in strings.
        for key in ('config', 'keys', 'params', 'official_flops'):
            if isinstance(arch[key], str):
                arch[key] = ast.literal_eval(arch[key])
    return archs


def pytest_configure(config):
    config.addinivalue_line(
        'markers',
        'slow: full-size models or training loops (still run in CI)')
    config.addinivalue_line(
        'markers', 'gpu: needs a CUDA device (deselected unless -m gpu)')


def pytest_report_header(config):
    if full_set_present():
        return f'reference data: compact set and full set ({FULL_ROOT})'
    return ('reference data: compact set only (no full set at '
            f'{FULL_ROOT})')


def pytest_sessionstart(session):
    if REQUIRE_FULL and not full_set_present():
        raise pytest.UsageError(
            'FOCAL_MM_FULL_REFERENCE=1 but the full reference set is not at '
            f'{FULL_ROOT} (expected {", ".join(FAMILIES)} there)')


class LogCapture:
    """Collects what mmengine loggers print."""

    def __init__(self):
        import logging
        self.records = []
        self.handler = logging.Handler()
        self.handler.emit = self.records.append
        self.loggers = []

    def watch(self, logger):
        logger.addHandler(self.handler)
        self.loggers.append(logger)

    def text(self) -> str:
        return '\n'.join(r.getMessage() for r in self.records)

    def close(self):
        for logger in self.loggers:
            logger.removeHandler(self.handler)


@pytest.fixture
def interpreted_kernels():
    """For tests that launch the Triton kernels: without CUDA they run in
    Triton's interpreter, and the test is skipped, with the reason, where
    that interpreter cannot run them (triton_interpreter.py)."""
    if torch.cuda.is_available():
        return
    from triton_interpreter import interpreter_failure
    reason = interpreter_failure()
    if reason is not None:
        pytest.skip(reason)


@pytest.fixture
def mm_log():
    """A LogCapture watching mmengine's current logger (a Runner makes its
    own: watch ``runner.logger`` too)."""
    from mmengine.logging import MMLogger
    capture = LogCapture()
    capture.watch(MMLogger.get_current_instance())
    yield capture
    capture.close()


ARCHS = official_architectures('focal_v1')
ARCHS_V2 = official_architectures('focal_v2')
