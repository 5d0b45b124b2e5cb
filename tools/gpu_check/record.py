"""Adds one stage of ``tools/gpu_check.sh`` to the JSON of its figures.

    python record.py FIGURES STAGE STATUS SECONDS [RESULT]

``RESULT``, where the stage wrote one, is a JSON file (benchmark.py's
``--json``, the device's description) or a pytest JUnit XML file, whose
counts and failed tests are kept. The JSON is rewritten whole after every
stage (a temporary file, then a rename), so that a run cut off still
returns the stages it finished.
"""
import json
import os
import sys
import xml.etree.ElementTree as ET


def junit_summary(path: str) -> dict:
    """Counts of a pytest JUnit XML file and its failed tests (with the
    first lines of their messages)."""
    root = ET.parse(path).getroot()
    suite = root if root.tag == 'testsuite' else root.find('testsuite')
    summary = {
        key: int(suite.get(key, 0))
        for key in ('tests', 'failures', 'errors', 'skipped')
    }
    summary['seconds'] = float(suite.get('time', 0))
    summary['failed'] = [
        dict(
            test=f"{case.get('classname')}::{case.get('name')}",
            message=(problem.get('message') or '')[:500])
        for case in suite.iter('testcase')
        for problem in list(case.findall('failure')) + case.findall('error')
    ]
    return summary


def read_result(path: str):
    if path.endswith('.xml'):
        return junit_summary(path)
    with open(path) as f:
        return json.load(f)


def main(figures, stage, status, seconds, result=None):
    data = {'stages': []}
    if os.path.exists(figures):
        with open(figures) as f:
            data = json.load(f)
    entry = dict(name=stage, status=status, seconds=float(seconds))
    if result and os.path.exists(result):
        try:
            entry['result'] = read_result(result)
        except (ValueError, ET.ParseError) as error:
            entry['result_error'] = f'{result}: {error}'
    data['stages'].append(entry)
    with open(figures + '.tmp', 'w') as f:
        json.dump(data, f, indent=1)
    os.replace(figures + '.tmp', figures)


if __name__ == '__main__':
    main(*sys.argv[1:])
