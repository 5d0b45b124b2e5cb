# ImageNet-1K classifier with Focal-fast-T, the official "focalv2" model
# (classification/focal_transformer_v2.py; 30,220,564 parameters): conv patch
# embeddings, two focal levels, the 128 nearest tokens per level. Recipe and
# test pipeline as focal_tiny_in1k.py (the official repository trains both
# families alike); drop path 0.2. Official top-1: 82.4. tools/test.py takes a
# copy of the released focalv2-tiny-useconv-is224-ws7.pth (none is known to
# survive) or a checkpoint of this config's training (README, "Weights").
_base_ = './focal_tiny_in1k.py'
model = dict(
    backbone=dict(
        _delete_=True,
        type='FocalFastTransformer',
        arch='tiny',
        img_size=224,
        use_conv_embed=True,
        focal_topk=128,
        drop_path_rate=0.2,
        out_indices=(3, )),
    head=dict(in_channels=768))
