# Copyright (c) focal_mm contributors. All rights reserved.
"""The Focal Transformer backbone for OpenMMLab detection, segmentation and
classification."""
import logging
import warnings
from typing import Dict, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from mmcv.cnn import build_norm_layer
from mmcv.cnn.bricks import LayerScale
from mmcv.cnn.bricks.drop import build_dropout
from mmcv.cnn.bricks.transformer import FFN
from mmengine.logging import print_log
from mmengine.model import BaseModule, ModuleList
from mmengine.model.weight_init import trunc_normal_
from mmengine.registry import MODELS
from torch.nn.modules.batchnorm import _BatchNorm

from .focal_attention import POOL_METHODS, FocalAttention
from .patch_embed import FocalPatchEmbed
from .pretrained import load_pretrained, missing_local_file

EXPAND_LAYERS = ('all', 'even', 'odd')


class FocalBlock(BaseModule):
    """Pre-norm transformer block with focal self-attention.

    Args:
        embed_dims (int): Channels.
        num_heads (int): Attention heads.
        mlp_ratio (float): FFN hidden channels over ``embed_dims``.
        drop_rate (float): Dropout after attention projection and in the FFN.
        drop_path_rate (float): Stochastic depth of both residual branches.
        layer_scale_init_value (float): Initial layer scale (0: none).
        act_cfg (dict): FFN activation.
        norm_cfg (dict): Norm layers.
        with_cp (bool): Recompute the block in backward to save memory.
        **attn_kwargs: Passed on to :class:`FocalAttention`.

    Shape:
        ``(B, H, W, C)`` to ``(B, H, W, C)``.
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 mlp_ratio: float = 4.,
                 drop_rate: float = 0.,
                 drop_path_rate: float = 0.,
                 layer_scale_init_value: float = 0.,
                 act_cfg: dict = dict(type='GELU'),
                 norm_cfg: dict = dict(type='LN'),
                 with_cp: bool = False,
                 **attn_kwargs) -> None:
        super().__init__()
        self.with_cp = with_cp
        self.norm1 = build_norm_layer(norm_cfg, embed_dims)[1]
        self.attn = FocalAttention(
            embed_dims, num_heads, proj_drop_rate=drop_rate, **attn_kwargs)
        self.gamma1 = LayerScale(embed_dims, scale=layer_scale_init_value) \
            if layer_scale_init_value > 0 else nn.Identity()
        self.drop_path = build_dropout(
            dict(type='DropPath', drop_prob=drop_path_rate))
        self.norm2 = build_norm_layer(norm_cfg, embed_dims)[1]
        self.ffn = FFN(
            embed_dims=embed_dims,
            feedforward_channels=int(embed_dims * mlp_ratio),
            act_cfg=act_cfg,
            ffn_drop=drop_rate,
            dropout_layer=dict(type='DropPath', drop_prob=drop_path_rate),
            layer_scale_init_value=layer_scale_init_value)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.gamma1(self.attn(self.norm1(x))))
        return self.ffn(self.norm2(x), identity=x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.with_cp and x.requires_grad:
            return cp.checkpoint(self._forward, x, use_reentrant=False)
        return self._forward(x)


class FocalStage(BaseModule):
    """The blocks of one stage and the patch embedding that follows them.

    Returns the stage output (before downsampling) and the downsampled map.
    """

    def __init__(self, blocks: Sequence[FocalBlock],
                 downsample: Optional[FocalPatchEmbed]) -> None:
        super().__init__()
        self.blocks = ModuleList(blocks)
        self.downsample = downsample

    def forward(
            self,
            x: torch.Tensor) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        for block in self.blocks:
            x = block(x)
        if self.downsample is None:
            return x, None
        return x, self.downsample(x.permute(0, 3, 1, 2))


def _per_stage(name: str, value, num_stages: int) -> tuple:
    """Expands an int to one value per stage and checks a sequence's length."""
    if isinstance(value, int):
        return (value, ) * num_stages
    value = tuple(value)
    if len(value) != num_stages:
        raise ValueError(f'{name} must have one entry per stage '
                         f'({num_stages}, from depths), got {len(value)}')
    return value


