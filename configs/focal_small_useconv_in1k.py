# Focal-S with overlapping convolutional patch embeddings (the
# released "useconv" model), recipe as focal_small_in1k.py.
_base_ = './focal_small_in1k.py'
model = dict(backbone=dict(use_conv_embed=True))
