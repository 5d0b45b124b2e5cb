#!/usr/bin/env python
"""Writes the compact reference set of the tests from the full one.

    python tests/data/reference/make_compact.py [FULL_ROOT]

FULL_ROOT (default: ``../shared/reference`` beside the repository) holds
``focal_v1`` and ``focal_v2``, the outputs of the official models (see their
READMEs). For each case named in ``COMPACT_CASES`` of
``tests/reference_cases.py`` it keeps ``name``, ``config``, ``input``,
``logits``, ``stages`` and, where the case has them, ``grad_projection`` and
``grads``, all unchanged; the state dict loses only the official per-size
buffers (index tables, coordinates, masks:
``focal_mm.checkpoints.official.OFFICIAL_BUFFERS``), which are derived from
the size and ignored on loading. ``official_architectures.json`` is copied as
it is.
"""
import shutil
import sys
from pathlib import Path

import torch

from focal_mm.checkpoints.official import OFFICIAL_BUFFERS

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # tests/
from reference_cases import COMPACT_CASES  # noqa: E402

KEPT = ('name', 'config', 'input', 'logits', 'stages', 'grad_projection',
        'grads')


def main(full_root: Path) -> None:
    for family, names in COMPACT_CASES.items():
        out = HERE / family
        out.mkdir(exist_ok=True)
        shutil.copy(full_root / family / 'official_architectures.json', out)
        for name in names:
            case = torch.load(full_root / family / f'{name}.pt',
                              weights_only=True)
            compact = {k: case[k] for k in KEPT if k in case}
            compact['state_dict'] = {
                k: v.contiguous()
                for k, v in case['state_dict'].items()
                if not OFFICIAL_BUFFERS.search(k)
            }
            torch.save(compact, out / f'{name}.pt')
            print(f'{family}/{name}.pt: {len(compact["state_dict"])} of '
                  f'{len(case["state_dict"])} state-dict entries')


if __name__ == '__main__':
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else \
        HERE.parents[2].parent / 'shared' / 'reference'
    main(root)
