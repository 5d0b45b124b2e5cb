# Copyright (c) focal_mm contributors. All rights reserved.
"""Focal Transformer: the first official family, with focal attention
over rolled fine surroundings and unfolded pooled neighbourhoods."""
from typing import Dict, Sequence, Union

from mmengine.registry import MODELS

from ..attention.focal_attention import FocalAttention
from .focal_backbone import FocalBackbone, per_stage

EXPAND_LAYERS = ('all', 'even', 'odd')


@MODELS.register_module()
class FocalTransformer(FocalBackbone):
    """Focal Transformer (Yang et al., "Focal Self-attention for Local-Global
    Interactions in Vision Transformers", NeurIPS 2021), the model of the
    official ``classification/focal_transformer.py``.

    Every query window attends its own tokens, a ring of fine tokens around
    it and, per pooled level, a neighbourhood of pooled tokens
    (:class:`FocalAttention`). With ``img_size`` set, official checkpoints
    load through ``init_cfg=dict(type='Pretrained', checkpoint=...)`` and
    give the official features; ``img_size=None`` is the dense-prediction
    mode for detection and segmentation.

    Args:
        arch (str | dict): See :class:`FocalBackbone`. Default: ``'tiny'``.
        focal_windows (int | Sequence[int]): Pooled neighbourhood per stage;
            odd. Default: (7, 5, 3, 1).
        expand_sizes (int | Sequence[int]): Fine surroundings per stage.
            Default: 3.
        expand_layer (str): Blocks with surroundings: ``'all'``, ``'even'``
            (none on even blocks) or ``'odd'`` (none on odd blocks).
            Default: ``'all'``.
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
                 focal_windows: Union[int, Sequence[int]] = (7, 5, 3, 1),
                 expand_sizes: Union[int, Sequence[int]] = 3,
                 expand_layer: str = 'all',
                 **kwargs) -> None:
        self.focal_windows = focal_windows
        self.expand_sizes = expand_sizes
        self.expand_layer = expand_layer
        super().__init__(arch, **kwargs)

    def _check_family_args(self) -> None:
        self.focal_windows = per_stage('focal_windows', self.focal_windows,
                                       self.num_stages)
        self.expand_sizes = per_stage('expand_sizes', self.expand_sizes,
                                      self.num_stages)
        if self.expand_layer not in EXPAND_LAYERS:
            raise ValueError(f'expand_layer must be one of {EXPAND_LAYERS}, '
                             f'got {self.expand_layer!r}')

    def _attention_cfg(self, stage: int, block: int, fits: bool) -> Dict:
        # The official model has no surroundings where the map fits in one
        # window, nor on the blocks that expand_layer leaves out.
        skipped = {'all': None, 'even': 0, 'odd': 1}[self.expand_layer]
        expand = not fits and block % 2 != skipped
        return dict(
            type=FocalAttention,
            expand_size=self.expand_sizes[stage] if expand else 0,
            focal_window=self.focal_windows[stage])
