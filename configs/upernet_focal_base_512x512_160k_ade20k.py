# UperNet with Focal-B, as upernet_focal_tiny_512x512_160k_ade20k.py.
# Paper: 49.0 mIoU (50.5 multi-scale), 126 M parameters.
_base_ = './upernet_focal_tiny_512x512_160k_ade20k.py'
model = dict(
    backbone=dict(
        arch='base',
        init_cfg=dict(
            checkpoint=_base_.focal_in1k_url +
            'focal-base-useconv-is224-ws7.pth')),
    decode_head=dict(in_channels=[128, 256, 512, 1024]),
    auxiliary_head=dict(in_channels=512))
