"""The OpenMMLab stack that focal_mm relies on is installed and usable.

Fails if the environment is broken: compiled mmcv ops, torchvision's ops
(mmpretrain imports torchvision, mmdet imports mmpretrain), the project's
modules visible from the mmdet / mmseg / mmpretrain default scopes, mmengine
checkpoints loadable under torch's weights_only default, and ``mmdet::``
config inheritance (needs pkg_resources at run time).
"""
import importlib

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

import focal_mm

BOXES = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.],
                      [20., 20., 30., 30.]])
SCORES = torch.tensor([0.9, 0.8, 0.7])


def test_pinned_versions():
    import mmcv
    import mmdet
    import mmengine
    import mmpretrain
    import mmseg
    import torchvision
    assert torch.__version__.split('+')[0] == '2.13.0'
    assert torchvision.__version__.split('+')[0] == '0.28.0'
    assert (mmengine.__version__, mmcv.__version__) == ('0.10.7', '2.1.0')
    assert (mmdet.__version__, mmseg.__version__,
            mmpretrain.__version__) == ('3.3.0', '1.2.2', '1.2.0')
    assert np.__version__.startswith('1.')


def test_mmcv_compiled_ops():
    from mmcv.ops import nms, roi_align
    _, keep = nms(BOXES, SCORES, 0.5)
    assert keep.tolist() == [0, 2]
    feats = torch.arange(64.).view(1, 1, 8, 8)
    rois = torch.tensor([[0., 0., 0., 4., 4.]])
    assert roi_align(feats, rois, (2, 2), 1.0, 2).shape == (1, 1, 2, 2)


def test_torchvision_ops():
    import torchvision
    assert torchvision.ops.nms(BOXES, SCORES, 0.5).tolist() == [0, 2]


@pytest.mark.parametrize('scope', ['mmdet', 'mmseg', 'mmpretrain'])
def test_registered_modules_build_from_each_scope(scope):
    lib = importlib.import_module(f'{scope}.utils')
    lib.register_all_modules(init_default_scope=False)
    registry = importlib.import_module(f'{scope}.registry').MODELS
    with DefaultScope.overwrite_default_scope(scope):
        backbone = registry.build(
            dict(
                type='FocalTransformer',
                arch=dict(embed_dims=8, depths=(1, 1), num_heads=(1, 2)),
                img_size=None,
                focal_windows=(7, 5),
                out_indices=(0, 1)))
        attn = registry.build(
            dict(type='FocalAttention', embed_dims=8, num_heads=2))
    assert isinstance(backbone, focal_mm.FocalTransformer)
    assert isinstance(attn, focal_mm.FocalAttention)
    outs = backbone(torch.randn(1, 3, 64, 64))
    assert [o.shape[1] for o in outs] == [8, 16]


def test_mmseg_text_dependencies():
    import mmseg.models  # noqa: F401  (imports ftfy and regex)


def test_mmengine_checkpoint_loads_with_weights_only(tmp_path):
    """What ``--resume`` and ``load_from`` read: a runner checkpoint with the
    message hub's HistoryBuffer, numpy values and a ConfigDict."""
    from mmengine.config import ConfigDict
    from mmengine.logging import HistoryBuffer
    from mmengine.runner.checkpoint import _load_checkpoint
    buffer = HistoryBuffer()
    buffer.update(np.float64(0.5))
    ckpt = dict(
        meta=dict(epoch=1, seed=np.int64(3), cfg=ConfigDict(a=1)),
        message_hub=dict(log_scalars={'loss': buffer}),
        state_dict={'w': torch.ones(2)})
    path = tmp_path / 'epoch_1.pth'
    torch.save(ckpt, path)
    loaded = _load_checkpoint(str(path), map_location='cpu')
    assert loaded['meta']['seed'] == 3
    assert loaded['message_hub']['log_scalars']['loss'].current() == 0.5


class _GetattrExploit:
    """Unpickles to getattr(HistoryBuffer, '__init__'): not a statistic."""

    def __reduce__(self):
        from mmengine.logging import HistoryBuffer
        return (getattr, (HistoryBuffer, '__init__'))


@pytest.mark.parametrize(
    'payload, match',
    [
        (Config(dict(a=1)), 'Unsupported global'),  # not allow-listed
        (_GetattrExploit(), r'Refused getattr'),
    ])
def test_other_pickled_objects_are_still_refused(tmp_path, payload, match):
    from mmengine.runner.checkpoint import _load_checkpoint

    path = tmp_path / 'evil.pth'
    torch.save({'obj': payload}, path)
    with pytest.raises(Exception, match=match):
        _load_checkpoint(str(path), map_location='cpu')


def test_mmdet_config_inheritance(tmp_path):
    cfg_file = tmp_path / 'child.py'
    cfg_file.write_text(
        "_base_ = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'\n"
        "custom_imports = dict(imports=['focal_mm'], "
        "allow_failed_imports=False)\n"
        "model = dict(backbone=dict(_delete_=True, type='FocalTransformer'))\n"
    )
    cfg = Config.fromfile(str(cfg_file))
    assert cfg.default_scope == 'mmdet'
    assert cfg.model.backbone.type == 'FocalTransformer'
