"""Bad configurations, inputs and checkpoints get a clear error that names
the problem, never a silent wrong result or a bare traceback deep in torch.

Cases tried (backbone = FocalTransformer, attention = FocalAttention):

 1. unknown arch name
 2. custom arch dict without num_heads
 3. arch of the wrong type (a list)
 4. num_heads not dividing a stage's channels
 5. num_heads list shorter than depths
 6. a zero depth
 7. focal_windows length not matching depths
 8. focal_levels length not matching depths
 9. expand_sizes length not matching depths
10. unknown focal_pool
11. even focal window (backbone)
12. unknown expand_layer
13. window larger than the stage-1 map at img_size
14. out_indices out of range
15. empty out_indices
16. frozen_stages out of range
17. focal_stages out of range
18. absolute position embedding without img_size
19. patch_size 0
20. negative drop_path_rate
21. mlp_ratio 0
22. attention: heads not dividing channels
23. attention: unknown pool_method
24. attention: even focal window
25. attention: expand_size >= window_size
26. attention: negative expand_size
27. attention: shift_size >= window_size
28. attention: window too small for the number of focal levels
29. attention: focal_level 0
30. attention input that is not (B, H, W, C) or has the wrong channels
31. 3-D, 5-D and wrong-channel image batches
32. an integer image batch
33. an image smaller than one patch
34. NaN input in training mode
35. a checkpoint of another arch (Focal-S weights into Focal-T, and T into B)
36. a checkpoint with a truncated tensor
37. a truncated checkpoint file
38. a checkpoint that is not a Focal Transformer (a ResNet)
39. a checkpoint carrying pickled code (refused; the code never runs)
40. a config that forgets custom_imports
41. a file that is not a PyTorch checkpoint (an error page saved as .pth)
42. a checkpoint of the other family (names the class that loads it)
"""
import re
import subprocess
import sys

import pytest
import torch

from focal_mm import FocalAttention, FocalTransformer
from focal_mm.models import FocalFastTransformer

TINY = dict(embed_dims=16, depths=(1, 1, 2, 1), num_heads=(1, 2, 2, 4))


@pytest.mark.parametrize('kwargs, error, match', [
    (dict(arch='huge'), ValueError, 'Unknown arch'),
    (dict(arch=dict(embed_dims=16, depths=(1, 1))), ValueError,
     'exactly the keys'),
    (dict(arch=[96, 2]), TypeError, 'arch must be a str or a dict'),
    (dict(
        arch=dict(embed_dims=16, depths=(1, 1, 1, 1), num_heads=(1, 2, 3, 4))),
     ValueError, r'num_heads\[2\] = 3 does not divide'),
    (dict(arch=dict(embed_dims=16, depths=(1, 1, 1, 1), num_heads=(1, 2, 4))),
     ValueError, 'num_heads must have one entry per stage'),
    (dict(
        arch=dict(embed_dims=16, depths=(1, 0, 1, 1), num_heads=(1, 2, 4, 8))),
     ValueError, 'depths must be positive'),
    (dict(arch=TINY, focal_windows=(7, 5, 3)), ValueError,
     'focal_windows must have one entry per stage'),
    (dict(arch=TINY, focal_levels=(2, 2)), ValueError,
     'focal_levels must have one entry per stage'),
    (dict(arch=TINY, expand_sizes=(3, 3, 3)), ValueError,
     'expand_sizes must have one entry per stage'),
    (dict(arch=TINY, focal_pool='avg'), ValueError, 'focal_pool must be'),
    (dict(arch=TINY, focal_windows=(8, 5, 3, 1)), ValueError,
     'focal_window must be a positive odd number'),
    (dict(arch=TINY, expand_layer='first'), ValueError, 'expand_layer'),
    (dict(arch=TINY, img_size=16), ValueError, 'too small for 4 stages'),
    (dict(arch=TINY, out_indices=(4, )), ValueError, 'out_indices'),
    (dict(arch=TINY, out_indices=()), ValueError, 'out_indices'),
    (dict(arch=TINY, frozen_stages=5), ValueError, 'frozen_stages'),
    (dict(arch=TINY, focal_stages=(0, 4)), ValueError, 'focal_stages'),
    (dict(arch=TINY, img_size=None, use_abs_pos_embed=True), ValueError,
     'use_abs_pos_embed needs img_size'),
    (dict(arch=TINY, patch_size=0), ValueError, 'patch_size'),
    (dict(arch=TINY, drop_path_rate=-0.1), ValueError, 'drop_path_rate'),
    (dict(arch=TINY, mlp_ratio=0), ValueError, 'mlp_ratio'),
])
def test_bad_backbone_configurations(kwargs, error, match):
    with pytest.raises(error, match=match):
        FocalTransformer(**kwargs)


