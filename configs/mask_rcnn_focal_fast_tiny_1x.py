# Mask R-CNN with Focal-fast-T, 1x (12 epochs, LR steps 8 / 11), single-scale
# 1333x800 training, the recipe of mask_rcnn_focal_tiny_1x.py. The paper has
# no detection results for Focal-fast: see the README's model zoo for the
# parameters and FLOPs.
_base_ = [
    'mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py',
    './_base_/focal_det_recipe.py'
]
model = dict(
    backbone={{_base_.focal_fast_det_backbone}},
    neck=dict(in_channels=[96, 192, 384, 768]))
optim_wrapper = {{_base_.focal_optim_wrapper}}
param_scheduler = {{_base_.focal_schedule_1x}}
auto_scale_lr = {{_base_.focal_auto_scale_lr}}
