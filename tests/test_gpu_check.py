"""The parts of tools/gpu_check.sh that run without a GPU: the JSON of
figures that each stage adds to (from pytest's own JUnit XML and
benchmark.py's JSON), and the wheel list (one version of each)."""
import json
import re
import subprocess
import sys

from conftest import REPO_ROOT

RECORD = REPO_ROOT / 'tools' / 'gpu_check' / 'record.py'
SCRIPT = REPO_ROOT / 'tools' / 'gpu_check.sh'


def record(figures, *args):
    subprocess.run([sys.executable, str(RECORD),
                    str(figures)] + [str(a) for a in args],
                   check=True)


def test_stages_add_up_in_figures(tmp_path):
    tests = tmp_path / 'test_three.py'
    tests.write_text('import pytest\n\n'
                     'def test_passes():\n    pass\n\n'
                     'def test_fails():\n    assert 1 == 2, "one is not two"'
                     '\n\n'
                     'def test_skips():\n    pytest.skip("no reason")\n')
    junit = tmp_path / 'kernel_tests.xml'
    subprocess.run([
        sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider',
        str(tests), f'--junitxml={junit}'
    ],
                   cwd=tmp_path,
                   capture_output=True)
    bench = tmp_path / 'bench.json'
    bench.write_text(json.dumps(dict(setting='fp16', results=[{'ratio': 1}])))
    figures = tmp_path / 'figures.json'
    record(figures, 'bench_fp16_plan', 'ok', 42, bench)
    record(figures, 'kernel_tests', 'failed', 7, junit)
    record(figures, 'ms_train', 'skipped', 0)
    stages = json.loads(figures.read_text())['stages']
    assert [(s['name'], s['status'], s['seconds']) for s in stages] == [
        ('bench_fp16_plan', 'ok', 42.0), ('kernel_tests', 'failed', 7.0),
        ('ms_train', 'skipped', 0.0)
    ]
    assert stages[0]['result']['results'] == [{'ratio': 1}]
    summary = stages[1]['result']
    assert {k: summary[k] for k in ('tests', 'failures', 'errors',
                                    'skipped')} == dict(
                                        tests=3,
                                        failures=1,
                                        errors=0,
                                        skipped=1)
    [failed] = summary['failed']
    assert failed['test'].endswith('test_three::test_fails')
    assert 'one is not two' in failed['message']
    assert 'result' not in stages[2]
    assert not (tmp_path / 'figures.json.tmp').exists()


def test_carried_wheels_one_version_each():
    """Two versions of a wheel stop the whole install on the GPU machine."""
    text = SCRIPT.read_text()
    carried = re.search(r'^CARRIED=\((.*?)\)', text, re.S | re.M).group(1)
    pins = carried.split()
    names = [p.split('==')[0] for p in pins]
    assert all(re.fullmatch(r'[a-z0-9-]+==[0-9.]+', p) for p in pins), pins
    assert len(set(names)) == len(names)
    assert 'modelindex' not in names and 'model-index' in names
