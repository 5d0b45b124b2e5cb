# Copyright (c) focal_mm contributors. All rights reserved.
"""Focal-fast: the second official family, whose windows attend their
nearest tokens at every focal level."""
from typing import Dict, Union

from mmengine.registry import MODELS

from ..attention.focal_fast_attention import FocalFastAttention
from .focal_backbone import FocalBackbone


@MODELS.register_module()
class FocalFastTransformer(FocalBackbone):
    """Focal-fast Transformer, the model of the official
    ``classification/focal_transformer_v2.py`` (released as ``focalv2-*``).

    Every query window attends, at each focal level, the ``focal_topk``
    tokens of that level nearest to it, with position biases from a small
    MLP on relative coordinates (:class:`FocalFastAttention`); the skeleton
    (stem, stages, patch embeddings, outputs, loading) is Focal's
    (:class:`FocalBackbone`). With ``img_size`` set, official checkpoints
    load and give the official features; ``img_size=None`` is the
    dense-prediction mode. Maps that are not window multiples (which the
    official code cannot run) are zero-padded at the bottom and right, and
    the nearest tokens are chosen on the padded map.

    Args:
        arch (str | dict): See :class:`FocalBackbone`. Default: ``'tiny'``.
        focal_topk (int): Keys per focal level (at most the tokens of the
            level). The released models use 128. Default: 128.
        **kwargs: The arguments of :class:`FocalBackbone` (``img_size``,
            ``window_size``, ``focal_levels``, ``focal_pool``,
            ``out_indices``, ``frozen_stages``, ``init_cfg``, ...).

    Shape:
        - input: ``(B, in_channels, H, W)``, any ``H, W``
        - outputs: a tuple with ``(B, embed_dims * 2**i, ~H / (4 * 2**i),
          ~W / (4 * 2**i))`` for each ``i`` in ``out_indices``.
    """

    def __init__(self,
                 arch: Union[str, dict] = 'tiny',
                 focal_topk: int = 128,
                 **kwargs) -> None:
        self.focal_topk = focal_topk
        super().__init__(arch, **kwargs)

    def _check_family_args(self) -> None:
        if not isinstance(self.focal_topk, int) or self.focal_topk < 1:
            raise ValueError(
                f'focal_topk must be a positive int, got {self.focal_topk!r}')

    def _attention_cfg(self, stage: int, block: int, fits: bool) -> Dict:
        return dict(type=FocalFastAttention, focal_topk=self.focal_topk)
