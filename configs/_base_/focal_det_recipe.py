# Shared pieces of the Focal Transformer detection recipes (paper §4, the
# Swin-style recipe the authors followed). Detector configs pick them up as
# {{_base_.name}}.
_base_ = './focal_in1k_checkpoints.py'  # focal_in1k_url
custom_imports = dict(imports=['focal_mm'], allow_failed_imports=False)
# Generator states in checkpoints: --resume continues exactly.
custom_hooks = [dict(type='RNGStateHook')]

# Focal backbones at detection resolution: every block keeps its fine
# surroundings (img_size=None; the 224 checkpoints have no stage-4 neighbour
# tables, which start from initialisation), and the focal windows are enlarged
# from (7, 5, 3, 1), with the relative-position tables up-sampled on loading.
focal_det_backbone = dict(
    _delete_=True,
    type='FocalTransformer',
    arch='tiny',
    img_size=None,
    focal_windows=(15, 13, 9, 7),
    drop_path_rate=0.2,
    out_indices=(0, 1, 2, 3),
    init_cfg=dict(
        type='Pretrained',
        checkpoint=_base_.focal_in1k_url + 'focal-tiny-is224-ws7.pth'))

# For necks that start at stage 2 (RetinaNet, ATSS, RepPoints): no stage-1
# output norm is built, so distributed training has no unused parameters.
focal_det_backbone_3stages = dict(focal_det_backbone, out_indices=(1, 2, 3))

# Focal-fast-T, from its only release (conv patch embeddings): every window
# attends its 128 nearest tokens per level at any resolution, so nothing is
# enlarged for detection.
focal_fast_det_backbone = dict(
    _delete_=True,
    type='FocalFastTransformer',
    arch='tiny',
    img_size=None,
    use_conv_embed=True,
    focal_topk=128,
    drop_path_rate=0.2,
    out_indices=(0, 1, 2, 3),
    init_cfg=dict(
        type='Pretrained',
        checkpoint=_base_.focal_in1k_url +
        'focalv2-tiny-useconv-is224-ws7.pth'))
focal_fast_det_backbone_3stages = dict(
    focal_fast_det_backbone, out_indices=(1, 2, 3))

# AdamW 1e-4, weight decay 0.05, none on norms, position tables and biases.
focal_optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(
        _delete_=True,
        type='AdamW',
        lr=0.0001,
        betas=(0.9, 0.999),
        weight_decay=0.05),
    paramwise_cfg=dict(
        norm_decay_mult=0.,
        bias_decay_mult=0.,
        custom_keys={
            'absolute_pos_embed': dict(decay_mult=0.),
            'relative_position_bias_table': dict(decay_mult=0.),
            'norm': dict(decay_mult=0.)
        }))


def _schedule(epochs, milestones):
    return [
        dict(
            type='LinearLR',
            start_factor=0.001,
            by_epoch=False,
            begin=0,
            end=1000),
        dict(
            type='MultiStepLR',
            begin=0,
            end=epochs,
            by_epoch=True,
            milestones=milestones,
            gamma=0.1)
    ]


focal_schedule_1x = _schedule(12, [8, 11])
focal_schedule_3x = _schedule(36, [27, 33])

# Total batch 16 = 8 GPUs x 2 images; scale the LR with --auto-scale-lr when
# training on another number of GPUs.
focal_auto_scale_lr = dict(enable=False, base_batch_size=16)


# The 3x multi-scale 480-800 + crop training pipelines (DETR-style).
def _ms_crop_pipeline(with_mask):
    scales = [(s, 1333) for s in range(480, 801, 32)]
    return [
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations', with_bbox=True, with_mask=with_mask),
        dict(type='RandomFlip', prob=0.5),
        dict(
            type='RandomChoice',
            transforms=[[
                dict(
                    type='RandomChoiceResize', scales=scales, keep_ratio=True)
            ],
                        [
                            dict(
                                type='RandomChoiceResize',
                                scales=[(400, 1333), (500, 1333), (600, 1333)],
                                keep_ratio=True),
                            dict(
                                type='RandomCrop',
                                crop_type='absolute_range',
                                crop_size=(384, 600),
                                allow_negative_crop=True),
                            dict(
                                type='RandomChoiceResize',
                                scales=scales,
                                keep_ratio=True)
                        ]]),
        dict(type='PackDetInputs')
    ]


focal_ms_crop_box_pipeline = _ms_crop_pipeline(with_mask=False)
focal_ms_crop_mask_pipeline = _ms_crop_pipeline(with_mask=True)
