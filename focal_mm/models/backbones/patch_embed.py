# Copyright (c) focal_mm contributors. All rights reserved.
"""The patch embedding that Focal Transformer uses as stem and downsampler."""
from typing import Optional

import torch
import torch.nn as nn
from mmcv.cnn.bricks.transformer import PatchEmbed


class FocalPatchEmbed(PatchEmbed):
    """mmcv's ``PatchEmbed`` with the official optional pre-norm, returning a
    channels-last map.

    Focal Transformer downsamples between stages with a strided convolution
    (not Swin's patch merging), optionally preceded by ``GroupNorm(1, C)``.

    Args:
        in_channels (int): Input channels.
        embed_dims (int): Output channels.
        kernel_size (int): Convolution kernel.
        stride (int): Convolution stride.
        padding (int | str): Convolution padding, or ``'corner'`` to pad the
            bottom-right corner to a multiple of the stride.
        norm_cfg (dict, optional): Norm after the projection.
        use_pre_norm (bool): ``GroupNorm(1, in_channels)`` before the
            projection. Default: False.

    Shape:
        - input: ``(B, in_channels, H, W)``
        - output: ``(B, H', W', embed_dims)``
    """

    def __init__(self,
                 in_channels: int,
                 embed_dims: int,
                 kernel_size: int,
                 stride: int,
                 padding='corner',
                 norm_cfg: Optional[dict] = None,
                 use_pre_norm: bool = False) -> None:
        super().__init__(
            in_channels=in_channels,
            embed_dims=embed_dims,
            kernel_size=kernel_size,
            stride=stride,
            padding=padding,
            norm_cfg=norm_cfg)
        self.pre_norm = nn.GroupNorm(1, in_channels) if use_pre_norm \
            else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pre_norm is not None:
            x = self.pre_norm(x)
        if self.adaptive_padding is not None:
            x = self.adaptive_padding(x)
        x = self.projection(x).permute(0, 2, 3, 1)
        if self.norm is not None:
            x = self.norm(x)
        return x
