# Copyright (c) focal_mm contributors. All rights reserved.
"""Random number generator states in checkpoints, so that a resumed run
continues exactly as the uninterrupted one would have."""
import random

import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class RNGStateHook(Hook):
    """Saves the torch, numpy and Python generator states with every
    checkpoint and restores them on ``--resume``.

    mmengine reseeds from the config on resume, so anything random after it
    (proposal sampling, drop path, augmentation in the main process) would
    otherwise take a different course than the uninterrupted run. Only the
    main process's generators are covered: dataloader workers are reseeded
    by the sampler each epoch.
    """
    priority = 'VERY_LOW'

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        state = dict(
            torch=torch.get_rng_state(),
            numpy=np.random.get_state(),
            python=random.getstate())
        if torch.cuda.is_available():
            state['cuda'] = torch.cuda.get_rng_state_all()
        checkpoint['rng_state'] = state

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        state = checkpoint.get('rng_state')
        if state is None or not runner._resume:
            return
        torch.set_rng_state(state['torch'])
        np.random.set_state(state['numpy'])
        random.setstate(state['python'])
        if 'cuda' in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state['cuda'])
