"The benchmark and the GPU check run end to end on the CPU at tiny sizes and report every figure."
import json

import pytest

from pls_edu.bench import bench_resnet, report, synthetic_data, time_steps
from pls_edu import gpucheck


def test_bench_resnet_reports_throughput_and_ratios():
    r = bench_resnet('cpu', batch_size=4, steps=1, rounds=1)
    assert set(r['images_per_s']) == {'fast-erm', 'fast-pls', 'baseline-erm', 'baseline-pls'}
    assert all(v > 0 for v in r['images_per_s'].values())
    assert abs(r['fast_over_baseline_erm'] - r['images_per_s']['fast-erm'] / r['images_per_s']['baseline-erm']) < 1e-9
    text = '\n'.join(report({'resnet': r}))
    assert 'fast/baseline' in text and 'pls/erm' in text


def test_gpu_check_dry_run_on_cpu(tmp_path):
    out = tmp_path/'g.json'
    gpucheck.main(['--device', 'cpu', '--batch-size', '4', '--images', '16', '--steps', '1', '--baseline-steps', '1',
                   '--rounds', '1', '--workers', '0', '--no-compile', '--out', str(out)])
    r = json.loads(out.read_text())
    for k in ('resnet18_fast', 'resnet18_baseline', 'resnet50_fast'):
        assert set(r[k]) == {'erm', 'pls'} and all(v > 0 for v in r[k].values())
    assert r['steps_per_epoch'] == 4 and set(r['meets_targets']) == {'resnet18_fast_s_per_epoch', 'fast_over_baseline', 'pls_over_erm'}
    assert r['ratios']['pls_over_erm_fast'] == pytest.approx(r['resnet18_fast']['pls'] / r['resnet18_fast']['erm'])


def test_gpu_check_refuses_without_cuda(capsys):
    import torch
    if torch.cuda.is_available(): pytest.skip('this machine has CUDA')
    with pytest.raises(SystemExit): gpucheck.main(['--out', '/tmp/x.json'])
    assert 'no CUDA device here' in capsys.readouterr().err
