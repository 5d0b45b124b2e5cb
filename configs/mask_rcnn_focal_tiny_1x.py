# Mask R-CNN with Focal-T, 1x (12 epochs, LR steps 8 / 11), single-scale
# 1333x800 training. Paper: 44.8 box AP / 41.0 mask AP, 48.8 M parameters.
_base_ = [
    'mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py',
    './_base_/focal_det_recipe.py'
]
model = dict(
    backbone={{_base_.focal_det_backbone}},
    neck=dict(in_channels=[96, 192, 384, 768]))
optim_wrapper = {{_base_.focal_optim_wrapper}}
param_scheduler = {{_base_.focal_schedule_1x}}
auto_scale_lr = {{_base_.focal_auto_scale_lr}}
