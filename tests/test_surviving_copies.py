"""The table of where the official release files survive
(focal_mm/checkpoints/surviving_copies.py) against the release, the configs
and the documents that show it: the README's weights table, the model zoo's
"official weights" column, docs/weights.md and metafile.yml say what the
table says."""
import re

import pytest
import yaml
from mmengine.config import Config

from focal_mm.checkpoints.pretrained import RELEASE_URL
from focal_mm.checkpoints.surviving_copies import (RELEASE_FILES, Mirror,
                                                   PaddleViTPort)
from conftest import REPO_ROOT

CONFIG_DIR = REPO_ROOT / 'configs'
README = (REPO_ROOT / 'README.md').read_text()
SIZES = ('tiny', 'small', 'base')


def section(text, title):
    """The text of the Markdown section ``title`` (up to the next heading
    of the same or a higher level)."""
    start = re.search(rf'^(#+) {re.escape(title)}\n', text, re.MULTILINE)
    assert start, title
    level = len(start.group(1))
    end = re.compile(rf'^#{{1,{level}}} ', re.MULTILINE).search(
        text, start.end())
    return text[start.end():end.start() if end else None]


def weights_row(name):
    """The README weights table's row of release file ``name``."""
    release = RELEASE_FILES[name]
    copy = release.copy
    if isinstance(copy, PaddleViTPort):
        where = (f'PaddleViT port: [Google Drive]({copy.drive_url}), '
                 f'[Baidu Pan]({copy.baidu_url}) (code {copy.baidu_code})')
        use = (f'`python tools/test.py configs/{release.config}.py '
               f'{copy.file_name}`')
    elif isinstance(copy, Mirror):
        where = (f'[{copy.source}]({copy.url}): the file itself, downloaded '
                 'by itself')
        use = f'`python tools/test.py configs/{release.config}.py {copy.url}`'
    else:
        where = 'none known'
        use = ('none; pretrain your own: `python tools/train.py '
               f'configs/{release.config}.py`')
    there = '-' if copy is None else copy.top1
    return (f'| `{name}` | {release.model} | {where} | {there} / '
            f'{release.official_top1} | {use} |')


def zoo_mark(config_name):
    """What the model zoo's "official weights" column says for a config:
    the kind of surviving copy of the release file it starts from (a
    classifier: the file of its model)."""
    by_config = {r.config: r for r in RELEASE_FILES.values()}
    release = by_config.get(config_name)
    if release is None:
        init = Config.fromfile(str(CONFIG_DIR / f'{config_name}.py')
                               ).model.backbone.get('init_cfg')
        if init is None:
            return '-'
        assert init.checkpoint.startswith(RELEASE_URL), config_name
        release = RELEASE_FILES[init.checkpoint[len(RELEASE_URL):]]
    return {
        PaddleViTPort: 'port',
        Mirror: 'downloads',
        type(None): '-'
    }[type(release.copy)]


def test_table_holds_the_release_and_its_configs():
    """The nine released ImageNet-1K files, each with the classifier config
    of its model (backbone family, size and patch embedding checked), the
    official top-1 of the official README, and its copy: the six Focal
    files as PaddleViT ports under the names PaddleViT's port scripts save,
    Focal-fast-S at Ascend ModelZoo, Focal-fast-T and -B nowhere."""
    expected = {
        f'focal-{size}{conv}-is224-ws7.pth'
        for size in SIZES for conv in ('', '-useconv')
    } | {f'focalv2-{size}-useconv-is224-ws7.pth' for size in SIZES}
    assert set(RELEASE_FILES) == expected
    official = {
        'focal-tiny': '82.2', 'focal-tiny-useconv': '82.7',
        'focal-small': '83.6', 'focal-small-useconv': '83.8',
        'focal-base': '84.0', 'focal-base-useconv': '84.2',
        'focalv2-tiny-useconv': '82.4', 'focalv2-small-useconv': '83.6',
        'focalv2-base-useconv': '84.0'
    }
    for name, release in RELEASE_FILES.items():
        stem = name[:-len('-is224-ws7.pth')]
        assert release.official_top1 == official[stem], name
        fast, size = name.startswith('focalv2'), stem.split('-')[1]
        backbone = Config.fromfile(
            str(CONFIG_DIR / f'{release.config}.py')).model.backbone
        assert backbone.type == ('FocalFastTransformer'
                                 if fast else 'FocalTransformer'), name
        assert backbone.arch == size, name
        assert backbone.get('use_conv_embed', False) == ('useconv' in name)
        if not fast:
            assert isinstance(release.copy, PaddleViTPort), name
            assert release.copy.file_name == (
                stem.replace('-', '_') + '_patch4_window7_224.pdparams')
    assert isinstance(RELEASE_FILES['focalv2-small-useconv-is224-ws7.pth']
                      .copy, Mirror)
    assert RELEASE_FILES['focalv2-tiny-useconv-is224-ws7.pth'].copy is None
    assert RELEASE_FILES['focalv2-base-useconv-is224-ws7.pth'].copy is None


