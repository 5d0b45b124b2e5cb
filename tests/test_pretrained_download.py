"""Release checkpoints by URL: the configs name the official files, a URL is
downloaded once into the torch hub cache and read with ``weights_only=True``
(official format converted), tools/test.py takes the release file itself, and
a missing file or a failed download is an error that says why, where the
file survives and what to do instead, leaving nothing in the cache. The
Focal-fast-S release URL is downloaded from its surviving copy (Ascend
ModelZoo). The release storage's refusal (HTTP 409 with an XML error body),
the surviving copy, error pages served with status 200 and truncated
downloads are reproduced by a local http.server on 127.0.0.1; TORCH_HOME is
a temporary folder."""
import os.path as osp
import pickle
import re
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import NamedTuple, Optional
from urllib.parse import urlparse

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

from focal_mm.checkpoints import pretrained
from focal_mm.checkpoints.official import (mmpretrain_model_cfg,
                                           official_to_backbone,
                                           official_to_mmpretrain)
from focal_mm.checkpoints.pretrained import (RELEASE_URL, checkpoint_to_test,
                                             download_checkpoint)
from focal_mm.checkpoints.surviving_copies import RELEASE_FILES
from focal_mm.synthetic_data import make_imagenet
from conftest import REPO_ROOT, load_case
from test_tools import run
from toy_configs import official_case_classifier

CONFIG_DIR = REPO_ROOT / 'configs'
TINY = dict(embed_dims=16, depths=(1, 1, 2, 1), num_heads=(1, 2, 2, 4))


@pytest.fixture(scope='module')
def case():
    return load_case('conv_embed_prenorm_layerscale_224')


class Answer(NamedTuple):
    """What the server answers for one path instead of a served file:
    ``sent`` bytes of ``body`` (all if None) under a Content-Length of the
    whole body."""
    status: int
    body: bytes
    content_type: str = 'application/xml'
    sent: Optional[int] = None


# What the release storage answers since it refused public access (Azure
# sends its XML error bodies with a byte-order mark).
AZURE_REFUSAL = Answer(
    409, ('\ufeff<?xml version="1.0" encoding="utf-8"?><Error><Code>'
          'PublicAccessNotPermitted</Code><Message>Public access is not '
          'permitted on this storage account.\nRequestId:c635cdea-101e-0086-'
          '3153-396fa0000000\nTime:2024-11-18T00:47:30.1594977Z</Message>'
          '</Error>').encode())


# What the refusal of each release file says about its surviving copy.
PORT_LINES = {
    'focal-tiny-is224-ws7.pth': [
        'focal-tiny-is224-ws7.pth (Focal-T) survives as PaddleViT\'s port, a '
        '.pdparams file that focal_mm reads (82.03 % top-1 reported there, '
        'official 82.2 %):',
        '  Google Drive file id 1HzZJbYH_eIo94h0wLUhqTyJ6AYthNKRh (https://'
        'drive.google.com/file/d/1HzZJbYH_eIo94h0wLUhqTyJ6AYthNKRh/view)',
        '  Baidu Pan https://pan.baidu.com/s/1JCr2qIA-SZvTqbTO-m2OwA, code '
        'i8c2',
        '    --cfg-options model.backbone.init_cfg.checkpoint='
        'PATH/focal_tiny_patch4_window7_224.pdparams',
        '    python tools/test.py configs/focal_tiny_in1k.py '
        'PATH/focal_tiny_patch4_window7_224.pdparams',
    ],
    'focal-small-useconv-is224-ws7.pth': [
        '  Google Drive file id 1vcHjYiGNMayoSTPoM8z39XRH6h89TB9V (https://'
        'drive.google.com/file/d/1vcHjYiGNMayoSTPoM8z39XRH6h89TB9V/view)',
        '  Baidu Pan https://pan.baidu.com/s/174a2aZzCEt3teLuAnIzMtA, code '
        'nr7n',
        '    --cfg-options model.backbone.init_cfg.checkpoint='
        'PATH/focal_small_useconv_patch4_window7_224.pdparams',
    ],
}
NO_COPY_LINE = ('No surviving copy of {name} ({model}) is known: PaddleViT '
                'ported only the six Focal files, Ascend ModelZoo serves only '
                'Focal-fast-S.')


