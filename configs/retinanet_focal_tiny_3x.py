# RetinaNet with Focal-T, 3x, multi-scale 480-800 + crop. Paper: 45.5 box AP.
_base_ = ['./retinanet_focal_tiny_1x.py']
train_dataloader = dict(
    dataset=dict(pipeline={{_base_.focal_ms_crop_box_pipeline}}))
train_cfg = dict(max_epochs=36)
param_scheduler = {{_base_.focal_schedule_3x}}
