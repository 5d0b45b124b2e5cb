"""PaddleViT's ``.pdparams`` ports of the official weights, read without
Paddle: files that paddle.save and PaddleViT's own model wrote
(tests/data/paddle, made by tools/fixtures/make_paddle_fixtures.py) give the
official logits, or Paddle's, through every entry point that takes a
checkpoint; pickles that refer to anything but numpy arrays are refused
without running, and files of another layout get errors that say so."""
import importlib.util
import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmpretrain.registry import MODELS

from focal_mm.checkpoints.official import (mmpretrain_model_cfg,
                                           official_to_backbone,
                                           official_to_mmpretrain)
from focal_mm.checkpoints.pdparams import (ALLOWED_GLOBALS, load_paddle_pickle,
                                           read_pdparams)
from focal_mm.checkpoints.pretrained import checkpoint_to_test
from conftest import REPO_ROOT, load_case, rel_err
from test_pretrained_download import (backbone_cfg, build_det_backbone,
                                      tools_test_scores)

DATA = REPO_ROOT / 'tests' / 'data' / 'paddle'
FIXTURE_SCRIPT = REPO_ROOT / 'tools' / 'fixtures' / 'make_paddle_fixtures.py'
with open(DATA / 'fixtures.json') as f:
    MANIFEST = json.load(f)
MODELS_WRITTEN = [m for m in MANIFEST if m['kind'] in ('official', 'paddle')]
OFFICIAL = [m for m in MANIFEST if m['kind'] == 'official']
PADDLE = [m for m in MANIFEST if m['kind'] == 'paddle']
HOSTILE = [m for m in MANIFEST if m['kind'] == 'hostile']
# What the fixtures must each meet: official weights through Paddle's
# layout and back are the official model's; a model of Paddle's own gives
# Paddle's float32 logits.
TOLERANCE = {'official': 1e-5, 'paddle': 1e-4}


