"""Shared fixtures: where the reference data lives, and the default scope."""
import ast
import json
import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get('FOCAL_MM_SHARED', REPO_ROOT.parent / 'shared'))
REFERENCE_DIR = SHARED / 'reference' / 'focal_v1'


def official_architectures() -> dict:
    """The six released ImageNet variants: constructor arguments, parameter
    counts and state-dict keys (official_architectures.json)."""
    with open(REFERENCE_DIR / 'official_architectures.json') as f:
        archs = json.load(f)
    for arch in archs.values():
        for key in ('config', 'keys'):
            if isinstance(arch[key], str):
                arch[key] = ast.literal_eval(arch[key])
    return archs


ARCHS = official_architectures() if REFERENCE_DIR.is_dir() else {}


def pytest_configure(config):
    config.addinivalue_line(
        'markers',
        'slow: full-size models or training loops (still run in CI)')


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
def mm_log():
    """A LogCapture watching mmengine's current logger (a Runner makes its
    own: watch ``runner.logger`` too)."""
    from mmengine.logging import MMLogger
    capture = LogCapture()
    capture.watch(MMLogger.get_current_instance())
    yield capture
    capture.close()
