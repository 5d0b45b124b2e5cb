"""The machine of a GPU check (``tools/gpu_check.sh``): Python, torch,
Triton and numpy versions and the CUDA device, printed and written as
JSON to the path given. With ``--require-cuda`` it fails where torch sees
no CUDA device.

    python device.py OUT.json [--require-cuda]
"""
import json
import platform
import sys
from datetime import datetime, timezone

import numpy
import torch
import triton


def describe() -> dict:
    info = dict(
        date=datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC'),
        python=platform.python_version(),
        torch=torch.__version__,
        triton=triton.__version__,
        numpy=numpy.__version__,
        cuda_available=torch.cuda.is_available(),
        torch_cuda=torch.version.cuda)
    if info['cuda_available']:
        props = torch.cuda.get_device_properties(0)
        info.update(
            device=props.name,
            capability='.'.join(map(str, torch.cuda.get_device_capability())),
            memory_gib=round(props.total_memory / 2**30, 1),
            multiprocessors=props.multi_processor_count)
    return info


def main(path, *flags):
    info = describe()
    print(json.dumps(info))
    with open(path, 'w') as f:
        json.dump(info, f, indent=1)
    if '--require-cuda' in flags and not info['cuda_available']:
        sys.exit('torch sees no CUDA device')


if __name__ == '__main__':
    main(*sys.argv[1:])