@pytest.fixture
def server(tmp_path, monkeypatch):
    """Serves ``root`` on 127.0.0.1 and records the paths requested; a path
    in ``answers`` gets that :class:`Answer` instead. The torch hub cache is
    inside ``tmp_path``."""
    root = tmp_path / 'served'
    root.mkdir()
    requests = []
    answers = {}

    class Handler(SimpleHTTPRequestHandler):

        def do_GET(self):
            requests.append(self.path)
            answer = answers.get(self.path)
            if answer is None:
                super().do_GET()
                return
            self.send_response(answer.status)
            self.send_header('Content-Type', answer.content_type)
            self.send_header('Content-Length', str(len(answer.body)))
            self.end_headers()
            self.wfile.write(answer.body[:answer.sent])
            self.close_connection = True

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
        requests=requests,
        answers=answers,
        cached=lambda: sorted(
            p.name for p in (tmp_path / 'torch_home').rglob('*')
            if p.is_file()))
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def assert_names_the_port(message, name):
    """``message`` has every line of PORT_LINES[name] as a line of its own."""
    lines = message.splitlines()
    assert all(line in lines for line in PORT_LINES[name]), message


def assert_ways_to_start(message, config):
    """``message`` ends with the ready options that replace the checkpoint,
    naming the ImageNet config ``config``, which exists and saves the
    ``epoch_300.pth`` that the message names."""
    lines = message.splitlines()
    assert '    --cfg-options model.backbone.init_cfg.checkpoint=PATH' in lines
    assert '    --cfg-options model.backbone.init_cfg=None' in lines
    assert ('  your own ImageNet-1K pretraining (python tools/train.py '
            f'configs/{config}.py):') in lines
    assert ('    --cfg-options model.backbone.init_cfg.checkpoint='
            f'work_dirs/{config}/epoch_300.pth') in lines
    cfg = Config.fromfile(str(CONFIG_DIR / f'{config}.py'))
    assert cfg.train_cfg.max_epochs == 300
    assert cfg.default_hooks.checkpoint.interval == 1


def backbone_cfg(case, checkpoint, version=1):
    """A detection backbone (every output, fine surroundings everywhere) of
    the official family ``version`` starting from ``checkpoint``."""
    cfg = mmpretrain_model_cfg(case['config'], version)['backbone']
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


