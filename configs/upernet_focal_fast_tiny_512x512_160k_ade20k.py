# UperNet with Focal-fast-T on ADE20K, 512x512 crops, 160k iterations: the
# recipe of upernet_focal_tiny_512x512_160k_ade20k.py (which uses the same
# convolutional patch embeddings). No paper results exist for Focal-fast.
_base_ = './upernet_focal_tiny_512x512_160k_ade20k.py'
model = dict(
    backbone=dict(
        _delete_=True,
        type='FocalFastTransformer',
        arch='tiny',
        img_size=None,
        use_conv_embed=True,
        focal_topk=128,
        drop_path_rate=0.3,
        out_indices=(0, 1, 2, 3),
        init_cfg=dict(
            type='Pretrained',
            checkpoint=_base_.focal_in1k_url +
            'focalv2-tiny-useconv-is224-ws7.pth')))
