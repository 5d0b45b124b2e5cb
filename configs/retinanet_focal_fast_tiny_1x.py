# RetinaNet with Focal-fast-T, 1x, the recipe of retinanet_focal_tiny_1x.py.
# No paper results exist for Focal-fast detectors.
_base_ = [
    'mmdet::swin/retinanet_swin-t-p4-w7_fpn_1x_coco.py',
    './_base_/focal_det_recipe.py'
]
model = dict(
    backbone={{_base_.focal_fast_det_backbone_3stages}},
    neck=dict(in_channels=[192, 384, 768], start_level=0, num_outs=5))
optim_wrapper = {{_base_.focal_optim_wrapper}}
param_scheduler = {{_base_.focal_schedule_1x}}
auto_scale_lr = {{_base_.focal_auto_scale_lr}}
