# ImageNet-1K classifier with Focal-fast-S (official "focalv2" small,
# 51,526,540 parameters), recipe as focal_fast_tiny_in1k.py with drop path
# 0.3. Official top-1: 83.6. Released checkpoint:
# focal_in1k_url + 'focalv2-small-useconv-is224-ws7.pth'
# (configs/_base_/focal_in1k_checkpoints.py); tools/test.py takes that URL and
# downloads the file from its surviving copy at Ascend ModelZoo (README,
# "Weights").
_base_ = './focal_fast_tiny_in1k.py'
model = dict(backbone=dict(arch='small', drop_path_rate=0.3))
