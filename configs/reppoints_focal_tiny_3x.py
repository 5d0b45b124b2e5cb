# RepPoints (v1: mmdet has no RepPointsV2) with Focal-T, 3x, multi-scale
# 480-800 + crop, GroupNorm neck and head. The paper's 51.2 box AP and 45 M
# parameters are for RepPointsV2, which this does not reproduce.
_base_ = [
    'mmdet::reppoints/reppoints-moment_r50_fpn-gn_head-gn_2x_coco.py',
    './_base_/focal_det_recipe.py'
]
model = dict(
    backbone={{_base_.focal_det_backbone_3stages}},
    neck=dict(in_channels=[192, 384, 768], start_level=0, num_outs=5))
train_dataloader = dict(
    dataset=dict(pipeline={{_base_.focal_ms_crop_box_pipeline}}))
train_cfg = dict(max_epochs=36)
optim_wrapper = {{_base_.focal_optim_wrapper}}
param_scheduler = {{_base_.focal_schedule_3x}}
auto_scale_lr = {{_base_.focal_auto_scale_lr}}
