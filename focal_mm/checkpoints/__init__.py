# Copyright (c) focal_mm contributors. All rights reserved.
"""Checkpoints: reading weights and converting between layouts.

:mod:`.pretrained` finds, downloads and reads checkpoint files and loads
them into a backbone or classifier; :mod:`.safe_globals` is the allow-list
a pickle is read through; :mod:`.pdparams` reads PaddleViT's ports of the
official weights without Paddle; :mod:`.official` maps the official
models' parameter names to focal_mm's and mmpretrain's;
:mod:`.surviving_copies` says where the official release files survive.
Beside the model layers: it imports none of them.
"""
