# ImageNet-1K classifier with Focal-B, recipe as focal_tiny_in1k.py, drop path
# 0.5. Paper: 83.8 top-1.
_base_ = './focal_tiny_in1k.py'
model = dict(
    backbone=dict(arch='base', drop_path_rate=0.5),
    head=dict(in_channels=1024))
