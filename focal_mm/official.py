# Copyright (c) focal_mm contributors. All rights reserved.
"""Bridges to the official Focal Transformer release.

- :func:`official_to_backbone` / :func:`official_to_mmpretrain` convert an
  official state dict (``classification/focal_transformer.py`` key names) to
  this project's :class:`~focal_mm.models.FocalTransformer` backbone or to an
  mmpretrain ``ImageClassifier`` built on it.
- :func:`mmpretrain_model_cfg` turns the official constructor arguments into
  the equivalent mmpretrain model config.
"""
import re
from collections import OrderedDict
from typing import Dict, Mapping, Optional

import torch

# Buffers the official model keeps in its state dict: index tables and masks
# that this project computes for each input size instead.
OFFICIAL_BUFFERS = re.compile(
    r'(relative_position_index(_\d+)?|valid_ind_rolled|valid_ind_unfold_\d+'
    r'|attn_mask)$')

# (official pattern, project replacement), applied in order; the first match
# wins. ``{last}`` is the index of the last stage.
_KEY_RULES = [
    (r'^patch_embed\.proj\.', 'patch_embed.projection.'),
    (r'^patch_embed\.(norm|pre_norm)\.', r'patch_embed.\1.'),
    (r'^absolute_pos_embed$', 'absolute_pos_embed'),
    (r'^layers\.(\d+)\.downsample\.proj\.',
     r'stages.\1.downsample.projection.'),
    (r'^layers\.(\d+)\.downsample\.(norm|pre_norm)\.',
     r'stages.\1.downsample.\2.'),
    (r'^layers\.(\d+)\.blocks\.(\d+)\.pool_layers\.',
     r'stages.\1.blocks.\2.attn.pool_layers.'),
    (r'^layers\.(\d+)\.blocks\.(\d+)\.mlp\.fc1\.',
     r'stages.\1.blocks.\2.ffn.layers.0.0.'),
    (r'^layers\.(\d+)\.blocks\.(\d+)\.mlp\.fc2\.',
     r'stages.\1.blocks.\2.ffn.layers.1.'),
    (r'^layers\.(\d+)\.blocks\.(\d+)\.gamma_1$',
     r'stages.\1.blocks.\2.gamma1.weight'),
    (r'^layers\.(\d+)\.blocks\.(\d+)\.gamma_2$',
     r'stages.\1.blocks.\2.ffn.gamma2.weight'),
    (r'^layers\.(\d+)\.blocks\.(\d+)\.(norm1|norm2)\.',
     r'stages.\1.blocks.\2.\3.'),
    (r'^layers\.(\d+)\.blocks\.(\d+)\.attn\.(qkv|proj)\.',
     r'stages.\1.blocks.\2.attn.\3.'),
    (r'^layers\.(\d+)\.blocks\.(\d+)\.attn\.(relative_position_bias_table'
     r'(_to_neighbors|_to_windows\.\d+)?)$', r'stages.\1.blocks.\2.attn.\3'),
    (r'^norm\.', 'norm{last}.'),
]


def is_official_state_dict(state_dict: Mapping[str, torch.Tensor]) -> bool:
    """Whether the keys are those of the official model."""
    return any(k.startswith('layers.0.blocks.') for k in state_dict)


def _num_stages(state_dict: Mapping[str, torch.Tensor]) -> int:
    stages = {
        int(m.group(1))
        for k in state_dict
        for m in [re.match(r'^layers\.(\d+)\.', k)] if m
    }
    if not stages:
        raise ValueError('Not an official Focal Transformer state dict: no '
                         '"layers.<i>." keys')
    return max(stages) + 1


def backbone_key(key: str, num_stages: int = 4) -> Optional[str]:
    """The :class:`FocalTransformer` key of an official key.

    Returns None for the classification head and the official index buffers.

    Raises:
        ValueError: if ``key`` is neither a known parameter nor a buffer.
    """
    if key.startswith('head.') or OFFICIAL_BUFFERS.search(key):
        return None
    for pattern, replacement in _KEY_RULES:
        if re.match(pattern, key):
            new_key = re.sub(pattern, replacement, key, count=1)
            return new_key.format(last=num_stages - 1)
    raise ValueError(f'Unknown key in an official state dict: {key!r}')


def mmpretrain_key(key: str, num_stages: int = 4) -> Optional[str]:
    """The key in the mmpretrain classifier of :func:`mmpretrain_model_cfg`
    (``backbone.*``, ``head.fc.*``) of an official key; None for buffers."""
    if key in ('head.weight', 'head.bias'):
        return 'head.fc.' + key[5:]
    new_key = backbone_key(key, num_stages)
    return None if new_key is None else 'backbone.' + new_key


def _convert(state_dict, key_fn) -> 'OrderedDict[str, torch.Tensor]':
    num_stages = _num_stages(state_dict)
    converted = OrderedDict()
    for key, value in state_dict.items():
        new_key = key_fn(key, num_stages)
        if new_key is not None:
            converted[new_key] = value
    return converted


