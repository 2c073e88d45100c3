"The benchmark and the GPU check run end to end on the CPU at tiny sizes and report every figure."

import json

import pytest

from pls_edu.bench import bench_resnet, report
from pls_edu import gpucheck


def test_bench_resnet_reports_throughput_and_ratios():
    r = bench_resnet('cpu', batch_size=4, steps=1, rounds=1)
    assert set(r['images_per_s']) == {'fast-erm', 'fast-pls', 'baseline-erm', 'baseline-pls'}
    assert all(v > 0 for v in r['images_per_s'].values())
    assert abs(r['fast_over_baseline_erm'] - r['images_per_s']['fast-erm'] / r['images_per_s']['baseline-erm']) < 1e-9
    text = '\n'.join(report({'resnet': r}))
    assert 'fast/baseline' in text and 'pls/erm' in text


BLOCKER = """
import importlib.abc, sys
BLOCKED = {'papermill', 'mlxtend', 'ipywidgets', 'nbdev', 'fastcore', 'filelock', 'jupyter_client', 'nbclient', 'IPython'}
class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in BLOCKED: raise ImportError(f'{name} is not installed on the GPU machine')
sys.meta_path.insert(0, Blocker())
sys.argv = ['gpucheck'] + sys.argv[1:]
import runpy; runpy.run_module('pls_edu.gpucheck', run_name='__main__')
"""


def test_gpu_check_runs_where_only_the_gpu_machines_packages_exist(tmp_path):
    "The whole check, tiny, in a fresh process that cannot import papermill, mlxtend, ipywidgets, nbdev, fastcore, filelock or jupyter."
    import os, subprocess, sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    out, tim = tmp_path / 'g.json', tmp_path / 't.json'
    p = subprocess.run(
        [sys.executable, '-c', BLOCKER, '--device', 'cpu', '--tiny', '--out', str(out), '--timings-out', str(tim)],
        cwd=tmp_path,
        env={**os.environ, 'PYTHONPATH': str(root)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    r = json.loads(out.read_text())
    assert r['errors'] == {} and r['verdict'].startswith('not enforced') and 'learn_fast' in r['parts_done']
    for part in ('resnet18_fast', 'resnet50_fast', 'resnet18_baseline'):
        assert r[part]['erm']['s_per_step'] > 0 and r[part]['pls']['s_per_step'] > 0
    assert r['final_errors']['pls'].keys() == {'fast (compiled, bf16)', 'eager fp32'}
    t = json.loads(tim.read_text())
    assert set(t['s_per_image']) == {'preact-resnet18', 'resnet50'} and len(t['s_per_image']['resnet50']) == 3
    assert r['projection']['tables_1_2_runs'] == 540 and r['projection']['tables_1_2_hours_on_8_gpus'] > 0
    lines = [line for line in p.stdout.splitlines() if line.startswith('[')]
    assert any('learn_fast: start' in line for line in lines) and any('projection: done' in line for line in lines), (
        p.stdout
    )  # a line per part
    assert 'is not installed' not in p.stderr


def test_gpu_check_budget_skips_what_does_not_fit_and_says_why(tmp_path):
    "The budget logic on made-up parts (the real parts ran once, above): a part runs only if its expected time fits."
    lines = []
    g = gpucheck.GPUCheck(tmp_path / 'g.json', budget_s=5, log=lines.append)
    assert g.part('first', 1, lambda: {'ok': 1}) == {'ok': 1}
    assert g.part('too_long', 60, lambda: 1 / 0) is None  # never called: 60 s do not fit in 5
    assert g.part('broken', 1, lambda: 1 / 0) is None  # called, and its error kept in one line
    saved = json.loads((tmp_path / 'g.json').read_text())  # written after every part
    assert saved['parts_done'] == ['first']
    assert 'expected to take about 60 s' in saved['skipped']['too_long']
    assert 'of the budget left' in saved['skipped']['too_long']
    assert saved['errors'] == {'broken': 'ZeroDivisionError: division by zero'}
    assert any('SKIP too_long' in line for line in lines)


def test_gpu_check_refuses_without_cuda(capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip('this machine has CUDA')
    with pytest.raises(SystemExit):
        gpucheck.main(['--out', '/tmp/x.json'])
    assert 'no CUDA device here' in capsys.readouterr().err
