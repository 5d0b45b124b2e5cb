# UperNet with Focal-S, as upernet_focal_tiny_512x512_160k_ade20k.py.
# Paper: 48.0 mIoU (50.0 multi-scale), 85 M parameters.
_base_ = './upernet_focal_tiny_512x512_160k_ade20k.py'
model = dict(
    backbone=dict(
        arch='small',
        init_cfg=dict(
            checkpoint=_base_.focal_in1k_url +
            'focal-small-useconv-is224-ws7.pth')))
