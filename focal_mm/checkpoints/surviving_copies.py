# Copyright (c) focal_mm contributors. All rights reserved.
"""Where the official ImageNet-1K release files survive.

The release storage refuses public access (see
:data:`~focal_mm.checkpoints.pretrained.RELEASE_GONE`), but seven of its
nine files survive in two public places:

- PaddleViT (BR-IDL/PaddleViT, ``image_classification/Focal_Transformer``)
  publishes ports of the six Focal files as ``.pdparams`` files, on Google
  Drive and Baidu Pan; focal_mm reads them.
- Ascend ModelZoo (Ascend/ModelZoo-PyTorch,
  ``ACL_PyTorch/contrib/cv/classfication/FocalTransformer``) serves the
  Focal-fast-S file itself; it is downloaded in place of its release URL.

Neither place could be reached from the machines focal_mm was developed on:
the links and top-1 figures are the ones the two projects publish, and the
files themselves have not been downloaded or evaluated by us.

:data:`RELEASE_FILES` is the one table of them: the error messages of
:mod:`.pretrained` describe a file's copy from it, and the tests check the
README's weights table against it.
"""
from typing import Dict, List, NamedTuple, Optional, Union

# Said wherever a surviving copy is named (see the module docstring).
PORT_NOT_REACHED = ('Neither link could be reached from the machines '
                    'focal_mm was developed on: both are given as PaddleViT '
                    'publishes them.')
MIRROR_NOT_REACHED = ('This URL could not be reached from the machines '
                      'focal_mm was developed on: it is given as {source} '
                      'publishes it.')


class PaddleViTPort(NamedTuple):
    """PaddleViT's port of a release file, a ``.pdparams`` file.

    Args:
        drive_id: its Google Drive file id.
        baidu_id: its Baidu Pan share id (``https://pan.baidu.com/s/<id>``).
        baidu_code: the share's extraction code.
        file_name: the name PaddleViT's port script saves it under.
        top1: the ImageNet-1K val top-1 (%) PaddleViT reports for it, as it
            is written there.
    """
    drive_id: str
    baidu_id: str
    baidu_code: str
    file_name: str
    top1: str

    @property
    def drive_url(self) -> str:
        return f'https://drive.google.com/file/d/{self.drive_id}/view'

    @property
    def baidu_url(self) -> str:
        return f'https://pan.baidu.com/s/{self.baidu_id}'


class Mirror(NamedTuple):
    """A copy of the release file itself, served under its release name at
    ``url`` by ``source``, which reports ``top1`` (%) on ImageNet-1K val for
    it."""
    url: str
    source: str
    top1: str


class ReleaseFile(NamedTuple):
    """One file of the official ImageNet-1K release.

    Args:
        model: the model's name in the official README (``'Focal-T'``).
        config: the classifier config that builds the model
            (``configs/<config>.py``).
        official_top1: the top-1 (%) the official README gives for it.
        copy: where it survives, None if nowhere known.
    """
    model: str
    config: str
    official_top1: str
    copy: Union[PaddleViTPort, Mirror, None]


ASCEND_MODELZOO = 'Ascend ModelZoo'