def test_missing_local_file_says_what_to_do(tmp_path):
    from focal_mm.models import FocalTransformer
    path = tmp_path / 'checkpoints' / 'focal-tiny-is224-ws7.pth'
    model = FocalTransformer(
        arch=TINY, init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    with pytest.raises(FileNotFoundError) as err:
        model.init_weights()
    message = str(err.value)
    assert message.startswith(f'Checkpoint {path} does not exist.\n'
                              'focal-tiny-is224-ws7.pth is an official '
                              'release file. The official Focal Transformer '
                              'checkpoints cannot be downloaded')
    assert_names_the_port(message, 'focal-tiny-is224-ws7.pth')
    assert_ways_to_start(message, 'focal_tiny_in1k')


@pytest.mark.parametrize('name, config', [
    ('focal-tiny-is224-ws7.pth', 'focal_tiny_in1k'),
    ('focal-small-useconv-is224-ws7.pth', 'focal_small_useconv_in1k'),
    ('focalv2-tiny-useconv-is224-ws7.pth', 'focal_fast_tiny_in1k'),
    ('focalv2-base-useconv-is224-ws7.pth', 'focal_fast_base_in1k'),
])
def test_release_url_refused_says_why_and_what_to_do(server, monkeypatch, case,
                                                     name, config):
    """The storage's answer since 2023 (HTTP 409, PublicAccessNotPermitted)
    gives an error with the reason, where the file survives (a PaddleViT
    port: its Drive id, Baidu link and code, and the ready options for it,
    said to be unreached from our machines; Focal-fast-T / -B: that no copy
    is known), the ready options and where a copy of one's own is used
    from; nothing is cached, and a copy put there is used without asking
    the server."""
    from focal_mm.models import FocalTransformer
    release = server.url + 'model/focal-transformer/imagenet1k/'
    monkeypatch.setattr(pretrained, 'RELEASE_URL', release)
    url = release + name
    server.answers[urlparse(url).path] = AZURE_REFUSAL
    model = FocalTransformer(
        arch=TINY, init_cfg=dict(type='Pretrained', checkpoint=url))
    with pytest.raises(OSError) as err:
        model.init_weights()
    message = str(err.value)
    assert message.startswith(
        f'Could not download checkpoint {url}: HTTP Error 409: Conflict '
        '(PublicAccessNotPermitted: Public access is not permitted on this '
        'storage account.)\nThe official Focal Transformer checkpoints '
        'cannot be downloaded from their release URLs: the storage account '
        'behind them has refused public access since 2023')
    assert 'https://github.com/microsoft/Focal-Transformer/issues/27' in \
        message
    lines = message.splitlines()
    if name in PORT_LINES:
        assert_names_the_port(message, name)
        assert ('Neither link could be reached from the machines focal_mm '
                'was developed on: both are given as PaddleViT publishes '
                'them.') in lines
    else:
        model_name = RELEASE_FILES[name].model
        assert model_name in ('Focal-fast-T', 'Focal-fast-B')
        assert NO_COPY_LINE.format(name=name, model=model_name) in lines
        assert 'pdparams' not in message
    assert_ways_to_start(message, config)
    assert server.cached() == []

    copy = re.search(r'A copy saved as (\S+) is used', message).group(1)
    assert copy == osp.join(torch.hub.get_dir(), 'checkpoints', name)
    model = build_det_backbone(backbone_cfg(case, url))
    torch.save({'model': case['state_dict']}, copy)
    model.init_weights()
    state = model.state_dict()
    for key, value in official_to_backbone(case['state_dict']).items():
        assert torch.equal(state[key], value), key
    assert server.requests == [urlparse(url).path]


def test_docs_show_the_error_of_a_refused_release_url(server, monkeypatch):
    """docs/weights.md shows the whole error that the refusal of
    focal-tiny-is224-ws7.pth gives now (here from the loopback server, then
    written with the real release URL and torch's default cache)."""
    from focal_mm.models import FocalTransformer
    release = server.url + 'model/focal-transformer/imagenet1k/'
    monkeypatch.setattr(pretrained, 'RELEASE_URL', release)
    name = 'focal-tiny-is224-ws7.pth'
    server.answers[urlparse(release).path + name] = AZURE_REFUSAL
    model = FocalTransformer(
        arch=TINY, init_cfg=dict(type='Pretrained', checkpoint=release + name))
    with pytest.raises(OSError) as err:
        model.init_weights()
    message = str(err.value).replace(release, RELEASE_URL).replace(
        torch.hub.get_dir(), '~/.cache/torch/hub')
    docs = (REPO_ROOT / 'docs' / 'weights.md').read_text()
    assert f'```\n{message}\n```\n' in docs


FAST_S = 'focalv2-small-useconv-is224-ws7.pth'
ASCEND_PATH = ('/model/1_PyTorch_PTH/FocalvTransformer/PTH/'
               'focalv2-small-useconv-is224-ws7.pth')


@pytest.fixture
def ascend(server, monkeypatch):
    """The release storage (refusing every file, as since 2023) and Ascend
    ModelZoo's copy of Focal-fast-S, both on the loopback server; the copy
    is not put there (the test serves or refuses it). Gives the release URL
    of Focal-fast-S and the URL of its copy."""
    entry = RELEASE_FILES[FAST_S]
    assert entry.copy.url == ('https://ascend-repo-modelzoo.obs.cn-east-2.'
                              f'myhuaweicloud.com{ASCEND_PATH}')
    mirror = server.url + ASCEND_PATH[1:]
    monkeypatch.setitem(RELEASE_FILES, FAST_S,
                        entry._replace(copy=entry.copy._replace(url=mirror)))
    release = server.url + 'model/focal-transformer/imagenet1k/'
    monkeypatch.setattr(pretrained, 'RELEASE_URL', release)
    server.answers[urlparse(release).path + FAST_S] = AZURE_REFUSAL
    return SimpleNamespace(release_url=release + FAST_S, mirror_url=mirror)


def test_focal_fast_small_downloads_its_surviving_copy(server, ascend,
                                                       tmp_path):
    """A backbone that starts from the Focal-fast-S release URL gets the
    file from Ascend ModelZoo's copy, kept under the release name and read
    from there afterwards; tools/test.py's path takes the same copy. The
    release storage is never asked."""
    fast = load_case('v2_pool_conv_224', 'focal_v2')
    served = server.root / ASCEND_PATH[1:]
    served.parent.mkdir(parents=True)
    torch.save({'model': fast['state_dict']}, served)
    url = ascend.release_url
    expected = official_to_backbone(fast['state_dict'])
    for _ in range(2):
        model = build_det_backbone(backbone_cfg(fast, url, version=2))
        model.init_weights()
        state = model.state_dict()
        for key, value in expected.items():
            assert torch.equal(state[key], value), key
    assert server.requests == [ASCEND_PATH]
    assert server.cached() == [FAST_S]
    assert download_checkpoint(url) == osp.join(torch.hub.get_dir(),
                                                'checkpoints', FAST_S)
    tested = checkpoint_to_test(url, str(tmp_path / 'work'),
                                'ImageClassifier')
    assert osp.basename(tested) == f'mmpretrain_{FAST_S}'
    assert server.requests == [ASCEND_PATH]


@pytest.mark.parametrize('answer, problem', [
    (None, 'HTTP Error 404: File not found'),
    (Answer(200, b'<html>Access Denied</html>', 'text/html'),
     'the file received is not a PyTorch checkpoint: it starts with '
     "'<html>Access Denied</html>'"),
], ids=['gone', 'error_page'])
def test_failed_surviving_copy_download_names_its_url(server, ascend, answer,
                                                      problem):
    """When Ascend ModelZoo's copy cannot be had (gone, or an error page in
    its place), the error names its URL and what came, says where the file
    survives and that we could not reach it, and leaves the cache clean, so
    the next run tries again."""
    if answer is not None:
        server.answers[ASCEND_PATH] = answer
    url = ascend.release_url
    for _ in range(2):
        model = build_det_backbone(
            backbone_cfg(load_case('v2_pool_conv_224', 'focal_v2'), url, 2))
        with pytest.raises(OSError) as err:
            model.init_weights()
        message = str(err.value)
        assert message.startswith(
            f'Could not download checkpoint {url} (from its surviving copy '
            f'{ascend.mirror_url}): {problem}\nThe official Focal '
            'Transformer checkpoints cannot be downloaded from their release '
            'URLs')
        lines = message.splitlines()
        assert ('focalv2-small-useconv-is224-ws7.pth (Focal-fast-S) survives '
                'at Ascend ModelZoo (83.586 % top-1 reported there, official '
                '83.6 %), downloaded from there in place of its release URL:'
                ) in lines
        assert f'  {ascend.mirror_url}' in lines
        assert ('This URL could not be reached from the machines focal_mm '
                'was developed on: it is given as Ascend ModelZoo publishes '
                'it.') in lines
        assert_ways_to_start(message, 'focal_fast_small_in1k')
        assert server.cached() == []
    assert server.requests == [ASCEND_PATH] * 2


def test_failed_download_names_the_url(server):
    """Another URL that fails gets a plain error naming it, without the
    release storage's story; a release file's name still gets where the file
    survives, and the same ready options."""
    from focal_mm.models import FocalTransformer
    url = server.url + 'focal-tiny-is224-ws7.pth'
    model = FocalTransformer(
        arch=TINY, init_cfg=dict(type='Pretrained', checkpoint=url))
    with pytest.raises(OSError) as err:
        model.init_weights()
    message = str(err.value)
    assert message.startswith(f'Could not download checkpoint {url}: HTTP '
                              'Error 404: File not found\n'
                              'focal-tiny-is224-ws7.pth (Focal-T) survives '
                              'as PaddleViT\'s port')
    assert_names_the_port(message, 'focal-tiny-is224-ws7.pth')
    assert 'A copy saved as ' in message
    assert 'public access' not in message
    assert_ways_to_start(message, 'focal_tiny_in1k')
    assert server.cached() == []


def test_error_page_served_as_a_checkpoint_is_not_kept(server):
    """A storage error page served with status 200 (as a proxy or a captive
    portal does) is not a checkpoint: the error says so, with what the file
    starts with, and nothing is cached, so the next run downloads again."""
    from focal_mm.models import FocalTransformer
    url = server.url + 'focal-tiny-is224-ws7.pth'
    server.answers['/focal-tiny-is224-ws7.pth'] = Answer(
        200, b'<?xml version="1.0" encoding="utf-8"?><Error><Code>'
        b'AuthenticationFailed</Code></Error>')
    for _ in range(2):
        model = FocalTransformer(
            arch=TINY, init_cfg=dict(type='Pretrained', checkpoint=url))
        with pytest.raises(OSError) as err:
            model.init_weights()
        assert str(err.value).startswith(
            f'Could not download checkpoint {url}: the file received is not '
            'a PyTorch checkpoint: it starts with \'<?xml version="1.0" '
            'encoding="utf-8"?><Error><Code>AuthenticationFailed')
        assert server.cached() == []
    assert server.requests == ['/focal-tiny-is224-ws7.pth'] * 2


def test_truncated_download_is_not_kept(server, case):
    """A download that ends early (the server announced the whole file and
    sent half) is refused and not cached."""
    whole = server.root / 'whole.pth'
    torch.save({'model': case['state_dict']}, whole)
    data = whole.read_bytes()
    server.answers['/focal.pth'] = Answer(
        200, data, 'application/octet-stream', sent=len(data) // 2)
    url = server.url + 'focal.pth'
    with pytest.raises(OSError) as err:
        checkpoint_to_test(url, str(server.root), 'ImageClassifier')
    assert str(err.value).startswith(
        f'Could not download checkpoint {url}: the file received is not a '
        'complete PyTorch checkpoint (truncated or corrupt?)')
    assert ('  your own ImageNet-1K pretraining (python tools/train.py '
            'configs/CONFIG.py, the focal_*_in1k config of your backbone):'
            ) in str(err.value).splitlines()
    assert server.cached() == []


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


def tools_test_scores(case, tmp_path, checkpoints: dict) -> dict:
    """tools/test.py on a tiny ImageNet classifier config of a reference
    case, once per checkpoint (name -> path or URL), each with every weight
    loaded: name -> the prediction scores of its 3 x 10 images."""
    root = make_imagenet(
        str(tmp_path / 'imagenet'), per_class_train=1, per_class_val=1)
    cfg = official_case_classifier(case, root, str(tmp_path / 'work'))
    config = tmp_path / 'cls.py'
    cfg.dump(str(config))
    scores = {}
    for name, checkpoint in checkpoints.items():
        preds = tmp_path / f'{name}.pkl'
        out = run('test.py', config, checkpoint, '--work-dir',
                  tmp_path / name, '--out', preds)
        assert 'accuracy/top1' in out
        assert 'do not match exactly' not in out  # every weight loaded
        with open(preds, 'rb') as f:
            scores[name] = torch.stack(
                [p['pred_score'] for p in pickle.load(f)])
        assert scores[name].shape == (3, 10)
    return scores


@pytest.mark.slow
def test_tools_test_takes_the_official_file(server, case, tmp_path):
    """tools/test.py on an ImageNet config: the release file by URL or local
    path predicts what the converted file does."""
    official = server.root / 'focal-case.pth'
    torch.save({'model': case['state_dict']}, official)
    converted = tmp_path / 'converted.pth'
    torch.save({'state_dict': official_to_mmpretrain(case['state_dict'])},
               converted)

    scores = tools_test_scores(
        case, tmp_path,
        dict(converted=converted, url=server.url + 'focal-case.pth',
             local=official))
    assert torch.equal(scores['url'], scores['converted'])
    assert torch.equal(scores['local'], scores['converted'])
    assert server.requests == ['/focal-case.pth']
    assert (tmp_path / 'url' / 'mmpretrain_focal-case.pth').is_file()
