"""Shared fixtures: where the reference data lives, and the default scope."""
import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get('FOCAL_MM_SHARED', REPO_ROOT.parent / 'shared'))
REFERENCE_DIR = SHARED / 'reference' / 'focal_v1'


def pytest_configure(config):
    config.addinivalue_line(
        'markers', 'slow: full-size models or training loops (still run in CI)')


@pytest.fixture(scope='session')
def reference_dir() -> Path:
    if not REFERENCE_DIR.is_dir():
        pytest.fail(f'Reference data not found at {REFERENCE_DIR}; set '
                    'FOCAL_MM_SHARED to the folder holding reference/')
    return REFERENCE_DIR


@pytest.fixture
def mm_log():
    """Collects what mmengine's current logger prints; call it for the text."""
    import logging

    from mmengine.logging import MMLogger
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    yield lambda: '\n'.join(r.getMessage() for r in records)
    logger.removeHandler(handler)
