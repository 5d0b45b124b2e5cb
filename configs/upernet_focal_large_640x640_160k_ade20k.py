# UperNet with Focal-L on ADE20K at 640x640 crops, recipe as
# upernet_focal_tiny_512x512_160k_ade20k.py. The paper pre-trained Focal-L on
# ImageNet-22K; that checkpoint was never released, so the backbone starts
# from initialisation unless you set init_cfg. Plain (non-convolutional)
# patch embeddings: with convolutional ones the count would be 245 M.
# Paper: 54.0 mIoU (55.4 multi-scale), 240 M parameters.
_base_ = './upernet_focal_tiny_512x512_160k_ade20k.py'
crop_size = (640, 640)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(
        type='RandomResize',
        scale=(2560, 640),
        ratio_range=(0.5, 2.0),
        keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2560, 640), keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs')
]
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(arch='large', use_conv_embed=False, init_cfg=None),
    decode_head=dict(in_channels=[192, 384, 768, 1536]),
    auxiliary_head=dict(in_channels=768))
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
