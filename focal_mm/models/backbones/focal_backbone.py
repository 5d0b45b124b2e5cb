# Copyright (c) focal_mm contributors. All rights reserved.
"""What both Focal Transformer families share: blocks, stages, patch
embeddings, dense outputs, freezing and checkpoint loading.

The two official families differ only in their attention (which keys a query
window attends and how its position biases are made): a subclass of
:class:`FocalBackbone` names its attention module and the arguments that are
its own (:class:`~focal_mm.models.FocalTransformer`,
:class:`~focal_mm.models.FocalFastTransformer`).
"""
import warnings
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from mmcv.cnn import build_norm_layer
from mmcv.cnn.bricks import LayerScale
from mmcv.cnn.bricks.drop import build_dropout
from mmcv.cnn.bricks.transformer import FFN
from mmengine.model import BaseModule, ModuleList
from mmengine.model.weight_init import trunc_normal_
from mmengine.registry import MODELS

from ...checkpoints.pretrained import load_pretrained
from ...ops.execution_plan import check_chunk_bytes
from ..attention.focal_pooling import check_pool_method
from ..attention.window_attention_base import (check_attn_impl, check_heads,
                                               fits_one_window)
from .patch_embed import FocalPatchEmbed


class FocalBlock(BaseModule):
    """Pre-norm transformer block around a focal attention module (either
    family's).

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
        attn_cfg (dict): The attention module: ``type`` (a class or a
            registered name, e.g. :class:`FocalAttention` or
            :class:`FocalFastAttention`) and its arguments other than
            ``embed_dims``, ``num_heads`` and ``proj_drop_rate``.

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
                 attn_cfg: dict = dict(type='FocalAttention')) -> None:
        super().__init__()
        self.with_cp = with_cp
        self.norm1 = build_norm_layer(norm_cfg, embed_dims)[1]
        self.attn = MODELS.build(
            dict(
                attn_cfg,
                embed_dims=embed_dims,
                num_heads=num_heads,
                proj_drop_rate=drop_rate))
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


def official_stage_sizes(img_size: Tuple[int, int], stem: dict, down: dict,
                         num_stages: int) -> List[Tuple[int, int]]:
    """The map size of every stage of the official model at ``img_size``,
    from its convolutions' arithmetic (``stem`` and ``down``: kernel_size,
    stride and integer padding of the patch embeddings)."""

    def conv(size: int, kernel_size: int, stride: int, padding: int) -> int:
        return (size + 2 * padding - kernel_size) // stride + 1

    sizes = [tuple(conv(n, **stem) for n in img_size)]
    for _ in range(num_stages - 1):
        sizes.append(tuple(conv(n, **down) for n in sizes[-1]))
    return sizes


def check_finite(x: torch.Tensor) -> None:
    """Raises for a batch with NaN or Inf values. On CUDA the check is a
    device-side assertion, so that a training step never waits for the
    device to answer a Python ``if``; the error then surfaces at the next
    synchronisation, as a CUDA device assert carrying this message."""
    message = ('The input batch contains NaN or Inf values: check the data '
               'pipeline and normalisation')
    if x.device.type == 'cuda':
        torch._assert_async(torch.isfinite(x).all(), message)
    elif not torch.isfinite(x).all():
        raise ValueError(message)


def official_img_size(img_size, patch_size: int,
                      use_abs_pos_embed: bool) -> Optional[Tuple[int, int]]:
    """``img_size`` as ``(H, W)``, or None (the dense-prediction mode);
    raises ValueError for a bad one."""
    if img_size is None:
        if use_abs_pos_embed:
            raise ValueError('use_abs_pos_embed needs img_size (the size of '
                             'the embedding)')
        return None
    img_size = (img_size, img_size) if isinstance(img_size, int) \
        else tuple(img_size)
    if len(img_size) != 2 or min(img_size) < patch_size:
        raise ValueError(f'img_size must be an int or (H, W) of at least '
                         f'patch_size, got {img_size}')
    return img_size


def patch_convs(patch_size: int, use_conv_embed: bool,
                dense: bool) -> Tuple[dict, dict]:
    """The convolutions of the stem and of the downsampling embeddings.
    Non-overlapping ones drop, in the official model, the last row and
    column of a map that is not a multiple of the stride; dense prediction
    pads the bottom-right corner instead (as mmdet's Swin), so that no pixel
    is lost. The overlapping ones have the official fixed padding."""
    if use_conv_embed:
        return (dict(kernel_size=7, stride=patch_size, padding=2),
                dict(kernel_size=3, stride=2, padding=1))
    padding = 'corner' if dense else 0
    return (dict(kernel_size=patch_size, stride=patch_size, padding=padding),
            dict(kernel_size=2, stride=2, padding=padding))


def per_stage(name: str, value, num_stages: int) -> tuple:
    """Expands an int to one value per stage and checks a sequence's length."""
    if isinstance(value, int):
        return (value, ) * num_stages
    value = tuple(value)
    if len(value) != num_stages:
        raise ValueError(f'{name} must have one entry per stage '
                         f'({num_stages}, from depths), got {len(value)}')
    return value


class FocalBackbone(BaseModule):
    """The skeleton of both Focal Transformer families (Yang et al., "Focal
    Self-attention for Local-Global Interactions in Vision Transformers",
    NeurIPS 2021): a dense-prediction backbone (multi-scale NCHW outputs)
    that is also numerically identical to the official classification model
    of its family.

    Subclasses give the attention of each block
    (:meth:`_attention_cfg`); everything else is here.

    Args:
        arch (str | dict): ``'tiny'``, ``'small'``, ``'base'``, ``'large'``,
            or a dict with keys ``embed_dims``, ``depths`` and ``num_heads``.
            Default: ``'tiny'``.
        img_size (int | tuple[int] | None): Training image size; setting
            it builds the official classification model (the "official
            mode"): blocks whose map at this size fits in one window get the
            window ``min(H, W)`` of that map and no shift (nor, in Focal, fine
            surroundings: a 224 checkpoint has no stage-4 neighbour tables),
            the absolute position embedding has this size, and the
            non-overlapping patch embeddings (stem and downsampling without
            ``use_conv_embed``) have no padding: a map of odd size loses its
            last row and column, as in the official code (228 x 260 gives
            stage maps 57 x 65, 28 x 32, 14 x 16, 7 x 8). ``None`` is the
            dense-prediction mode: every block is built alike, and the
            patch embeddings pad the bottom-right corner to a multiple of the
            stride (mmdet's Swin convention), so no pixel is dropped. The
            overlapping convolutional embeddings (``use_conv_embed``) have
            the official fixed padding in both modes. Default: 224.
        patch_size (int): Stem stride. Default: 4.
        in_channels (int): Image channels. Default: 3.
        window_size (int): Query window. Default: 7.
        mlp_ratio (float): FFN expansion. Default: 4.
        focal_levels (int | Sequence[int]): Focal levels per stage, the fine
            level included. Default: 2.
        focal_stages (Sequence[int], optional): Stages with pooled levels;
            None for all. Default: None.
        focal_pool (str): ``'fc'``, ``'conv'``, ``'mean'``, ``'max'`` or
            ``'none'``. Default: ``'fc'``.
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
        norm_eval (bool): Accepted for configs written for other backbones
            (mmdet's ResNet, Swin); the model has no batch-norm layers, so it
            changes nothing. Default: False.
        with_cp (bool): Gradient checkpointing per block. Default: False.
        norm_cfg (dict): Default: ``dict(type='LN')``.
        act_cfg (dict): Default: ``dict(type='GELU')``.
        attn_chunk_bytes (int, optional): Budget of a chunk of windows
            attended at once (its gathered keys and values, or attention
            weights); None: the device's default (2 MB in inference and 4 MB
            in training on a CPU; a 32nd of the memory of a CUDA device, so
            that a block's windows usually form one chunk). Default: None.
        attn_impl (str): ``'auto'`` (the device's execution plan, see
            ``focal_mm/ops/execution_plan.py``), ``'chunked'`` (the same
            path, explicitly) or ``'triton'`` (the fused Triton kernel;
            torch >= 2.4 and Triton >= 3.0; CUDA, or CPU under
            ``TRITON_INTERPRET=1``). Default: ``'auto'``.
        pretrained (str, optional): Deprecated alias of ``init_cfg=dict(
            type='Pretrained', checkpoint=pretrained)``.
        init_cfg (dict, optional): ``dict(type='Pretrained',
            checkpoint=PATH_OR_URL)`` loads an official (either family's
            release format) or converted checkpoint; a local file that does
            not exist is an error. None: the official random initialisation.

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
                 focal_stages: Optional[Sequence[int]] = None,
                 focal_pool: str = 'fc',
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
                 attn_chunk_bytes: Optional[int] = None,
                 attn_impl: str = 'auto',
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
        self.num_stages = len(depths)
        self.focal_levels = per_stage('focal_levels', focal_levels,
                                      self.num_stages)
        self.focal_stages = tuple(range(self.num_stages)) \
            if focal_stages is None else tuple(focal_stages)
        self.out_indices = tuple(out_indices)
        self._check_args(depths, num_heads, focal_pool, frozen_stages,
                         patch_size, mlp_ratio,
                         dict(
                             drop_rate=drop_rate,
                             attn_drop_rate=attn_drop_rate,
                             drop_path_rate=drop_path_rate))
        check_chunk_bytes(attn_chunk_bytes)
        check_attn_impl(attn_impl)
        self.img_size = official_img_size(img_size, patch_size,
                                          use_abs_pos_embed)
        stem, down = patch_convs(patch_size, use_conv_embed, img_size is None)
        stage_sizes = None
        if self.img_size is not None:
            stage_sizes = official_stage_sizes(self.img_size, stem, down,
                                               self.num_stages)
            if min(stage_sizes[-1]) < 1:
                raise ValueError(f'img_size {self.img_size} is too small for '
                                 f'{self.num_stages} stages: stage maps '
                                 f'{stage_sizes}')
        self._check_family_args()

        self.in_channels = in_channels
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.num_features = [
            self.embed_dims * 2**i for i in range(self.num_stages)
        ]

        # The official stem has no pre-norm, whatever use_pre_norm says.
        self.patch_embed = FocalPatchEmbed(
            in_channels, self.embed_dims, norm_cfg=norm_cfg, **stem)
        if use_abs_pos_embed:
            self.pos_grid = stage_sizes[0]
            self.absolute_pos_embed = nn.Parameter(
                torch.zeros(1, self.pos_grid[0] * self.pos_grid[1],
                            self.embed_dims))
        else:
            self.absolute_pos_embed = None
        self.drop_after_pos = nn.Dropout(p=drop_rate)

        block_args = dict(
            mlp_ratio=mlp_ratio,
            drop_rate=drop_rate,
            layer_scale_init_value=layer_scale_init_value,
            act_cfg=act_cfg,
            norm_cfg=norm_cfg,
            with_cp=with_cp)
        attn_args = dict(
            qkv_bias=qkv_bias,
            qk_scale=qk_scale,
            attn_drop_rate=attn_drop_rate,
            attn_chunk_bytes=attn_chunk_bytes,
            attn_impl=attn_impl)
        self.stages = self._build_stages(
            depths, num_heads, stage_sizes, window_size, use_shift,
            focal_pool, drop_path_rate, block_args, attn_args,
            dict(norm_cfg=norm_cfg, use_pre_norm=use_pre_norm, **down))

        for i in self.out_indices:
            self.add_module(
                f'norm{i}',
                build_norm_layer(norm_cfg, self.num_features[i])[1])
        self._freeze_stages()

    def _build_stages(self, depths: tuple, num_heads: tuple,
                      stage_sizes: Optional[List[Tuple[int, int]]],
                      window_size: int, use_shift: bool, focal_pool: str,
                      drop_path_rate: float, block_args: dict,
                      attn_args: dict, down: dict) -> ModuleList:
        """The stages: blocks (arguments ``block_args``, attention arguments
        ``attn_args`` and the family's) and the downsampling embedding
        (``down``) after every stage but the last."""
        drop_paths = iter(
            torch.linspace(0, drop_path_rate, sum(depths)).tolist())
        stages = ModuleList()
        for i, (depth, heads) in enumerate(zip(depths, num_heads)):
            # The official model builds a block whose training-size map fits
            # in one window with that map's side as window, and no shift.
            fits = stage_sizes is not None and fits_one_window(
                *stage_sizes[i], window_size)
            attn_cfg = dict(
                window_size=min(stage_sizes[i]) if fits else window_size,
                focal_level=self.focal_levels[i],
                pool_method=focal_pool if i in self.focal_stages else 'none',
                **attn_args)
            shift = window_size // 2 if use_shift and not fits else 0
            blocks = [
                FocalBlock(
                    self.num_features[i],
                    heads,
                    drop_path_rate=next(drop_paths),
                    attn_cfg=dict(
                        attn_cfg,
                        shift_size=shift if j % 2 else 0,
                        **self._attention_cfg(i, j, fits)),
                    **block_args) for j in range(depth)
            ]
            downsample = None
            if i < self.num_stages - 1:
                downsample = FocalPatchEmbed(self.num_features[i],
                                             self.num_features[i] * 2, **down)
            stages.append(FocalStage(blocks, downsample))
        return stages

    def _check_args(self, depths: tuple, num_heads: tuple, focal_pool: str,
                    frozen_stages: int, patch_size: int, mlp_ratio: float,
                    rates: Dict[str, float]) -> None:
        """Raises ValueError naming the first bad argument of the skeleton
        (``self.num_stages``, ``focal_stages`` and ``out_indices`` set)."""
        num_stages = self.num_stages
        if len(num_heads) != num_stages:
            raise ValueError(f'num_heads must have one entry per stage '
                             f'({num_stages}, from depths), got '
                             f'{len(num_heads)}')
        if any(d < 1 for d in depths):
            raise ValueError(f'depths must be positive, got {depths}')
        check_pool_method(focal_pool, 'focal_pool')
        if any(not 0 <= s < num_stages for s in self.focal_stages):
            raise ValueError(f'focal_stages must be in [0, {num_stages}), '
                             f'got {self.focal_stages}')
        if not self.out_indices or any(not 0 <= i < num_stages
                                       for i in self.out_indices):
            raise ValueError(f'out_indices must be a non-empty sequence of '
                             f'stage indices in [0, {num_stages}), got '
                             f'{self.out_indices}')
        if not -1 <= frozen_stages <= num_stages:
            raise ValueError(f'frozen_stages must be in [-1, {num_stages}], '
                             f'got {frozen_stages}')
        if patch_size < 1:
            raise ValueError(f'patch_size must be >= 1, got {patch_size}')
        if mlp_ratio <= 0:
            raise ValueError(f'mlp_ratio must be positive, got {mlp_ratio}')
        for name, rate in rates.items():
            if not 0 <= rate < 1:
                raise ValueError(f'{name} must be in [0, 1), got {rate}')

    def _check_family_args(self) -> None:
        """Checks (and expands per stage) the family's own arguments;
        ``self.num_stages`` is set."""

    def _attention_cfg(self, stage: int, block: int, fits: bool) -> Dict:
        """The family's part of the attention config of block ``block`` of
        stage ``stage`` (its ``type`` and own arguments); ``fits``: the
        official model's map fits in one window there (official mode)."""
        raise NotImplementedError

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
        dims = arch['embed_dims']
        for i, heads in enumerate(arch['num_heads']):
            check_heads(dims * 2**i, heads, f'num_heads[{i}]')
        return arch

    def init_weights(self) -> None:
        if self.init_cfg is not None and \
                self.init_cfg.get('type') == 'Pretrained':
            # A local file or a URL (downloaded once); a missing file raises
            # FileNotFoundError. Training from scratch is init_cfg=None.
            load_pretrained(self, self.init_cfg['checkpoint'])
            return
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

    def train(self, mode: bool = True) -> 'FocalBackbone':
        super().train(mode)
        self._freeze_stages()
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
                f'{type(self).__name__} expects a (B, {self.in_channels}, '
                f'H, W) image batch, got shape {tuple(x.shape)}')
        if not x.is_floating_point():
            raise TypeError(f'{type(self).__name__} expects a floating-point '
                            'image batch (normalised by the data '
                            f'preprocessor), got {x.dtype}')
        if self.training:
            check_finite(x)
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