# Official top-1 figures: the official repository's README (the arXiv v1
# paper gives Focal-S 83.5, Focal-B 83.8). Ports and mirror: their READMEs.
RELEASE_FILES: Dict[str, ReleaseFile] = {
    'focal-tiny-is224-ws7.pth':
    ReleaseFile(
        'Focal-T', 'focal_tiny_in1k', '82.2',
        PaddleViTPort('1HzZJbYH_eIo94h0wLUhqTyJ6AYthNKRh',
                      '1JCr2qIA-SZvTqbTO-m2OwA', 'i8c2',
                      'focal_tiny_patch4_window7_224.pdparams', '82.03')),
    'focal-tiny-useconv-is224-ws7.pth':
    ReleaseFile(
        'Focal-T useconv', 'focal_tiny_useconv_in1k', '82.7',
        PaddleViTPort('1PS0-gdXHGl95LqH5k5DG62AH6D3i7v0D',
                      '1tVztox4bVJuJEjkD1fLaHQ', 'smrk',
                      'focal_tiny_useconv_patch4_window7_224.pdparams',
                      '82.70')),
    'focal-small-is224-ws7.pth':
    ReleaseFile(
        'Focal-S', 'focal_small_in1k', '83.6',
        PaddleViTPort('1HnVAYsI_hmiomyS4Ax3ccPE7gk4mlTU8',
                      '1b7uugAY9RhrgTkUwYcvvow', 'dwd8',
                      'focal_small_patch4_window7_224.pdparams', '83.55')),
    'focal-small-useconv-is224-ws7.pth':
    ReleaseFile(
        'Focal-S useconv', 'focal_small_useconv_in1k', '83.8',
        PaddleViTPort('1vcHjYiGNMayoSTPoM8z39XRH6h89TB9V',
                      '174a2aZzCEt3teLuAnIzMtA', 'nr7n',
                      'focal_small_useconv_patch4_window7_224.pdparams',
                      '83.85')),
    'focal-base-is224-ws7.pth':
    ReleaseFile(
        'Focal-B', 'focal_base_in1k', '84.0',
        PaddleViTPort('1bNMegxetWpwZNcmDEC3MHCal6SNXSgWR',
                      '1piBslNhxWR78aQJIdoZjEw', '8akn',
                      'focal_base_patch4_window7_224.pdparams', '83.98')),
    'focal-base-useconv-is224-ws7.pth':
    ReleaseFile(
        'Focal-B useconv', 'focal_base_useconv_in1k', '84.2',
        PaddleViTPort('1-J2gDnKrvZGtasvsAYozrbMXR2LtIJ43',
                      '1GTLfnTlt6I6drPdfSWB1Iw', '5nfi',
                      'focal_base_useconv_patch4_window7_224.pdparams',
                      '84.18')),
    'focalv2-tiny-useconv-is224-ws7.pth':
    ReleaseFile('Focal-fast-T', 'focal_fast_tiny_in1k', '82.4', None),
    'focalv2-small-useconv-is224-ws7.pth':
    ReleaseFile(
        'Focal-fast-S', 'focal_fast_small_in1k', '83.6',
        Mirror(
            'https://ascend-repo-modelzoo.obs.cn-east-2.myhuaweicloud.com/'
            'model/1_PyTorch_PTH/FocalvTransformer/PTH/'
            'focalv2-small-useconv-is224-ws7.pth', ASCEND_MODELZOO, '83.586')),
    'focalv2-base-useconv-is224-ws7.pth':
    ReleaseFile('Focal-fast-B', 'focal_fast_base_in1k', '84.0', None),
}


def mirror_url(name: str) -> Optional[str]:
    """The URL that serves release file ``name`` itself, or None (no such
    copy known, or ``name`` is not a release file)."""
    release = RELEASE_FILES.get(name)
    if release is not None and isinstance(release.copy, Mirror):
        return release.copy.url
    return None


def surviving_copy_lines(name: str) -> List[str]:
    """What an error message says about release file ``name``: where it
    survives, the top-1 reported there against the official one, and the
    ready options that use it; ``[]`` for a name that is not a release
    file."""
    release = RELEASE_FILES.get(name)
    if release is None:
        return []
    copy = release.copy
    if copy is None:
        return [
            f'No surviving copy of {name} ({release.model}) is known: '
            'PaddleViT ported only the six Focal files, Ascend ModelZoo '
            'serves only Focal-fast-S.'
        ]
    figures = (f'{copy.top1} % top-1 reported there, official '
               f'{release.official_top1} %')
    if isinstance(copy, Mirror):
        return [
            f'{name} ({release.model}) survives at {copy.source} '
            f'({figures}), downloaded from there in place of its release '
            f'URL:', f'  {copy.url}',
            MIRROR_NOT_REACHED.format(source=copy.source)
        ]
    pdparams = f'PATH/{copy.file_name}'
    return [
        f'{name} ({release.model}) survives as PaddleViT\'s port, a '
        f'.pdparams file that focal_mm reads ({figures}):',
        f'  Google Drive file id {copy.drive_id} ({copy.drive_url})',
        f'  Baidu Pan {copy.baidu_url}, code {copy.baidu_code}',
        PORT_NOT_REACHED,
        f'Saved as {pdparams} (the name PaddleViT\'s port script gives it), '
        'it starts the backbone of a tools/train.py run with',
        f'    --cfg-options model.backbone.init_cfg.checkpoint={pdparams}',
        'and the classifier evaluates it with',
        f'    python tools/test.py configs/{release.config}.py {pdparams}',
    ]
