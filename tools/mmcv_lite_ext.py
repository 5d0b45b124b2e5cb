"""Stand-in for mmcv's compiled extension ``mmcv._ext``, which mmcv-lite
lacks: copied into an mmcv-lite install as ``mmcv/_ext.py`` so that
``mmcv.ops`` imports, and with it mmdet's, mmseg's and mmpretrain's models.
Its functions exist and raise when called: a model that needs a compiled
op (RoIAlign, NMS, deformable convolution...) fails there, loudly.

Used by ``tools/setup_oldest_env.sh`` (the oldest supported stack) and
``tools/gpu_check.sh`` (a GPU machine without a compiler for mmcv)."""


def __getattr__(name):

    def missing(*args, **kwargs):
        raise RuntimeError(f'mmcv-lite has no compiled op {name}')

    return missing
