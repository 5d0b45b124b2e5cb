"""ONNX export of both Focal families (focal_mm.deployment and
tools/deployment/pytorch2onnx.py): ONNX Runtime against PyTorch on the same
input, the eager model unchanged after an export, and clear errors."""
import re
from importlib.metadata import version

import numpy as np
import onnx
import pytest
import torch
import torch.nn as nn

from focal_mm import FocalTransformer
from focal_mm.deployment import (benchmark_onnx, build_exportable, compare,
                                 export_onnx, run_onnx)
from focal_mm.models import geometry_cache_info
from focal_mm.deployment.models import load_classifier
from focal_mm.deployment.runtime import make_session
from conftest import REPO_ROOT, load_case
from test_tools import run
from toy_configs import official_case_classifier

CONFIGS = REPO_ROOT / 'configs'
TOLERANCE = 1e-4  # relative: max|onnx - torch| / max|torch| per output


def export_and_compare(exportable, shape, path, seed=0):
    """Exports at ``shape`` (B, 3, H, W), runs ONNX Runtime; returns the
    differences, the eager outputs and the input."""
    image = torch.randn(*shape, generator=torch.Generator().manual_seed(seed))
    reference = export_onnx(exportable.model, image, str(path),
                            exportable.output_names)
    differences = compare(
        run_onnx(str(path), image), reference, exportable.output_names)
    return differences, reference, image


def assert_close(differences, names):
    assert [d.name for d in differences] == list(names)
    for d in differences:
        assert d.max_rel <= TOLERANCE, d


@pytest.mark.parametrize('config',
                         ['focal_tiny_in1k.py', 'focal_fast_tiny_in1k.py'])
def test_classifier_matches_onnx_runtime(config, tmp_path):
    """Focal-T and Focal-fast-T classifiers (random weights) at 224; the
    eager model gives the same numbers after the export (no FakeTensor was
    cached by the trace)."""
    exportable = build_exportable(str(CONFIGS / config), None)
    path = tmp_path / 'classifier.onnx'
    differences, reference, image = export_and_compare(exportable,
                                                       (1, 3, 224, 224), path)
    assert_close(differences, ['logits'])
    assert reference[0].shape == (1, 1000)

    graph = onnx.load(str(path)).graph
    (graph_input, ) = graph.input  # the weights are initializers
    assert [d.dim_value for d in graph_input.type.tensor_type.shape.dim
            ] == [1, 3, 224, 224]  # static: this size only
    with torch.no_grad():
        again = exportable.model(image)
    assert torch.equal(again, reference[0])


def test_detection_backbone_matches_onnx_runtime(tmp_path):
    """The dense Focal-T backbone of mask_rcnn_focal_tiny_1x.py (img_size
    None, focal windows 15/13/9/7) at 800 x 1216: four named stage
    outputs. Attention runs as one chunk under export (window_attention.
    windows_per_chunk): the default chunks would make the graph ~15 times
    larger and take minutes to export and to load."""
    exportable = build_exportable(
        str(CONFIGS / 'mask_rcnn_focal_tiny_1x.py'), None)
    assert exportable.kind == 'backbone'
    path = tmp_path / 'backbone.onnx'
    differences, reference, _ = export_and_compare(exportable,
                                                   (1, 3, 800, 1216), path)
    assert_close(differences, ['stage0', 'stage1', 'stage2', 'stage3'])
    assert [tuple(r.shape[2:]) for r in reference] == [(200, 304), (100, 152),
                                                       (50, 76), (25, 38)]
    nodes = len(onnx.load(str(path)).graph.node)
    assert nodes < 10000, nodes  # about 4,500; 15 times more in chunks


class _TraceAtAnotherSize(nn.Module):
    """Runs its backbone at 64 x 64 when eager but at 96 x 96 under export:
    the trace meets a size whose tables are not cached."""

    def __init__(self):
        super().__init__()
        self.backbone = FocalTransformer(
            arch=dict(embed_dims=8, depths=(1, 1), num_heads=(1, 2)),
            img_size=None,
            focal_windows=(7, 5),
            out_indices=(1, ))

    def forward(self, image):
        size = 96 if torch.compiler.is_exporting() else 64
        return self.backbone(nn.functional.interpolate(image, size))[0]


def test_tables_built_during_the_trace_are_refused(tmp_path):
    model = _TraceAtAnotherSize().eval()
    with pytest.raises(RuntimeError, match='built a geometry table'):
        export_onnx(model, torch.randn(1, 3, 64, 64), str(tmp_path / 'm.onnx'),
                    ['out'])
    assert geometry_cache_info().entries == 0


