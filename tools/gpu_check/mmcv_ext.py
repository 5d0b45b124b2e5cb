"""Stand-in for mmcv's compiled extension ``mmcv._ext``, which mmcv-lite
lacks, copied there by ``tools/gpu_check.sh``: every function exists, so
that ``mmcv.ops`` and with it mmdet's and mmpretrain's models import, and
raises when called. The backbones (Swin-T's included) call none; whole
detectors do (RoIAlign, NMS), which is why the GPU check runs none."""


def __getattr__(name):

    def missing(*args, **kwargs):
        raise RuntimeError(f'mmcv-lite has no compiled op {name} (a GPU '
                           'check stand-in): whole detectors need mmcv '
                           'built with its CUDA ops')

    return missing
