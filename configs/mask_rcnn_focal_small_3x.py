# Mask R-CNN with Focal-S, 3x.
# Paper: 48.8 box AP / 43.8 mask AP, 71.2 M parameters.
_base_ = './mask_rcnn_focal_tiny_3x.py'
model = dict(
    backbone=dict(
        arch='small',
        drop_path_rate=0.2,
        init_cfg=dict(
            checkpoint=_base_.focal_in1k_url + 'focal-small-is224-ws7.pth')))
