# Copyright (c) focal_mm contributors. All rights reserved.
"""The part of a config's model that exports to ONNX, with its weights.

- mmpretrain configs (``default_scope='mmpretrain'``): the whole
  ``ImageClassifier``, image to logits (:class:`ClassifierLogits`).
- mmdet and mmseg configs: the Focal backbone only, image to its stage
  outputs, named ``stage{i}`` for each ``i`` in ``out_indices``. Whole
  detectors and segmentors do not export here (see docs/deployment.md).

The graph takes the image normalised as the config's data preprocessor
does (mean / std, RGB order); that step is not part of it.
"""
import importlib
from typing import NamedTuple, Optional, Tuple, Union

import torch.nn as nn
from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.registry import DefaultScope
from torch import Tensor

from ..checkpoints.official import (is_official_state_dict,
                                    official_to_mmpretrain)
from ..checkpoints.pretrained import (extract_state_dict, load_pretrained,
                                      raise_unless_fits, read_checkpoint,
                                      tolerated_key, unfit_keys)
from ..models.backbones.focal_backbone import FocalBackbone

SCOPES = ('mmpretrain', 'mmdet', 'mmseg')


class ClassifierLogits(nn.Module):
    """An mmpretrain ``ImageClassifier`` as image ``(B, 3, H, W)`` to
    logits ``(B, num_classes)`` (before the softmax)."""

    def __init__(self, classifier: nn.Module) -> None:
        super().__init__()
        self.classifier = classifier

    def forward(self, image: Tensor) -> Tensor:
        return self.classifier(image, mode='tensor')


class Exportable(NamedTuple):
    """What :func:`build_exportable` builds.

    Attributes:
        model (nn.Module): In eval mode, image to output(s).
        output_names (tuple[str]): A name per output.
        kind (str): ``'classifier'`` or ``'backbone'``.
        backbone (FocalBackbone): The Focal backbone inside ``model``.
    """
    model: nn.Module
    output_names: Tuple[str, ...]
    kind: str
    backbone: FocalBackbone


def _registry(scope: str):
    importlib.import_module(f'{scope}.utils').register_all_modules(False)
    return importlib.import_module(f'{scope}.registry').MODELS


def build_exportable(config: Union[str, Config],
                     checkpoint: Optional[str]) -> Exportable:
    """The exportable model of ``config``, in eval mode.

    Args:
        config (str | Config): An mmpretrain, mmdet or mmseg config whose
            model has a Focal backbone (either family).
        checkpoint (str | None): Weights: for a classifier an official
            ImageNet release file (converted as ``tools/test.py`` does) or a
            whole-model checkpoint (``backbone.*`` and ``head.*`` keys); for
            a backbone anything :func:`~focal_mm.checkpoints.pretrained.
            load_pretrained` takes (official, converted or whole-model
            files). A local path or an http(s) URL. None: the weights as
            constructed (random; the config's ``init_cfg`` is not applied).

    Raises:
        ValueError: For a config of another library, a model without a
            Focal backbone, or a checkpoint that does not fit.
        FileNotFoundError: For a checkpoint path that does not exist.
    """
    cfg = Config.fromfile(config) if isinstance(config, str) else config
    name = config if isinstance(config, str) else 'the config'
    scope = cfg.get('default_scope')
    if scope not in SCOPES:
        raise ValueError(f'{name}: default_scope must be one of {SCOPES} to '
                         f'export, got {scope!r}')
    registry = _registry(scope)
    with DefaultScope.overwrite_default_scope(scope):
        if scope == 'mmpretrain':
            classifier = registry.build(cfg.model)
            backbone = getattr(classifier, 'backbone', None)
        else:
            backbone = registry.build(cfg.model.backbone)
    if not isinstance(backbone, FocalBackbone):
        raise ValueError(f'{name}: the backbone is a '
                         f'{type(backbone).__name__}, not a Focal backbone '
                         '(FocalTransformer or FocalFastTransformer)')
    if scope == 'mmpretrain':
        if checkpoint is not None:
            load_classifier(classifier, checkpoint)
        model, names, kind = ClassifierLogits(classifier), ('logits', ), \
            'classifier'
    else:
        if checkpoint is not None:
            load_pretrained(backbone, checkpoint)
        model, kind = backbone, 'backbone'
        names = tuple(f'stage{i}' for i in backbone.out_indices)
    return Exportable(model.eval(), names, kind, backbone)


def load_classifier(classifier: nn.Module, checkpoint: str) -> None:
    """Loads an official release file (converted with
    :func:`~focal_mm.checkpoints.official.official_to_mmpretrain`) or a
    whole-model checkpoint into an mmpretrain ``ImageClassifier``.

    Raises:
        ValueError: If the file holds only a backbone, or keys or shapes
            that do not fit (besides the backbone keys that
            :data:`~focal_mm.checkpoints.pretrained.TOLERATED` lets miss).
    """
    state_dict = extract_state_dict(read_checkpoint(checkpoint))
    if is_official_state_dict(state_dict):
        state_dict = official_to_mmpretrain(state_dict)
    if not any(k.startswith('backbone.') for k in state_dict):
        raise ValueError(
            f'{checkpoint} is neither an official Focal Transformer release '
            'file nor a checkpoint of a whole classifier (no "backbone." '
            'keys; a file converted with --backbone-only has no head)')
    try:
        missing, unexpected = classifier.load_state_dict(
            state_dict, strict=False)
    except RuntimeError as err:  # shapes that do not fit
        raise ValueError(f'{checkpoint} does not fit this classifier: '
                         f'{err}') from None
    raise_unless_fits(checkpoint, 'classifier',
                      unfit_keys(missing, unexpected, prefix='backbone.'))
    skipped = [
        k for k in missing + unexpected if tolerated_key(k, 'backbone.')
    ]
    print_log(
        f'Loaded {checkpoint} into the classifier' +
        (f' (tolerated: {", ".join(skipped)})' if skipped else ''),
        logger='current')
