# Mask R-CNN with Focal-S, 1x.
# Paper: 47.4 box AP / 42.8 mask AP, 71.2 M parameters.
_base_ = './mask_rcnn_focal_tiny_1x.py'
model = dict(
    backbone=dict(
        arch='small',
        drop_path_rate=0.2,
        init_cfg=dict(
            checkpoint=_base_.focal_in1k_url + 'focal-small-is224-ws7.pth')))
