# Mask R-CNN with Focal-fast-T, 3x (36 epochs, LR steps 27 / 33), multi-scale
# 480-800 + crop training, the recipe of mask_rcnn_focal_tiny_3x.py. No paper
# results exist for Focal-fast detectors.
_base_ = [
    'mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_ms-crop-3x_coco.py',
    './_base_/focal_det_recipe.py'
]
model = dict(
    backbone={{_base_.focal_fast_det_backbone}},
    neck=dict(in_channels=[96, 192, 384, 768]))
optim_wrapper = {{_base_.focal_optim_wrapper}}
param_scheduler = {{_base_.focal_schedule_3x}}
auto_scale_lr = {{_base_.focal_auto_scale_lr}}
