# RetinaNet with Focal-S, 1x. Paper: 45.6 box AP, 61.7 M parameters.
_base_ = './retinanet_focal_tiny_1x.py'
model = dict(
    backbone=dict(
        arch='small',
        drop_path_rate=0.2,
        init_cfg=dict(
            checkpoint=_base_.focal_in1k_url + 'focal-small-is224-ws7.pth')))
