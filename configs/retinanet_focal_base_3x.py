# RetinaNet with Focal-B, 3x. Paper: 46.9 box AP, 100.8 M parameters.
_base_ = './retinanet_focal_tiny_3x.py'
model = dict(
    backbone=dict(
        arch='base',
        drop_path_rate=0.3,
        init_cfg=dict(
            checkpoint=_base_.focal_in1k_url + 'focal-base-is224-ws7.pth')),
    neck=dict(in_channels=[256, 512, 1024]))
