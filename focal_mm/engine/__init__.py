# Copyright (c) focal_mm contributors. All rights reserved.
from .rng_state_hook import RNGStateHook

__all__ = ['RNGStateHook']
