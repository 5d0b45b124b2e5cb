# Mask R-CNN with Focal-B, 3x.
# Paper: 49.0 box AP / 43.7 mask AP, 110.0 M parameters.
_base_ = './mask_rcnn_focal_tiny_3x.py'
model = dict(
    backbone=dict(
        arch='base',
        drop_path_rate=0.3,
        init_cfg=dict(
            checkpoint=_base_.focal_in1k_url + 'focal-base-is224-ws7.pth')),
    neck=dict(in_channels=[128, 256, 512, 1024]))
