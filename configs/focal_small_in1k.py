# ImageNet-1K classifier with Focal-S, recipe as focal_tiny_in1k.py, drop path
# 0.3. Paper: 83.5 top-1.
_base_ = './focal_tiny_in1k.py'
model = dict(
    backbone=dict(arch='small', drop_path_rate=0.3),
    head=dict(in_channels=768))