@MODELS.register_module()
class FocalTransformer(BaseModule):
    """Focal Transformer (Yang et al., "Focal Self-attention for Local-Global
    Interactions in Vision Transformers", NeurIPS 2021).

    A dense-prediction backbone (multi-scale NCHW outputs) that is also
    numerically identical to the official classification model: with
    ``img_size`` set to the training size, official checkpoints load through
    ``init_cfg=dict(type='Pretrained', checkpoint=...)`` and give the same
    features.

    Args:
        arch (str | dict): ``'tiny'``, ``'small'``, ``'base'``, ``'large'``,
            or a dict with keys ``embed_dims``, ``depths`` and ``num_heads``.
            Default: ``'tiny'``.
        img_size (int | tuple[int] | None): Training image size. As in the
            official model, blocks whose map at this size fits in one window
            are built without fine surroundings and shift (so a 224
            checkpoint has no stage-4 neighbour tables), and the absolute
            position embedding has this size. ``None`` builds every block
            with its surroundings, for dense prediction at large sizes.
            Default: 224.
        patch_size (int): Stem stride. Default: 4.
        in_channels (int): Image channels. Default: 3.
        window_size (int): Query window. Default: 7.
        mlp_ratio (float): FFN expansion. Default: 4.
        focal_levels (int | Sequence[int]): Focal levels per stage, the fine
            level included. Default: 2.
        focal_windows (int | Sequence[int]): Pooled neighbourhood per stage;
            odd. Default: (7, 5, 3, 1).
        focal_stages (Sequence[int], optional): Stages with pooled levels;
            None for all. Default: None.
        focal_pool (str): ``'fc'``, ``'conv'``, ``'mean'``, ``'max'`` or
            ``'none'``. Default: ``'fc'``.
        expand_sizes (int | Sequence[int]): Fine surroundings per stage.
            Default: 3.
        expand_layer (str): Blocks with surroundings: ``'all'``, ``'even'``
            (none on even blocks) or ``'odd'`` (none on odd blocks).
            Default: ``'all'``.
        use_shift (bool): Shift odd blocks by half a window. Default: False.
        use_conv_embed (bool): Overlapping convolutional patch embeddings.
            Default: False.
        use_pre_norm (bool): GroupNorm before the patch embeddings between
            stages (not the stem, as in the official model). Default: False.
        layer_scale_init_value (float): Layer scale (0: none; the official
            ``use_layerscale`` uses 1e-4). Default: 0.
        use_abs_pos_embed (bool): Absolute position embedding, resized
            bicubically for other sizes. Default: False.
        qkv_bias (bool): Default: True.
        qk_scale (float, optional): Overrides ``head_dims ** -0.5``.
        drop_rate (float): Dropout. Default: 0.
        attn_drop_rate (float): Attention dropout. Default: 0.
        drop_path_rate (float): Stochastic depth, linear over blocks.
            Default: 0.1.
        out_indices (Sequence[int]): Stages to output, each with its own
            norm. Default: (0, 1, 2, 3).
        frozen_stages (int): Freeze the stem and the first ``frozen_stages``
            stages (-1: nothing). Default: -1.
        norm_eval (bool): Keep batch-norm layers in eval mode while
            training. Default: False.
        with_cp (bool): Gradient checkpointing per block. Default: False.
        norm_cfg (dict): Default: ``dict(type='LN')``.
        act_cfg (dict): Default: ``dict(type='GELU')``.
        pretrained (str, optional): Deprecated alias of ``init_cfg=dict(
            type='Pretrained', checkpoint=pretrained)``.
        init_cfg (dict, optional): ``dict(type='Pretrained',
            checkpoint=PATH)`` loads an official or converted checkpoint.

    Shape:
        - input: ``(B, in_channels, H, W)``, any ``H, W``
        - outputs: a tuple with ``(B, embed_dims * 2**i, ~H / (4 * 2**i),
          ~W / (4 * 2**i))`` for each ``i`` in ``out_indices``.
    """
    arch_zoo = {
        **dict.fromkeys(['t', 'tiny'],
                        {'embed_dims': 96,
                         'depths': (2, 2, 6, 2),
                         'num_heads': (3, 6, 12, 24)}),
        **dict.fromkeys(['s', 'small'],
                        {'embed_dims': 96,
                         'depths': (2, 2, 18, 2),
                         'num_heads': (3, 6, 12, 24)}),
        **dict.fromkeys(['b', 'base'],
                        {'embed_dims': 128,
                         'depths': (2, 2, 18, 2),
                         'num_heads': (4, 8, 16, 32)}),
        **dict.fromkeys(['l', 'large'],
                        {'embed_dims': 192,
                         'depths': (2, 2, 18, 2),
                         'num_heads': (6, 12, 24, 48)}),
    }  # yapf: disable

    def __init__(self,
                 arch: Union[str, dict] = 'tiny',
                 img_size: Union[int, Sequence[int], None] = 224,
                 patch_size: int = 4,
                 in_channels: int = 3,
                 window_size: int = 7,
                 mlp_ratio: float = 4.,
                 focal_levels: Union[int, Sequence[int]] = 2,
                 focal_windows: Union[int, Sequence[int]] = (7, 5, 3, 1),
                 focal_stages: Optional[Sequence[int]] = None,
                 focal_pool: str = 'fc',
                 expand_sizes: Union[int, Sequence[int]] = 3,
                 expand_layer: str = 'all',
                 use_shift: bool = False,
                 use_conv_embed: bool = False,
                 use_pre_norm: bool = False,
                 layer_scale_init_value: float = 0.,
                 use_abs_pos_embed: bool = False,
                 qkv_bias: bool = True,
                 qk_scale: Optional[float] = None,
                 drop_rate: float = 0.,
                 attn_drop_rate: float = 0.,
                 drop_path_rate: float = 0.1,
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 with_cp: bool = False,
                 norm_cfg: dict = dict(type='LN'),
                 act_cfg: dict = dict(type='GELU'),
                 pretrained: Optional[str] = None,
                 init_cfg: Optional[dict] = None) -> None:
        if pretrained is not None:
            # What mmseg's EncoderDecoder passes on from model.pretrained.
            if init_cfg is not None:
                raise ValueError('pretrained and init_cfg cannot both be '
                                 'set: use init_cfg')
            warnings.warn('pretrained is deprecated, use init_cfg')
            init_cfg = dict(type='Pretrained', checkpoint=pretrained)
        super().__init__(init_cfg=init_cfg)
        arch = self._parse_arch(arch)
        self.embed_dims = arch['embed_dims']
        depths, num_heads = tuple(arch['depths']), tuple(arch['num_heads'])
        self.num_stages = num_stages = len(depths)
        if len(num_heads) != num_stages:
            raise ValueError(f'num_heads must have one entry per stage '
                             f'({num_stages}, from depths), got '
                             f'{len(num_heads)}')
        if any(d < 1 for d in depths):
            raise ValueError(f'depths must be positive, got {depths}')
        focal_levels = _per_stage('focal_levels', focal_levels, num_stages)
        focal_windows = _per_stage('focal_windows', focal_windows, num_stages)
        expand_sizes = _per_stage('expand_sizes', expand_sizes, num_stages)
        if focal_pool not in POOL_METHODS:
            raise ValueError(f'focal_pool must be one of {POOL_METHODS}, '
                             f'got {focal_pool!r}')
        if expand_layer not in EXPAND_LAYERS:
            raise ValueError(f'expand_layer must be one of {EXPAND_LAYERS}, '
                             f'got {expand_layer!r}')
        focal_stages = tuple(range(num_stages)) if focal_stages is None \
            else tuple(focal_stages)
        if any(not 0 <= s < num_stages for s in focal_stages):
            raise ValueError(f'focal_stages must be in [0, {num_stages}), '
                             f'got {focal_stages}')
        out_indices = tuple(out_indices)
        if not out_indices or any(not 0 <= i < num_stages
                                  for i in out_indices):
            raise ValueError(f'out_indices must be a non-empty sequence of '
                             f'stage indices in [0, {num_stages}), got '
                             f'{out_indices}')
        if not -1 <= frozen_stages <= num_stages:
            raise ValueError(f'frozen_stages must be in [-1, {num_stages}], '
                             f'got {frozen_stages}')
        if patch_size < 1:
            raise ValueError(f'patch_size must be >= 1, got {patch_size}')
        if mlp_ratio <= 0:
            raise ValueError(f'mlp_ratio must be positive, got {mlp_ratio}')
        for name, rate in (('drop_rate', drop_rate), ('attn_drop_rate',
                                                      attn_drop_rate),
                           ('drop_path_rate', drop_path_rate)):
            if not 0 <= rate < 1:
                raise ValueError(f'{name} must be in [0, 1), got {rate}')
        if img_size is not None:
            img_size = (img_size, img_size) if isinstance(img_size, int) \
                else tuple(img_size)
            if len(img_size) != 2 or min(img_size) < patch_size:
                raise ValueError(f'img_size must be an int or (H, W) of at '
                                 f'least patch_size, got {img_size}')
            grid = (img_size[0] // patch_size, img_size[1] // patch_size)
            if window_size > min(grid):
                raise ValueError(
                    f'window_size {window_size} is larger than the stage-1 '
                    f'map {grid} at img_size {img_size}')
        elif use_abs_pos_embed:
            raise ValueError('use_abs_pos_embed needs img_size (the size of '
                             'the embedding)')

        self.img_size = img_size
        self.in_channels = in_channels
        self.out_indices = out_indices
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.num_features = [self.embed_dims * 2**i for i in range(num_stages)]

        if use_conv_embed:
            stem = dict(kernel_size=7, stride=patch_size, padding=2)
        else:
            stem = dict(kernel_size=patch_size, stride=patch_size)
        # The official stem has no pre-norm, whatever use_pre_norm says.
        self.patch_embed = FocalPatchEmbed(
            in_channels, self.embed_dims, norm_cfg=norm_cfg, **stem)
        if use_abs_pos_embed:
            self.absolute_pos_embed = nn.Parameter(
                torch.zeros(1, grid[0] * grid[1], self.embed_dims))
            self.pos_grid = grid
        else:
            self.absolute_pos_embed = None
        self.drop_after_pos = nn.Dropout(p=drop_rate)

        dpr = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        self.stages = ModuleList()
        for i, (depth, heads) in enumerate(zip(depths, num_heads)):
            dims = self.num_features[i]
            # The official model builds blocks whose training-size map fits
            # in one window without surroundings and shift.
            fits = img_size is not None and min(grid[0] // 2**i,
                                                grid[1] // 2**i) <= window_size
            blocks = []
            for j in range(depth):
                skip_expand = fits or (expand_layer == 'even' and j % 2 == 0) \
                    or (expand_layer == 'odd' and j % 2 == 1)
                blocks.append(
                    FocalBlock(
                        dims,
                        heads,
                        mlp_ratio=mlp_ratio,
                        drop_rate=drop_rate,
                        drop_path_rate=dpr[sum(depths[:i]) + j],
                        layer_scale_init_value=layer_scale_init_value,
                        act_cfg=act_cfg,
                        norm_cfg=norm_cfg,
                        with_cp=with_cp,
                        window_size=window_size,
                        expand_size=0 if skip_expand else expand_sizes[i],
                        shift_size=window_size //
                        2 if use_shift and j % 2 and not fits else 0,
                        focal_level=focal_levels[i],
                        focal_window=focal_windows[i],
                        pool_method=focal_pool
                        if i in focal_stages else 'none',
                        qkv_bias=qkv_bias,
                        qk_scale=qk_scale,
                        attn_drop_rate=attn_drop_rate))
            downsample = None
            if i < num_stages - 1:
                down = dict(kernel_size=3, stride=2, padding=1) \
                    if use_conv_embed else dict(kernel_size=2, stride=2)
                downsample = FocalPatchEmbed(
                    dims,
                    dims * 2,
                    norm_cfg=norm_cfg,
                    use_pre_norm=use_pre_norm,
                    **down)
            self.stages.append(FocalStage(blocks, downsample))

        for i in out_indices:
            self.add_module(
                f'norm{i}',
                build_norm_layer(norm_cfg, self.num_features[i])[1])
        self._freeze_stages()

    @classmethod
    def _parse_arch(cls, arch: Union[str, dict]) -> Dict:
        if isinstance(arch, str):
            if arch.lower() not in cls.arch_zoo:
                raise ValueError(f'Unknown arch {arch!r}; choose one of '
                                 f'{sorted(set(cls.arch_zoo))} or pass a '
                                 'dict')
            return cls.arch_zoo[arch.lower()]
        if not isinstance(arch, dict):
            raise TypeError(f'arch must be a str or a dict, got {type(arch)}')
        needed = {'embed_dims', 'depths', 'num_heads'}
        if set(arch) != needed:
            raise ValueError(f'A custom arch needs exactly the keys '
                             f'{sorted(needed)}, got {sorted(arch)}')
        dims, heads = arch['embed_dims'], tuple(arch['num_heads'])
        for i, h in enumerate(heads):
            if h <= 0 or (dims * 2**i) % h:
                raise ValueError(
                    f'num_heads[{i}] = {h} does not divide the stage-{i} '
                    f'channels embed_dims * 2**{i} = {dims * 2**i}')
        return arch

    def init_weights(self) -> None:
        pretrained = self.init_cfg is not None and \
            self.init_cfg.get('type') == 'Pretrained'
        if pretrained:
            checkpoint = self.init_cfg['checkpoint']
            if not missing_local_file(checkpoint):
                load_pretrained(self, checkpoint)
                return
            print_log(
                f'Pretrained checkpoint {checkpoint!r} not found: '
                'FocalTransformer STARTS FROM RANDOM INITIALISATION. Put the '
                'official file there (see the README) or set the backbone '
                'init_cfg to None to silence this.',
                logger='current',
                level=logging.WARNING)
        else:
            super().init_weights()
            if self.init_cfg is not None:
                return
        # The official initialisation.
        for m in self.modules():
            if isinstance(m, nn.Linear):
                trunc_normal_(m.weight, std=.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if self.absolute_pos_embed is not None:
            trunc_normal_(self.absolute_pos_embed, std=.02)

    def _freeze_stages(self) -> None:
        if self.frozen_stages >= 0:
            self.patch_embed.eval()
            for p in self.patch_embed.parameters():
                p.requires_grad = False
            if self.absolute_pos_embed is not None:
                self.absolute_pos_embed.requires_grad = False
        for i in range(self.frozen_stages):
            modules = [self.stages[i]]
            if i in self.out_indices:
                modules.append(getattr(self, f'norm{i}'))
            for m in modules:
                m.eval()
                for p in m.parameters():
                    p.requires_grad = False

    def train(self, mode: bool = True) -> 'FocalTransformer':
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self

    def _position_embedding(self, height: int, width: int) -> torch.Tensor:
        pos = self.absolute_pos_embed.view(1, *self.pos_grid, -1)
        if (height, width) != self.pos_grid:
            pos = F.interpolate(
                pos.permute(0, 3, 1, 2),
                size=(height, width),
                mode='bicubic',
                align_corners=False).permute(0, 2, 3, 1)
        return pos

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f'FocalTransformer expects a (B, {self.in_channels}, H, W) '
                f'image batch, got shape {tuple(x.shape)}')
        if not x.is_floating_point():
            raise TypeError('FocalTransformer expects a floating-point image '
                            f'batch (normalised by the data preprocessor), '
                            f'got {x.dtype}')
        if self.training and not torch.isfinite(x).all():
            raise ValueError('The input batch contains NaN or Inf values: '
                             'check the data pipeline and normalisation')
        if min(x.shape[2:]) < self.patch_embed.projection.stride[0]:
            raise ValueError(
                f'Input {tuple(x.shape[2:])} is smaller than one patch '
                f'({self.patch_embed.projection.stride[0]} pixels)')
        x = self.patch_embed(x)
        if self.absolute_pos_embed is not None:
            x = x + self._position_embedding(x.shape[1], x.shape[2])
        x = self.drop_after_pos(x)
        outs = []
        for i, stage in enumerate(self.stages):
            out, x = stage(x)
            if i in self.out_indices:
                out = getattr(self, f'norm{i}')(out)
                outs.append(out.permute(0, 3, 1, 2).contiguous())
            if i == max(self.out_indices):
                break
        return tuple(outs)
