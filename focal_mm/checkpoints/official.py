# Copyright (c) focal_mm contributors. All rights reserved.
"""Bridges to the official Focal Transformer release, both families:
Focal (``classification/focal_transformer.py``, "version 1") and Focal-fast
(``classification/focal_transformer_v2.py``, "version 2").

- :func:`official_to_backbone` / :func:`official_to_mmpretrain` convert an
  official state dict of either family (recognised by its keys) to this
  project's backbone (:class:`~focal_mm.models.FocalTransformer` or
  :class:`~focal_mm.models.FocalFastTransformer`) or to an mmpretrain
  ``ImageClassifier`` built on it.
- :func:`mmpretrain_model_cfg` turns the official constructor arguments of
  either family into the equivalent mmpretrain model config.
"""
import re
from collections import OrderedDict
from typing import Dict, Mapping, Optional

import torch

# Buffers the official models (both families) keep in their state dicts:
# index tables, coordinates and masks that this project computes for each
# input size instead.
OFFICIAL_BUFFERS = re.compile(
    r'(relative_position_index(_\d+)?|valid_ind_rolled|valid_ind_unfold_\d+'
    r'|attn_mask|window_coords|topk_cloest_(indice|coords)_\d+)$')

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
    # Focal-fast: the position-bias MLP of every attention level.
    (r'^layers\.(\d+)\.blocks\.(\d+)\.attn\.coord2rpb_all\.(\d+)\.',
     r'stages.\1.blocks.\2.attn.bias_mlps.\3.'),
    (r'^norm\.', 'norm{last}.'),
]


def is_official_state_dict(state_dict: Mapping[str, torch.Tensor]) -> bool:
    """Whether the keys are those of the official model."""
    return any(k.startswith('layers.0.blocks.') for k in state_dict)


def official_version(state_dict: Mapping[str, torch.Tensor]) -> int:
    """2 for a Focal-fast state dict (position-bias MLPs), else 1."""
    return 2 if any('.attn.coord2rpb_all.' in k for k in state_dict) else 1


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
    """Converts an official state dict of either family to the keys of
    :class:`FocalTransformer` / :class:`FocalFastTransformer` (the same
    skeleton; see :func:`official_version` for which one).

    The classification head and the official per-size buffers are dropped;
    the final ``norm`` becomes the last stage's output norm.
    """
    return _convert(state_dict, backbone_key)


def official_to_mmpretrain(
    state_dict: Mapping[str,
                        torch.Tensor]) -> 'OrderedDict[str, torch.Tensor]':
    """Converts an official state dict to the keys of the mmpretrain
    ``ImageClassifier`` that :func:`mmpretrain_model_cfg` describes
    (``backbone.*``, ``head.fc.*``), for either family; the per-size
    buffers are dropped."""
    return _convert(state_dict, mmpretrain_key)


# Official constructor defaults (classification/focal_transformer.py; the
# Focal-fast constructor adds focal_topK).
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
OFFICIAL_DEFAULTS_V2 = dict(OFFICIAL_DEFAULTS, focal_topK=64)
VERSIONS = (1, 2)


def backbone_kwargs(official_kwargs: Mapping, version: int = 1) -> Dict:
    """Backbone arguments equivalent to an official
    ``FocalTransformer(**official_kwargs)`` (without its head): of
    :class:`FocalTransformer` for version 1, of
    :class:`FocalFastTransformer` for version 2 (Focal-fast)."""
    if version not in VERSIONS:
        raise ValueError(f'version must be one of {VERSIONS}, got {version!r}')
    defaults = OFFICIAL_DEFAULTS if version == 1 else OFFICIAL_DEFAULTS_V2
    unknown = set(official_kwargs) - set(defaults)
    if unknown:
        raise ValueError(f'Unknown official arguments (version {version}): '
                         f'{sorted(unknown)}')
    cfg = {**defaults, **official_kwargs}
    if not cfg['patch_norm']:
        raise ValueError('patch_norm=False is not supported: every released '
                         'model normalises its patch embeddings')
    depths = tuple(cfg['depths'])
    common = dict(
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
        focal_stages=tuple(cfg['focal_stages']),
        focal_pool=cfg['focal_pool'],
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
    if version == 2:
        # Focal-fast's attention uses neither the focal windows nor the
        # fine surroundings (expand_*): they build nothing there.
        return dict(
            type='FocalFastTransformer',
            **common,
            focal_topk=cfg['focal_topK'])
    # expand_stages is accepted but unused by the official model.
    return dict(
        type='FocalTransformer',
        **common,
        focal_windows=tuple(cfg['focal_windows']),
        expand_sizes=tuple(cfg['expand_sizes']),
        expand_layer=cfg['expand_layer'])


def mmpretrain_model_cfg(official_kwargs: Mapping, version: int = 1) -> Dict:
    """The mmpretrain ``ImageClassifier`` config equivalent to an official
    ``FocalTransformer(**official_kwargs)`` of ``version`` 1 (Focal,
    ``focal_transformer.py``) or 2 (Focal-fast, ``focal_transformer_v2.py``).

    Example:
        >>> from mmpretrain.models import build_classifier
        >>> cfg = mmpretrain_model_cfg(dict(embed_dim=96, depths=[2, 2, 6, 2],
        ...                                 focal_levels=[2, 2, 2, 2]))
        >>> model = build_classifier(cfg)
    """
    backbone = backbone_kwargs(official_kwargs, version)
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
