# UperNet with Focal-T on ADE20K, 512x512 crops, 160k iterations, total batch
# 16 (8 GPUs x 2): AdamW 6e-5, weight decay 0.01 (none on norms and position
# tables), 1500 linear warm-up iterations, poly schedule, auxiliary FCN head
# on stage 3 (weight 0.4). Multi-scale + flip testing: tools/test.py --tta.
# The backbone is the released "useconv" variant (convolutional patch
# embeddings): the paper's UperNet parameter counts fit it, not the plain one.
# Paper: 45.8 mIoU (47.0 multi-scale), 62 M parameters.
_base_ = [
    'mmseg::swin/swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_'
    'ade20k-512x512.py', './_base_/focal_in1k_checkpoints.py'
]
custom_imports = dict(imports=['focal_mm'], allow_failed_imports=False)
custom_hooks = [dict(type='RNGStateHook')]  # --resume continues exactly
model = dict(
    backbone=dict(
        _delete_=True,
        type='FocalTransformer',
        arch='tiny',
        img_size=None,
        use_conv_embed=True,
        drop_path_rate=0.3,
        out_indices=(0, 1, 2, 3),
        init_cfg=dict(
            type='Pretrained',
            checkpoint=_base_.focal_in1k_url +
            'focal-tiny-useconv-is224-ws7.pth')),
    decode_head=dict(in_channels=[96, 192, 384, 768]),
    auxiliary_head=dict(in_channels=384))
optim_wrapper = dict(
    paramwise_cfg=dict(norm_decay_mult=0., bias_decay_mult=0.))
auto_scale_lr = dict(enable=False, base_batch_size=16)
