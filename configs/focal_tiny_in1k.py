# ImageNet-1K classifier with Focal-T (the official model, exactly: 28,880,380
# parameters). 300 epochs, total batch 1024 (16 GPUs x 64; the official runs
# used 8 x 128), AdamW 1e-3, weight decay 0.05, 20 warm-up epochs, cosine to
# 1e-5, gradient clipping 5, RandAugment, Mixup 0.8, CutMix 1.0, label
# smoothing 0.1, random erasing 0.25; test: bicubic resize 256 + centre crop
# 224. Paper: 82.2 top-1. No load_from: tools/test.py takes a copy of the
# released focal-tiny-is224-ws7.pth or PaddleViT's port of it,
# focal_tiny_patch4_window7_224.pdparams (converted on the fly), or a
# checkpoint of this config's training, whose backbone starts the detectors
# (README, "Weights").
_base_ = 'mmpretrain::swin_transformer/swin-tiny_16xb64_in1k.py'
custom_imports = dict(imports=['focal_mm'], allow_failed_imports=False)
custom_hooks = [dict(type='RNGStateHook')]  # --resume continues exactly
model = dict(
    backbone=dict(
        _delete_=True,
        type='FocalTransformer',
        arch='tiny',
        img_size=224,
        drop_path_rate=0.2,
        out_indices=(3, )),
    head=dict(in_channels=768))
