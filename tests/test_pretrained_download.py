"""Release checkpoints by URL: the configs name the official files, a URL is
downloaded once into the torch hub cache and read with ``weights_only=True``
(official format converted), tools/test.py takes the release file itself, and
a missing file or a failed download is an error. Files are served from a
local http.server on 127.0.0.1; TORCH_HOME is a temporary folder."""
import os.path as osp
import pickle
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

from focal_mm.models.pretrained import (RELEASE_URL, checkpoint_to_test,
                                        download_checkpoint)
from focal_mm.official import (mmpretrain_model_cfg, official_to_backbone,
                               official_to_mmpretrain)
from focal_mm.synthetic_data import make_imagenet
from conftest import REPO_ROOT, load_case
from test_tools import run
from toy_configs import official_case_classifier

CONFIG_DIR = REPO_ROOT / 'configs'
TINY = dict(embed_dims=16, depths=(1, 1, 2, 1), num_heads=(1, 2, 2, 4))


@pytest.fixture(scope='module')
def case():
    return load_case('conv_embed_prenorm_layerscale_224')


@pytest.fixture
def server(tmp_path, monkeypatch):
    """Serves ``root`` on 127.0.0.1 and records the paths requested; the
    torch hub cache is inside ``tmp_path``."""
    root = tmp_path / 'served'
    root.mkdir()
    requests = []

    class Handler(SimpleHTTPRequestHandler):

        def do_GET(self):
            requests.append(self.path)
            super().do_GET()

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(('127.0.0.1', 0),
                                partial(Handler, directory=str(root)))
    thread = threading.Thread(
        target=httpd.serve_forever, args=(0.05, ), daemon=True)
    thread.start()
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    for var in ('http_proxy', 'HTTP_PROXY', 'https_proxy', 'HTTPS_PROXY'):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv('no_proxy', '127.0.0.1')
    monkeypatch.setenv('NO_PROXY', '127.0.0.1')
    assert str(tmp_path) in torch.hub.get_dir()
    yield SimpleNamespace(
        root=root,
        url=f'http://127.0.0.1:{httpd.server_address[1]}/',
        requests=requests)
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def backbone_cfg(case, checkpoint):
    """A detection backbone (every output, fine surroundings everywhere)
    starting from ``checkpoint``."""
    cfg = mmpretrain_model_cfg(case['config'])['backbone']
    cfg.update(
        img_size=None,
        out_indices=(0, 1, 2, 3),
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint))
    return cfg


def build_det_backbone(cfg):
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    with DefaultScope.overwrite_default_scope('mmdet'):
        return MODELS.build(cfg)


def test_configs_name_the_release_urls():
    """Every config that starts from ImageNet names the release file of its
    backbone under RELEASE_URL (Focal: plain for detection, useconv for
    UperNet; Focal-fast: "focalv2-"); Focal-L and the classifiers start from
    nothing (tools/test.py takes the checkpoint)."""
    focal = {}
    for path in sorted(CONFIG_DIR.glob('*.py')):
        cfg = Config.fromfile(str(path))
        backbone = cfg.model.backbone
        assert cfg.get('load_from') is None, path.name
        if backbone.get('init_cfg') is None:
            continue
        assert backbone.init_cfg.type == 'Pretrained', path.name
        family = 'focalv2' if backbone.type == 'FocalFastTransformer' \
            else 'focal'
        conv = '-useconv' if backbone.get('use_conv_embed') else ''
        assert backbone.init_cfg.checkpoint == (
            f'{RELEASE_URL}{family}-{backbone.arch}{conv}-is224-ws7.pth'), \
            path.name
        if family == 'focal':
            focal[path.stem] = conv
    assert all(conv == ('-useconv' if name.startswith('upernet') else '')
               for name, conv in focal.items())
    assert len(focal) == 19  # 16 detectors, UperNet T / S / B
    assert not any('large' in name or 'in1k' in name for name in focal)
    base = Config.fromfile(
        str(CONFIG_DIR / '_base_' / 'focal_in1k_checkpoints.py'))
    assert base.focal_in1k_url == RELEASE_URL