@pytest.mark.parametrize('kwargs, match', [
    (dict(embed_dims=10, num_heads=3), 'num_heads'),
    (dict(embed_dims=8, num_heads=2, pool_method='avg'), 'pool_method'),
    (dict(embed_dims=8, num_heads=2, focal_window=4), 'focal_window'),
    (dict(embed_dims=8, num_heads=2, window_size=7,
          expand_size=7), 'expand_size'),
    (dict(embed_dims=8, num_heads=2, expand_size=-1), 'expand_size'),
    (dict(embed_dims=8, num_heads=2, window_size=7,
          shift_size=7), 'shift_size'),
    (dict(
        embed_dims=8, num_heads=2, window_size=3, expand_size=0,
        focal_level=4), 'window_size 3 is too small'),
    (dict(embed_dims=8, num_heads=2, focal_level=0), 'focal_level'),
])
def test_bad_attention_configurations(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FocalAttention(**kwargs)


@pytest.mark.parametrize('shape', [(2, 7, 7), (1, 7, 7, 12), (1, 1, 7, 7, 8)])
def test_bad_attention_input(shape):
    attn = FocalAttention(8, 2)
    with pytest.raises(ValueError, match=r'\(B, H, W, C\) map with C = 8'):
        attn(torch.randn(*shape))


@pytest.mark.parametrize('image, error, match', [
    (torch.randn(3, 64, 64), ValueError, r'\(B, 3, H, W\)'),
    (torch.randn(1, 3, 64, 64, 2), ValueError, r'\(B, 3, H, W\)'),
    (torch.randn(1, 4, 64, 64), ValueError, r'\(B, 3, H, W\)'),
    (torch.zeros(1, 3, 64, 64,
                 dtype=torch.uint8), TypeError, 'floating-point'),
    (torch.randn(1, 3, 2, 64), ValueError, 'smaller than one patch'),
])
def test_bad_images(image, error, match):
    with pytest.raises(error, match=match):
        FocalTransformer(arch=TINY)(image)


def test_nan_input_in_training():
    model = FocalTransformer(arch=TINY).train()
    image = torch.randn(1, 3, 64, 64)
    image[0, 0, 3, 3] = float('nan')
    with pytest.raises(ValueError, match='NaN or Inf'):
        model(image)


def _load_into(model, path):
    model.init_cfg = dict(type='Pretrained', checkpoint=str(path))
    model.init_weights()


def test_checkpoint_of_another_arch(tmp_path):
    small = FocalTransformer('small', img_size=224, out_indices=(3, ))
    path = tmp_path / 'small.pth'
    torch.save({'state_dict': small.state_dict()}, path)
    with pytest.raises(
            ValueError,
            match=r'another architecture.*\n.*'
            r'stages\.2\.blocks\.6.*not in the model'):
        _load_into(FocalTransformer('tiny', img_size=224), path)
    tiny = FocalTransformer('tiny', img_size=224)
    torch.save({'state_dict': tiny.state_dict()}, path)
    with pytest.raises(ValueError, match='another architecture'):
        _load_into(FocalTransformer('base', img_size=224), path)


def test_checkpoint_with_truncated_tensor(tmp_path):
    state = FocalTransformer(arch=TINY).state_dict()
    key = 'stages.1.blocks.0.attn.qkv.weight'
    state[key] = state[key][:10]
    path = tmp_path / 'cut.pth'
    torch.save(state, path)
    with pytest.raises(ValueError, match=rf'{key}: checkpoint \(10, 32\)'):
        _load_into(FocalTransformer(arch=TINY), path)


def test_truncated_checkpoint_file(tmp_path):
    path = tmp_path / 'short.pth'
    torch.save(FocalTransformer(arch=TINY).state_dict(), path)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    with pytest.raises(ValueError, match='truncated or corrupt'):
        _load_into(FocalTransformer(arch=TINY), path)


def test_checkpoint_of_something_else(tmp_path):
    path = tmp_path / 'resnet.pth'
    torch.save({'state_dict': {
        'conv1.weight': torch.zeros(64, 3, 7, 7)
    }}, path)
    with pytest.raises(ValueError, match='does not fit this FocalTransformer'):
        _load_into(FocalTransformer(arch=TINY), path)


def test_legacy_format_checkpoint_loads(tmp_path):
    """torch's pre-1.6 format is a checkpoint too (known by its first
    bytes), not mistaken for something else."""
    source = FocalTransformer(arch=TINY)
    path = tmp_path / 'legacy.pth'
    torch.save(source.state_dict(), path, _use_new_zipfile_serialization=False)
    model = FocalTransformer(arch=TINY)
    _load_into(model, path)
    for key, value in source.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key


def test_file_that_is_not_a_checkpoint(tmp_path):
    path = tmp_path / 'focal-tiny-is224-ws7.pth'
    path.write_text('<?xml version="1.0" encoding="utf-8"?><Error><Code>'
                    'PublicAccessNotPermitted</Code></Error>')
    with pytest.raises(
            ValueError,
            match=rf'^{re.escape(str(path))} is not a PyTorch checkpoint: '
            r"it starts with '<\?xml version=\"1.0\""):
        _load_into(FocalTransformer(arch=TINY), path)
    path.write_bytes(b'')
    with pytest.raises(
            ValueError, match='not a PyTorch checkpoint: the '
            'file is empty'):
        _load_into(FocalTransformer(arch=TINY), path)


def test_checkpoint_of_the_other_family(tmp_path):
    """The error names the class that loads: Focal-fast weights do not fit
    a FocalTransformer, Focal weights do not fit a FocalFastTransformer."""
    for source, target in ((FocalFastTransformer, FocalTransformer),
                           (FocalTransformer, FocalFastTransformer)):
        path = tmp_path / f'{source.__name__}.pth'
        torch.save({'state_dict': source(arch=TINY).state_dict()}, path)
        with pytest.raises(
                ValueError,
                match=rf'^{re.escape(str(path))} does not fit this '
                rf'{target.__name__} \(a checkpoint of another'):
            _load_into(target(arch=TINY), path)


class _CreatesMarker:
    """Unpickling this creates a file: it stands for arbitrary code."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), 'w'))


def test_checkpoint_with_pickled_code_is_refused(tmp_path):
    marker = tmp_path / 'marker'
    path = tmp_path / 'hostile.pth'
    torch.save(
        {
            'state_dict': FocalTransformer(arch=TINY).state_dict(),
            'payload': _CreatesMarker(marker)
        }, path)
    with pytest.raises(ValueError, match='pickled Python objects'):
        _load_into(FocalTransformer(arch=TINY), path)
    assert not marker.exists()


def test_config_without_custom_imports(tmp_path):
    config = tmp_path / 'cfg.py'
    config.write_text(
        "_base_ = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'\n"
        "model = dict(backbone=dict(_delete_=True, type='FocalTransformer'))\n"
    )
    script = ('from mmengine.config import Config\n'
              'from mmdet.registry import MODELS\n'
              'from mmdet.utils import register_all_modules\n'
              'register_all_modules()\n'
              f'MODELS.build(Config.fromfile({str(config)!r}).model)\n')
    result = subprocess.run([sys.executable, '-c', script],
                            capture_output=True,
                            text=True)
    assert result.returncode != 0
    assert 'FocalTransformer is not in the mmdet::model registry' in \
        result.stderr