def fixture_script():
    """tools/fixtures/make_paddle_fixtures.py as a module (its fixed input
    and the command of the hostile fixtures); it imports no Paddle."""
    spec = importlib.util.spec_from_file_location('make_paddle_fixtures',
                                                  FIXTURE_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SCRIPT = fixture_script()


def expected(entry):
    """The official constructor arguments, input and logits of a fixture:
    the reference case's for official weights, else the recorded Paddle
    logits of the script's fixed input."""
    if entry['kind'] == 'official':
        case = load_case(entry['case'])
        return case['config'], case['input'], case['logits']
    return (entry['config'], torch.from_numpy(SCRIPT.fixed_input()),
            torch.tensor(entry['logits']))


def classifier_logits(config, state_dict, images):
    """float32 logits of the mmpretrain classifier of the official
    ``config`` holding ``state_dict`` (its keys, all of them)."""
    model = MODELS.build(mmpretrain_model_cfg(config))
    model.load_state_dict(state_dict, strict=True)
    model.eval()
    with torch.no_grad():
        return model(images.float(), mode='tensor')


def ids(entries):
    return [e['file'] for e in entries]


@pytest.mark.parametrize('entry', MODELS_WRITTEN, ids=ids(MODELS_WRITTEN))
def test_fixture_gives_the_logits(entry):
    config, images, logits = expected(entry)
    state_dict = read_pdparams(str(DATA / entry['file']))
    ours = classifier_logits(config, official_to_mmpretrain(state_dict),
                             images)
    err = rel_err(ours, logits)
    print(f"{entry['file']}: relative error {err:.2e}")
    assert err < TOLERANCE[entry['kind']]


@pytest.mark.parametrize('entry', OFFICIAL, ids=ids(OFFICIAL))
def test_official_weights_come_back_unchanged(entry):
    """Transposed back, without Paddle's buffers and name table, the port
    is the official state dict, bit for bit."""
    official = load_case(entry['case'])['state_dict']
    state_dict = read_pdparams(str(DATA / entry['file']))
    assert list(state_dict) == list(official)
    for key, value in official.items():
        assert torch.equal(state_dict[key], value), key


class _Recorder(pickle.Unpickler):
    """Unpickles as pickle does, noting every global the pickle names (for
    files known to be harmless)."""

    def __init__(self, file):
        super().__init__(file)
        self.names = set()

    def find_class(self, module, name):
        self.names.add(f'{module}.{name}')
        return super().find_class(module, name)


def pickle_facts(path):
    """The protocol of a harmless pickle file and every global it names."""
    with open(path, 'rb') as f:
        protocol = f.read(2)[1]
        f.seek(0)
        recorder = _Recorder(f)
        recorder.load()
    return protocol, recorder.names


def test_fixtures_cover_both_protocols_and_numpy_versions():
    """The files are what the manifest says: protocols 2 and 4, written
    under numpy 1 (numpy.core) and numpy 2 (numpy._core), referring to
    exactly the allowed globals."""
    covered = set()
    for entry in MODELS_WRITTEN:
        protocol, names = pickle_facts(DATA / entry['file'])
        assert protocol == entry['protocol'], entry['file']
        assert entry['numpy_version'].startswith(f"{entry['numpy']}.")
        core = 'numpy.core' if entry['numpy'] == 1 else 'numpy._core'
        allowed = {n for n in ALLOWED_GLOBALS if not n.startswith('numpy.')}
        allowed |= {f'{core}.multiarray._reconstruct', 'numpy.ndarray',
                    'numpy.dtype'}
        assert names <= allowed, (entry['file'], names)
        assert f'{core}.multiarray._reconstruct' in names
        assert ('_codecs.encode' in names) == (protocol == 2)
        covered.add((protocol, entry['numpy']))
    assert covered == {(2, 1), (2, 2), (4, 1), (4, 2)}
    assert {e['kind'] for e in MODELS_WRITTEN} == {'official', 'paddle'}


HOSTILE_MARKER = SCRIPT.HOSTILE_COMMAND.split()[-1]


@pytest.mark.parametrize('entry', HOSTILE, ids=ids(HOSTILE))
def test_hostile_pickle_is_refused_and_runs_nothing(entry, tmp_path,
                                                    monkeypatch):
    monkeypatch.chdir(tmp_path)  # where the command would leave its file
    path = DATA / entry['file']
    assert b'posix' in path.read_bytes()  # os.system, as pickle names it
    with pytest.raises(ValueError) as err:
        read_pdparams(str(path))
    message = str(err.value)
    print(message)
    assert message.startswith(f'{path} refers to posix.system, not only to '
                              'numpy arrays')
    assert 'posix.system was never called' in message
    assert not (tmp_path / HOSTILE_MARKER).exists()


class _Evaluates:
    """Unpickling this evaluates Python code that creates a file."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (eval, (f'open({str(self.path)!r}, "w")', ))


@pytest.mark.parametrize('protocol, name', [(2, '__builtin__.eval'),
                                            (4, 'builtins.eval')])
def test_any_other_global_is_refused(tmp_path, protocol, name):
    """Beyond the written fixtures: eval, as pickle writes it in each
    protocol (protocol 2 under Python 2's module name)."""
    marker = tmp_path / 'marker'
    path = tmp_path / 'eval.pdparams'
    weights = {'w': np.ones(3, np.float32), 'x': _Evaluates(marker)}
    path.write_bytes(pickle.dumps(weights, protocol=protocol))
    with pytest.raises(ValueError, match=f'refers to {name}, not only'):
        load_paddle_pickle(str(path))
    assert not marker.exists()


def test_state_dict_of_another_model_is_refused():
    path = DATA / 'not_focal.pdparams'
    with pytest.raises(ValueError) as err:
        read_pdparams(str(path))
    print(err.value)
    assert str(err.value) == (
        f'{path} is a Paddle state dict, but not of a Focal Transformer in '
        "the layout of PaddleViT's ports (official parameter names, "
        '"layers.0.blocks.0. ..."): it holds 4 arrays such as 0.weight, '
        '0.bias, 2.weight, 2.bias')


def saved_dict(entry):
    """The dict a fixture holds, as numpy arrays."""
    return load_paddle_pickle(str(DATA / entry['file']))


def write(tmp_path, saved, protocol=4):
    path = tmp_path / 'changed.pdparams'
    path.write_bytes(pickle.dumps(saved, protocol=protocol))
    return str(path)


def test_linear_weights_not_in_paddle_orientation_are_refused(tmp_path):
    """A file whose nn.Linear weights are already [out, in] is not
    PaddleViT's layout: its biases say so."""
    saved = saved_dict(OFFICIAL[0])
    for key, value in saved.items():
        if key.endswith('.weight') and getattr(value, 'ndim', 0) == 2:
            saved[key] = value.T.copy()
    with pytest.raises(ValueError, match=r'layers\.0\.blocks\.0\.pool_layers'
                       r'\.0\.weight is \[1, 49\], but Paddle\'s nn\.Linear '
                       r'stores \[in, out\] and its bias is \[1\]'):
        read_pdparams(write(tmp_path, saved))


@pytest.mark.parametrize('key, value, problem', [
    ('layers.0.blocks.0.attn.extra_table', np.ones((4, 2), np.float32),
     'a 2-D parameter that PaddleViT'),
    ('layers.0.blocks.0.norm1.weight', np.ones(16, np.int64),
     'is an array of int64, but it names a parameter'),
    ('layers.0.blocks.0.norm1.bias', 'text', "is a str, not a numeric"),
])
def test_entries_outside_the_layout_are_refused(tmp_path, key, value,
                                                problem):
    saved = saved_dict(OFFICIAL[0])
    saved[key] = value
    with pytest.raises(ValueError, match=problem):
        read_pdparams(write(tmp_path, saved))


def test_files_that_are_no_paddle_pickles(tmp_path):
    page = tmp_path / 'drive.pdparams'
    page.write_text('<!DOCTYPE html><html><head><title>Google Drive - Virus '
                    'scan warning</title>')
    with pytest.raises(ValueError, match="not a Paddle parameter file .*"
                       "it starts with '<!DOCTYPE html>"):
        read_pdparams(str(page))
    truncated = tmp_path / 'truncated.pdparams'
    data = (DATA / OFFICIAL[0]['file']).read_bytes()
    truncated.write_bytes(data[:len(data) // 2])
    with pytest.raises(ValueError, match='truncated or corrupt'):
        read_pdparams(str(truncated))


# The three entry points, each through read_checkpoint.


@pytest.mark.parametrize('entry', OFFICIAL, ids=ids(OFFICIAL))
def test_detection_backbone_starts_from_pdparams(tmp_path, entry):
    """init_cfg=Pretrained with a .pdparams gives the backbone that the
    official file gives (tables resized to the enlarged windows alike)."""
    case = load_case(entry['case'])
    official = tmp_path / 'official.pth'
    torch.save({'model': case['state_dict']}, official)
    states = []
    for checkpoint in (DATA / entry['file'], official):
        cfg = backbone_cfg(case, str(checkpoint))
        cfg.update(focal_windows=(15, 13, 9, 7))  # the detection recipe's
        model = build_det_backbone(cfg)
        model.init_weights()
        states.append(model.state_dict())
    loaded = official_to_backbone(case['state_dict'])
    resized = [k for k, v in loaded.items() if v.shape != states[0][k].shape]
    # One table to the pooled windows per block, enlarged with the windows.
    assert len(resized) == sum(case['config']['depths'])
    for key in loaded:  # the rest is initialisation (random)
        assert torch.equal(states[0][key], states[1][key]), key


def test_checkpoint_to_test_converts_the_whole_classifier(tmp_path):
    entry = OFFICIAL[1]
    case = load_case(entry['case'])
    out = checkpoint_to_test(
        str(DATA / entry['file']), str(tmp_path), 'ImageClassifier')
    assert out == str(tmp_path / f"mmpretrain_{entry['file'][:-9]}.pth")
    state_dict = torch.load(out, weights_only=True)['state_dict']
    assert 'head.fc.weight' in state_dict
    err = rel_err(
        classifier_logits(case['config'], state_dict, case['input']),
        case['logits'])
    assert err < TOLERANCE['official']
    with pytest.raises(ValueError, match='configs/focal_.*_in1k.py'):
        checkpoint_to_test(
            str(DATA / entry['file']), str(tmp_path), 'MaskRCNN')


def convert(*args):
    return subprocess.run(
        [sys.executable, str(REPO_ROOT / 'tools' / 'model_converters' /
                             'focal2mm.py'), *map(str, args)],
        capture_output=True,
        text=True)


@pytest.mark.parametrize('entry', [OFFICIAL[0], PADDLE[0]],
                         ids=ids([OFFICIAL[0], PADDLE[0]]))
def test_focal2mm_converts_pdparams(tmp_path, entry):
    """focal2mm.py writes plain tensor files: the whole classifier (its
    logits) and the backbone alone."""
    config, images, logits = expected(entry)
    whole, backbone = tmp_path / 'whole.pth', tmp_path / 'backbone.pth'
    for args in ((whole, ), (backbone, '--backbone-only')):
        result = convert(DATA / entry['file'], *args)
        assert result.returncode == 0, result.stderr
    state_dict = torch.load(whole, weights_only=True)['state_dict']
    err = rel_err(classifier_logits(config, state_dict, images), logits)
    assert err < TOLERANCE[entry['kind']]
    only = torch.load(backbone, weights_only=True)['state_dict']
    official = official_to_backbone(read_pdparams(str(DATA / entry['file'])))
    assert list(only) == list(official)
    assert all(torch.equal(only[k], v) for k, v in official.items())


def test_entry_points_refuse_the_hostile_pickle(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = DATA / HOSTILE[0]['file']
    case = load_case(OFFICIAL[0]['case'])
    model = build_det_backbone(backbone_cfg(case, str(path)))
    with pytest.raises(ValueError, match='refers to posix.system'):
        model.init_weights()
    with pytest.raises(ValueError, match='refers to posix.system'):
        checkpoint_to_test(str(path), str(tmp_path), 'ImageClassifier')
    result = convert(path, tmp_path / 'out.pth')
    assert result.returncode != 0
    assert 'refers to posix.system' in result.stderr
    assert not (tmp_path / HOSTILE_MARKER).exists()
    assert not (tmp_path / 'out.pth').exists()


@pytest.mark.slow
def test_tools_test_takes_the_pdparams(tmp_path):
    """tools/test.py on an ImageNet config: the .pdparams predicts what its
    focal2mm conversion does."""
    entry = OFFICIAL[1]
    case = load_case(entry['case'])
    converted = tmp_path / 'converted.pth'
    assert convert(DATA / entry['file'], converted).returncode == 0
    scores = tools_test_scores(
        case, tmp_path, dict(converted=converted,
                             pdparams=DATA / entry['file']))
    assert torch.equal(scores['pdparams'], scores['converted'])
    assert os.path.isfile(tmp_path / 'pdparams' /
                          f"mmpretrain_{entry['file'][:-9]}.pth")
