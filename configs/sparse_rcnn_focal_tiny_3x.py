# Sparse R-CNN with Focal-T, 300 proposals, 3x, multi-scale 480-800 + crop,
# with Sparse R-CNN's own optimizer (AdamW 2.5e-5, weight decay 1e-4, gradient
# clipping 1). Paper: 49.0 box AP, 110.8 M parameters.
_base_ = [
    'mmdet::sparse_rcnn/'
    'sparse-rcnn_r50_fpn_300-proposals_crop-ms-480-800-3x_coco.py',
    './_base_/focal_det_recipe.py'
]
model = dict(
    backbone={{_base_.focal_det_backbone}},
    neck=dict(in_channels=[96, 192, 384, 768]))
optim_wrapper = dict(
    paramwise_cfg=dict(
        norm_decay_mult=0.,
        custom_keys={
            'absolute_pos_embed': dict(decay_mult=0.),
            'relative_position_bias_table': dict(decay_mult=0.)
        }))
auto_scale_lr = {{_base_.focal_auto_scale_lr}}