def test_official_file_by_url_as_detection_backbone_init(server, case):
    torch.save({'model': case['state_dict']}, server.root / 'focal.pth')
    url = server.url + 'focal.pth'
    expected = official_to_backbone(case['state_dict'])
    for _ in range(2):
        model = build_det_backbone(backbone_cfg(case, url))
        model.init_weights()
        state = model.state_dict()
        for key, value in expected.items():
            assert torch.equal(state[key], value), key
    # Downloaded once; the second load read the cache.
    assert server.requests == ['/focal.pth']
    assert download_checkpoint(url) == osp.join(torch.hub.get_dir(),
                                                'checkpoints', 'focal.pth')


def test_missing_local_file_names_it_and_the_release_url(tmp_path):
    from focal_mm.models import FocalTransformer
    path = tmp_path / 'checkpoints' / 'focal-tiny-is224-ws7.pth'
    model = FocalTransformer(
        arch=TINY, init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    with pytest.raises(FileNotFoundError) as err:
        model.init_weights()
    assert str(path) in str(err.value)
    assert f'{RELEASE_URL}focal-tiny-is224-ws7.pth' in str(err.value)
    assert 'init_cfg=None' in str(err.value)


def test_failed_download_names_the_url(server):
    from focal_mm.models import FocalTransformer
    url = server.url + 'focal-tiny-is224-ws7.pth'
    model = FocalTransformer(
        arch=TINY, init_cfg=dict(type='Pretrained', checkpoint=url))
    with pytest.raises(OSError, match=f'Could not download checkpoint {url}'
                       '.*404'):
        model.init_weights()
    assert not [p for p in (server.root.parent / 'torch_home').rglob('*')
                if p.is_file()]


class _CreatesMarker:
    """Unpickling this object creates a file: stands for arbitrary code."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), 'w'))


def test_url_with_pickled_code_is_refused_and_never_runs(
        server, case, tmp_path):
    marker = tmp_path / 'marker'
    torch.save({
        'model': case['state_dict'],
        'x': _CreatesMarker(marker)
    }, server.root / 'hostile.pth')
    url = server.url + 'hostile.pth'
    model = build_det_backbone(backbone_cfg(case, url))
    with pytest.raises(ValueError, match=f'{url}.*pickled Python objects'):
        model.init_weights()
    with pytest.raises(ValueError, match='pickled Python objects'):
        checkpoint_to_test(url, str(tmp_path / 'work'), 'ImageClassifier')
    assert not marker.exists()


def test_checkpoint_that_fits_neither_is_refused(tmp_path, case):
    backbone_only = tmp_path / 'backbone.pth'
    torch.save({'state_dict': official_to_backbone(case['state_dict'])},
               backbone_only)
    with pytest.raises(ValueError, match='neither an official'):
        checkpoint_to_test(
            str(backbone_only), str(tmp_path), 'ImageClassifier')
    official = tmp_path / 'official.pth'
    torch.save({'model': case['state_dict']}, official)
    with pytest.raises(ValueError, match='configs/focal_.*_in1k.py'):
        checkpoint_to_test(str(official), str(tmp_path), 'MaskRCNN')


@pytest.mark.slow
def test_tools_test_takes_the_official_file(server, case, tmp_path):
    """tools/test.py on an ImageNet config: the release file by URL or local
    path predicts what the converted file does."""
    official = server.root / 'focal-case.pth'
    torch.save({'model': case['state_dict']}, official)
    converted = tmp_path / 'converted.pth'
    torch.save({'state_dict': official_to_mmpretrain(case['state_dict'])},
               converted)

    root = make_imagenet(
        str(tmp_path / 'imagenet'), per_class_train=1, per_class_val=1)
    cfg = official_case_classifier(case, root, str(tmp_path / 'work'))
    config = tmp_path / 'cls.py'
    cfg.dump(str(config))

    scores = {}
    for name, checkpoint in (('converted', converted),
                             ('url', server.url + 'focal-case.pth'),
                             ('local', official)):
        preds = tmp_path / f'{name}.pkl'
        out = run('test.py', config, checkpoint, '--work-dir',
                  tmp_path / name, '--out', preds)
        assert 'accuracy/top1' in out
        assert 'do not match exactly' not in out  # every weight loaded
        with open(preds, 'rb') as f:
            scores[name] = torch.stack(
                [p['pred_score'] for p in pickle.load(f)])
    assert scores['converted'].shape == (3, 10)
    assert torch.equal(scores['url'], scores['converted'])
    assert torch.equal(scores['local'], scores['converted'])
    assert server.requests == ['/focal-case.pth']
    assert (tmp_path / 'url' / 'mmpretrain_focal-case.pth').is_file()
