"""The package's layers import one way: backbones -> attention -> geometry ->
ops, with checkpoints beside them. Read from the source, every import
(function-level ones included) of every module."""
import ast
from pathlib import Path

import pytest

from conftest import REPO_ROOT

PACKAGE = REPO_ROOT / 'focal_mm'
# layer -> the focal_mm layers its modules may import (besides itself)
ALLOWED = {
    'ops': set(),
    'checkpoints': set(),
    'models.geometry': {'ops'},
    'models.attention': {'models.geometry', 'ops'},
    'models.backbones': {
        'models.attention', 'models.geometry', 'ops', 'checkpoints'
    },
}


def layer_of(module: str):
    """The layer of a dotted module name inside focal_mm, or None."""
    for layer in sorted(ALLOWED, key=len, reverse=True):
        if module == f'focal_mm.{layer}' or module.startswith(
                f'focal_mm.{layer}.'):
            return layer
    return None


def module_name(path: Path) -> str:
    return '.'.join(path.relative_to(REPO_ROOT).with_suffix('').parts)


def imported_modules(source: str, module: str):
    """The absolute names that the source of a module imports: modules and
    the names taken from them (`from . import x` names a submodule)."""
    package = module.split('.')[:-1]  # __init__ counts as a module of it
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                name = '.'.join(base + ([node.module] if node.module else []))
            else:
                name = node.module
            yield name
            yield from (f'{name}.{alias.name}' for alias in node.names)


def layered_files():
    return sorted(p for p in PACKAGE.rglob('*.py')
                  if layer_of(module_name(p)))


def test_every_layer_has_its_modules():
    assert {layer_of(module_name(p)) for p in layered_files()} == set(ALLOWED)


@pytest.mark.parametrize('path', layered_files(),
                         ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_run_one_way(path):
    module = module_name(path)
    assert not upward_imports(path.read_text(), module)


def upward_imports(source: str, module: str):
    own = layer_of(module)
    return sorted({
        name
        for name in imported_modules(source, module)
        if name.startswith('focal_mm') and layer_of(name) not in ALLOWED[own]
        | {own}
    })


@pytest.mark.parametrize('line, found', [
    ('from ..models.backbones import focal_backbone',
     'focal_mm.models.backbones'),
    ('from ..checkpoints.pretrained import load_pretrained',
     'focal_mm.checkpoints.pretrained'),
    ('import focal_mm.models.attention', 'focal_mm.models.attention'),
    ('from .. import models', 'focal_mm.models'),
])
def test_an_upward_import_is_found(line, found):
    """What the check is for: imports written into an ops module that run
    up a layer, at module level or inside a function."""
    source = f'import torch\n\n\ndef f():\n    {line}\n'
    assert found in upward_imports(source, 'focal_mm.ops.window_rows')
