"""Input sizes of dense prediction and mixed precision on long inputs: the
shapes mmdet / mmseg necks expect, and no NaN or Inf."""
import math

import pytest
import torch

from focal_mm import FocalTransformer

TINY = dict(embed_dims=16, depths=(1, 1, 2, 1), num_heads=(1, 2, 2, 4))


def dense_model(**kwargs):
    torch.manual_seed(0)
    return FocalTransformer(
        arch=TINY, img_size=None, focal_windows=(15, 13, 9, 7),
        **kwargs).eval()


@pytest.mark.parametrize('size', [(97, 131), (200, 45), (64, 1024), (1024, 64),
                                  (33, 33), (224, 224)])
def test_any_size_gives_neck_shapes(size):
    model = dense_model()
    with torch.no_grad():
        outs = model(torch.randn(1, 3, *size))
    h, w = size
    for i, out in enumerate(outs):
        # Each stage halves with corner padding, the stem divides by 4.
        h = math.ceil(h / (4 if i == 0 else 2))
        w = math.ceil(w / (4 if i == 0 else 2))
        assert out.shape == (1, 16 * 2**i, h, w)
        assert torch.isfinite(out).all()


def test_padded_batch_of_different_sizes_through_mmdet():
    """DetDataPreprocessor pads a batch of two images of different sizes to
    a multiple of 32; the backbone and FPN take the padded batch."""
    from mmdet.models.data_preprocessors import DetDataPreprocessor
    from mmdet.models.necks import FPN
    from mmdet.structures import DetDataSample
    preprocessor = DetDataPreprocessor(
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_size_divisor=32)
    images = [
        torch.randint(0, 255, (3, 150, 210), dtype=torch.uint8),
        torch.randint(0, 255, (3, 97, 300), dtype=torch.uint8)
    ]
    samples = [
        DetDataSample(metainfo=dict(img_shape=tuple(i.shape[1:])))
        for i in images
    ]
    batch = preprocessor(dict(inputs=images, data_samples=samples))
    assert batch['inputs'].shape == (2, 3, 160, 320)
    model = dense_model()
    neck = FPN([16, 32, 64, 128], 32, num_outs=5)
    with torch.no_grad():
        outs = neck(model(batch['inputs']))
    assert [o.shape[-2:] for o in outs] == [(40, 80), (20, 40), (10, 20),
                                            (5, 10), (3, 5)]
    assert all(torch.isfinite(o).all() for o in outs)


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
def test_long_input_stays_finite_under_autocast(dtype):
    """A long image with large activations: logits of masked pooled keys and
    big attention scores must not overflow in half precision."""
    model = dense_model()
    image = torch.randn(1, 3, 96, 1536) * 50
    with torch.no_grad(), torch.autocast('cpu', dtype=dtype):
        outs = model(image)
    ref = model(image)
    for out, r in zip(outs, ref):
        assert torch.isfinite(out).all()
        err = ((out.float() - r).norm() / r.norm()).item()
        assert err < 5e-2, err
