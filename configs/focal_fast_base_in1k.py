# ImageNet-1K classifier with Focal-fast-B (official "focalv2" base,
# 91,186,824 parameters), recipe as focal_fast_tiny_in1k.py with drop path
# 0.5. Official top-1: 84.0. Released checkpoint:
# focal_in1k_url + 'focalv2-base-useconv-is224-ws7.pth'
# (configs/_base_/focal_in1k_checkpoints.py).
_base_ = './focal_fast_tiny_in1k.py'
model = dict(
    backbone=dict(arch='base', drop_path_rate=0.5),
    head=dict(in_channels=1024))
