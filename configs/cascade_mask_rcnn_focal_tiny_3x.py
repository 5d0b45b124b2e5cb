# Cascade Mask R-CNN with Focal-T, 3x, multi-scale 480-800 + crop, with
# Swin's detection heads (4 conv + 1 fc box heads with SyncBN, GIoU loss).
# Paper: 51.5 box AP, 86.7 M parameters.
_base_ = [
    'mmdet::cascade_rcnn/cascade-mask-rcnn_r50_fpn_1x_coco.py',
    './_base_/focal_det_recipe.py'
]


def _box_head(stds):
    return dict(
        type='ConvFCBBoxHead',
        num_shared_convs=4,
        num_shared_fcs=1,
        in_channels=256,
        conv_out_channels=256,
        fc_out_channels=1024,
        roi_feat_size=7,
        num_classes=80,
        bbox_coder=dict(
            type='DeltaXYWHBBoxCoder',
            target_means=[0., 0., 0., 0.],
            target_stds=stds),
        reg_class_agnostic=False,
        reg_decoded_bbox=True,
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        loss_cls=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
        loss_bbox=dict(type='GIoULoss', loss_weight=10.0))


model = dict(
    backbone={{_base_.focal_det_backbone}},
    neck=dict(in_channels=[96, 192, 384, 768]),
    roi_head=dict(bbox_head=[
        _box_head([0.1, 0.1, 0.2, 0.2]),
        _box_head([0.05, 0.05, 0.1, 0.1]),
        _box_head([0.033, 0.033, 0.067, 0.067])
    ]))
train_dataloader = dict(
    dataset=dict(pipeline={{_base_.focal_ms_crop_mask_pipeline}}))
train_cfg = dict(max_epochs=36)
optim_wrapper = {{_base_.focal_optim_wrapper}}
param_scheduler = {{_base_.focal_schedule_3x}}
auto_scale_lr = {{_base_.focal_auto_scale_lr}}