def test_readme_weights_table_is_the_code_table():
    """The README's weights table has one row per release file, in the
    table's order, saying what the code table says; the section says that
    the sources could not be reached, and gives the evaluation recipe with
    its expected (not measured) figure."""
    weights = section(README, 'Weights')
    rows = [
        line for line in weights.splitlines() if line.startswith('| `')
    ]
    assert rows == [weights_row(name) for name in RELEASE_FILES]
    text = ' '.join(weights.split())
    assert 'Neither source could be reached from our machines' in text
    assert ('`python tools/test.py configs/focal_tiny_in1k.py '
            'focal_tiny_patch4_window7_224.pdparams` should give 82.2 % '
            'top-1') in text
    assert 'We have not measured it' in text
    banner = ' '.join(
        re.sub(r'^> ?', '', README[:README.index('## Install')],
               flags=re.MULTILINE).split())
    assert 'the release URLs refuse access, but 7 of the 9 files survive' \
        in banner


@pytest.mark.parametrize('title', [
    'COCO detection and instance segmentation',
    'ADE20K semantic segmentation (UperNet, 160k iterations)',
    'ImageNet-1K classification', 'Focal-fast'
])
def test_model_zoo_marks_the_rows_with_official_weights(title):
    """Each model zoo row ends with whether its config can start from (a
    classifier: evaluate) the official weights, as the code table and the
    config's init_cfg say."""
    table = section(section(README, 'Model zoo'), title)
    rows = re.findall(r'^\| \[(\w+)\]\(configs/\w+\.py\) \|.*\| (\S+) \|$',
                      table, re.MULTILINE)
    assert rows and len(rows) == table.count('\n| [')
    assert '| official weights |' in table
    for config_name, mark in rows:
        assert mark == zoo_mark(config_name), config_name


def test_docs_and_metafile_name_the_copies():
    """docs/weights.md gives every port's Drive id, Baidu link and code,
    saved name and figures, and the Ascend URL; metafile.yml's weights of
    each classifier point to its copy (Focal-fast-S: the Ascend URL
    itself)."""
    docs = (REPO_ROOT / 'docs' / 'weights.md').read_text()
    assert 'Neither source could be reached' in docs
    with open(REPO_ROOT / 'metafile.yml') as f:
        weights = {
            m['Config']: m.get('Weights')
            for m in yaml.safe_load(f)['Models']
        }
    for name, release in RELEASE_FILES.items():
        copy = release.copy
        entry = weights[f'configs/{release.config}.py']
        if isinstance(copy, PaddleViTPort):
            row = next(line for line in docs.splitlines()
                       if line.startswith(f'| `{name}` |'))
            for value in (f'`{copy.drive_id}`', f'[{copy.baidu_id}]'
                          f'({copy.baidu_url}), {copy.baidu_code}',
                          f'`{copy.file_name}`',
                          f'{copy.top1} / {release.official_top1}'):
                assert value in row, (name, value)
            assert entry.startswith(RELEASE_URL + name)
            assert copy.drive_id in entry
        elif isinstance(copy, Mirror):
            assert copy.url in docs
            assert entry == copy.url
        else:
            assert entry.startswith(RELEASE_URL + name)
            assert 'no surviving copy is known' in entry