def test_tool_exports_official_checkpoint(tmp_path):
    """pytorch2onnx.py end to end on an official release file (a small
    reference model, converted on the fly): ONNX Runtime then gives the
    official model's logits on its reference input."""
    case = load_case('conv_embed_prenorm_layerscale_224')
    official = tmp_path / 'official.pth'
    torch.save({'model': case['state_dict']}, official)
    config = tmp_path / 'cls.py'
    official_case_classifier(case, str(tmp_path / 'data'),
                             str(tmp_path / 'work')).dump(str(config))
    out = tmp_path / 'onnx' / 'cls.onnx'
    text = run('deployment/pytorch2onnx.py', config, official, '--shape', 224,
               224, '--out', out, '--benchmark', 2)
    rel = float(
        re.search(r'logits \(1, 10\): max abs \S+, max rel (\S+)',
                  text).group(1))
    assert rel <= TOLERANCE, text
    assert 'OK: largest relative difference' in text
    assert re.search(
        r'Speed: PyTorch eager [\d.]+ ms, ONNX Runtime [\d.]+ '
        r'ms \(medians of 2', text), text

    logits = run_onnx(str(out), case['input'].float())[0]
    official_logits = case['logits'].numpy()
    assert np.abs(logits - official_logits).max() <= \
        TOLERANCE * np.abs(official_logits).max() + 1e-6


def test_benchmark_pairs_repeats(tmp_path):
    exportable = build_exportable(
        str(CONFIGS / 'upernet_focal_tiny_512x512_160k_ade20k.py'), None)
    model = exportable.model
    path = tmp_path / 'b.onnx'
    export_onnx(model, torch.randn(1, 3, 64, 64), str(path),
                exportable.output_names)
    speed = benchmark_onnx(
        model,
        make_session(str(path), threads=1),
        torch.randn(1, 3, 64, 64),
        repeats=3,
        warmup=0)
    low, mid, high = speed.ratios
    assert 0 < low <= mid <= high and speed.repeats == 3
    assert speed.threads == 1 and speed.torch_s > 0 and speed.onnx_s > 0
    with pytest.raises(ValueError, match='repeats >= 1'):
        benchmark_onnx(model, str(path), torch.randn(1, 3, 64, 64), 0)
    with pytest.raises(
            ValueError, match=r'exported for inputs of shape '
            r'\(1, 3, 64, 64\)'):
        run_onnx(str(path), np.zeros((1, 3, 96, 96), np.float32))


def _tool(argv, capsys):
    from importlib.util import module_from_spec, spec_from_file_location
    spec = spec_from_file_location(
        'pytorch2onnx', REPO_ROOT / 'tools' / 'deployment' / 'pytorch2onnx.py')
    tool = module_from_spec(spec)
    spec.loader.exec_module(tool)
    with pytest.raises(SystemExit) as exit_info:
        tool.parse_args([str(a) for a in argv])
    return exit_info.value.code, capsys.readouterr().err


@pytest.mark.parametrize('argv, message', [
    (['missing.pth', '--shape', 224, 224, '--out', 'x.onnx'
      ], 'checkpoint missing.pth does not exist'),
    (['none', '--out', 'x.onnx'], 'the following arguments are required: '
     '--shape'),
    (['none', '--shape', 224, '--out', 'x.onnx'], 'expected 2 arguments'),
    (['none', '--shape', 0, 224, '--out', 'x.onnx'
      ], 'expected a positive integer, got 0'),
    (['none', '--shape', 'big', 224, '--out', 'x.onnx'
      ], "expected a positive integer, got 'big'"),
    (['none', '--shape', 224, 224, '--out', 'x.pth'
      ], '--out must be a .onnx file'),
])
def test_tool_bad_input(argv, message, capsys):
    code, err = _tool([CONFIGS / 'focal_tiny_in1k.py'] + argv, capsys)
    assert code == 2 and message in err, err


def test_bad_checkpoints(tmp_path):
    config = str(CONFIGS / 'focal_tiny_in1k.py')
    with pytest.raises(FileNotFoundError, match='missing.pth does not exist'):
        build_exportable(config, str(tmp_path / 'missing.pth'))
    classifier = build_exportable(config, None).model.classifier
    backbone_only = tmp_path / 'backbone.pth'
    torch.save(
        {
            k[9:]: v
            for k, v in classifier.state_dict().items()
            if k.startswith('backbone.')
        }, backbone_only)
    with pytest.raises(ValueError, match='no "backbone." keys'):
        load_classifier(classifier, str(backbone_only))
    other_head = tmp_path / 'other_head.pth'
    state = classifier.state_dict()
    state['head.fc.weight'] = state['head.fc.weight'][:10]
    torch.save({'state_dict': state}, other_head)
    with pytest.raises(ValueError, match='does not fit this classifier'):
        load_classifier(classifier, str(other_head))


def test_onnx_stack_is_pinned():
    with open(REPO_ROOT / 'requirements.txt') as f:
        pins = dict(line.strip().split('==') for line in f
                    if '==' in line and not line.startswith('#'))
    for name in ('onnx', 'onnxruntime', 'onnxscript', 'onnx-ir', 'ml_dtypes'):
        assert version(name) == pins[name], name