def official_to_backbone(
    state_dict: Mapping[str,
                        torch.Tensor]) -> 'OrderedDict[str, torch.Tensor]':
    """Converts an official state dict to :class:`FocalTransformer` keys.

    The classification head and the official index buffers are dropped; the
    final ``norm`` becomes the last stage's output norm.
    """
    return _convert(state_dict, backbone_key)


def official_to_mmpretrain(
    state_dict: Mapping[str,
                        torch.Tensor]) -> 'OrderedDict[str, torch.Tensor]':
    """Converts an official state dict to the keys of the mmpretrain
    ``ImageClassifier`` that :func:`mmpretrain_model_cfg` describes
    (``backbone.*``, ``head.fc.*``); index buffers are dropped."""
    return _convert(state_dict, mmpretrain_key)


# Official constructor defaults (classification/focal_transformer.py).
OFFICIAL_DEFAULTS = dict(
    img_size=224,
    patch_size=4,
    in_chans=3,
    num_classes=1000,
    embed_dim=96,
    depths=(2, 2, 6, 2),
    num_heads=(3, 6, 12, 24),
    window_size=7,
    mlp_ratio=4.,
    qkv_bias=True,
    qk_scale=None,
    drop_rate=0.,
    attn_drop_rate=0.,
    drop_path_rate=0.1,
    ape=False,
    patch_norm=True,
    use_checkpoint=False,
    use_shift=False,
    focal_stages=(0, 1, 2, 3),
    focal_levels=(1, 1, 1, 1),
    focal_windows=(7, 5, 3, 1),
    focal_pool='fc',
    expand_stages=(0, 1, 2, 3),
    expand_sizes=(3, 3, 3, 3),
    expand_layer='all',
    use_conv_embed=False,
    use_layerscale=False,
    layerscale_value=1e-4,
    use_pre_norm=False)


def backbone_kwargs(official_kwargs: Mapping) -> Dict:
    """:class:`FocalTransformer` arguments equivalent to an official
    ``FocalTransformer(**official_kwargs)`` (without its head)."""
    unknown = set(official_kwargs) - set(OFFICIAL_DEFAULTS)
    if unknown:
        raise ValueError(f'Unknown official arguments: {sorted(unknown)}')
    cfg = {**OFFICIAL_DEFAULTS, **official_kwargs}
    if not cfg['patch_norm']:
        raise ValueError('patch_norm=False is not supported: every released '
                         'model normalises its patch embeddings')
    # expand_stages is accepted but unused by the official model.
    depths = tuple(cfg['depths'])
    return dict(
        type='FocalTransformer',
        arch=dict(
            embed_dims=cfg['embed_dim'],
            depths=depths,
            num_heads=tuple(cfg['num_heads'])),
        img_size=cfg['img_size'],
        patch_size=cfg['patch_size'],
        in_channels=cfg['in_chans'],
        window_size=cfg['window_size'],
        mlp_ratio=cfg['mlp_ratio'],
        focal_levels=tuple(cfg['focal_levels']),
        focal_windows=tuple(cfg['focal_windows']),
        focal_stages=tuple(cfg['focal_stages']),
        focal_pool=cfg['focal_pool'],
        expand_sizes=tuple(cfg['expand_sizes']),
        expand_layer=cfg['expand_layer'],
        use_shift=cfg['use_shift'],
        use_conv_embed=cfg['use_conv_embed'],
        use_pre_norm=cfg['use_pre_norm'],
        layer_scale_init_value=cfg['layerscale_value']
        if cfg['use_layerscale'] else 0.,
        use_abs_pos_embed=cfg['ape'],
        qkv_bias=cfg['qkv_bias'],
        qk_scale=cfg['qk_scale'],
        drop_rate=cfg['drop_rate'],
        attn_drop_rate=cfg['attn_drop_rate'],
        drop_path_rate=cfg['drop_path_rate'],
        with_cp=cfg['use_checkpoint'],
        out_indices=(len(depths) - 1, ))


def mmpretrain_model_cfg(official_kwargs: Mapping) -> Dict:
    """The mmpretrain ``ImageClassifier`` config equivalent to an official
    ``FocalTransformer(**official_kwargs)``.

    Example:
        >>> from mmpretrain.models import build_classifier
        >>> cfg = mmpretrain_model_cfg(dict(embed_dim=96, depths=[2, 2, 6, 2],
        ...                                 focal_levels=[2, 2, 2, 2]))
        >>> model = build_classifier(cfg)
    """
    backbone = backbone_kwargs(official_kwargs)
    num_classes = official_kwargs.get('num_classes',
                                      OFFICIAL_DEFAULTS['num_classes'])
    embed_dims = backbone['arch']['embed_dims']
    num_stages = len(backbone['arch']['depths'])
    return dict(
        type='ImageClassifier',
        _scope_='mmpretrain',  # builds in mmpretrain whatever the default
        backbone=backbone,
        neck=dict(type='GlobalAveragePooling'),
        head=dict(
            type='LinearClsHead',
            num_classes=num_classes,
            in_channels=embed_dims * 2**(num_stages - 1),
            loss=dict(type='CrossEntropyLoss', loss_weight=1.0)))
