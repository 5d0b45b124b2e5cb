"""tools/model_converters/focal2mm.py: official checkpoint in, a plain tensor
file out that gives the official logits; pickled code is refused."""
import subprocess
import sys

import pytest
import torch
from mmpretrain.registry import MODELS

from focal_mm.checkpoints.official import mmpretrain_model_cfg
from conftest import REPO_ROOT, load_case

SCRIPT = REPO_ROOT / 'tools' / 'model_converters' / 'focal2mm.py'


def convert(*args):
    return subprocess.run(
        [sys.executable, str(SCRIPT), *map(str, args)],
        capture_output=True,
        text=True)


@pytest.fixture(scope='module')
def case():
    return load_case('conv_embed_prenorm_layerscale_224')


@pytest.mark.parametrize('family, name, version',
                         [('focal_v1', 'conv_embed_prenorm_layerscale_224', 1),
                          ('focal_v2', 'v2_pool_conv_224', 2)])
def test_classifier_conversion_gives_official_logits(tmp_path, family, name,
                                                     version):
    case = load_case(name, family)
    src, dst = tmp_path / 'official.pth', tmp_path / 'converted.pth'
    torch.save({'model': case['state_dict'], 'epoch': 299}, src)
    result = convert(src, dst)
    assert result.returncode == 0, result.stderr
    state_dict = torch.load(dst, weights_only=True)['state_dict']
    model = MODELS.build(mmpretrain_model_cfg(case['config'], version))
    model.load_state_dict(state_dict, strict=True)
    model.double().eval()
    with torch.no_grad():
        logits = model(case['input'].double(), mode='tensor')
    err = (logits - case['logits']).norm() / case['logits'].norm()
    assert err < 1e-6


def test_backbone_only_conversion(tmp_path, case):
    src, dst = tmp_path / 'official.pth', tmp_path / 'backbone.pth'
    torch.save({'model': case['state_dict']}, src)
    assert convert(src, dst, '--backbone-only').returncode == 0
    keys = set(torch.load(dst, weights_only=True)['state_dict'])
    assert 'patch_embed.projection.weight' in keys
    assert not any(k.startswith(('backbone.', 'head')) for k in keys)


class _CreatesMarker:
    """Unpickling this object creates a file: stands for arbitrary code."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), 'w'))


def test_pickled_code_is_refused_and_never_runs(tmp_path, case):
    marker = tmp_path / 'marker'
    src = tmp_path / 'hostile.pth'
    torch.save({'model': case['state_dict'], 'x': _CreatesMarker(marker)}, src)
    result = convert(src, tmp_path / 'out.pth')
    assert result.returncode != 0
    assert 'pickled Python objects' in result.stderr
    assert '--trust-pickle' in result.stderr
    assert not marker.exists()


def test_not_an_official_checkpoint(tmp_path):
    src = tmp_path / 'other.pth'
    torch.save({'state_dict': {'conv.weight': torch.zeros(1)}}, src)
    result = convert(src, tmp_path / 'out.pth')
    assert result.returncode != 0
    assert 'not an official Focal Transformer checkpoint' in result.stderr
