# Mask R-CNN with Focal-B, 1x.
# Paper: 47.8 box AP / 43.2 mask AP, 110.0 M parameters.
_base_ = './mask_rcnn_focal_tiny_1x.py'
model = dict(
    backbone=dict(
        arch='base',
        drop_path_rate=0.3,
        init_cfg=dict(
            checkpoint=_base_.focal_in1k_url + 'focal-base-is224-ws7.pth')),
    neck=dict(in_channels=[128, 256, 512, 1024]))
