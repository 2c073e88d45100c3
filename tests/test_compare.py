"The main job, small: result files, table, figure, resumption and command-line errors."
import csv, json
from pathlib import Path

import pytest

from pls_edu.compare import compare, main, collect, summary_table, expand_methods


def test_main_job_small(tmp_path, capsys):
    main(['--methods', 'erm', 'pls', '--seeds', '0', '1', '--epochs', '2', '--out', str(tmp_path), '--workers', '2', '--no-progress'])
    text = capsys.readouterr().out
    assert 'wall time:' in text and 'pls' in text and 'winning softmax' in text
    runs = sorted(p.name for p in tmp_path.iterdir() if p.is_dir())
    assert runs == [f'digits_small-cnn_{m}_s{s}' for m in ('erm', 'pls') for s in (0, 1)]
    rows = list(csv.DictReader(open(tmp_path/'table.csv')))
    assert [r['method'] for r in rows] == ['erm', 'pls'] and all(r['seeds'] == '2' for r in rows)
    # the table is made from the result files: recompute one cell from them
    errs = [json.load(open(tmp_path/f'digits_small-cnn_pls_s{s}'/'result.json'))['final']['error'] for s in (0, 1)]
    assert abs(float(rows[1]['error_mean']) - sum(errs) / 2) < 1e-9
    assert (tmp_path/'winning_softmax.png').read_bytes()[:4] == b'\x89PNG'
    assert (tmp_path/'table.md').read_text().count('**') == 2
    # a second call finds everything finished and trains nothing
    r = compare(methods=['erm', 'pls'], seeds=[0, 1], epochs=2, out=tmp_path, workers=1, progress=False)
    assert r['counts'] == {'skipped': 4}


def test_parallel_and_serial_runs_agree(tmp_path):
    a = compare(methods=['mixup'], seeds=[3], epochs=1, out=tmp_path/'a', workers=1, progress=False)['rows']
    b = compare(methods=['mixup', 'erm'], seeds=[3], epochs=1, out=tmp_path/'b', workers=2, progress=False)['rows']
    assert a[0]['error_mean'] == b[0]['error_mean'] and a[0]['nll'] == b[0]['nll']


def test_cli_errors(capsys):
    with pytest.raises(SystemExit): main(['--dataset', 'cifar10'])
    assert "invalid choice: 'cifar10'" in capsys.readouterr().err
    with pytest.raises(SystemExit): main(['--methods', 'pls', 'plz'])
    assert "unknown method 'plz'" in capsys.readouterr().err
    with pytest.raises(SystemExit): main(['--epochs', '0'])
    assert '--epochs must be >= 1' in capsys.readouterr().err
    with pytest.raises(SystemExit): main(['--seeds', 'one'])
    assert "invalid int value: 'one'" in capsys.readouterr().err


def test_missing_runs_are_missing_not_zero():
    rows = summary_table([{'config': {'dataset': 'd', 'model': 'm', 'method': 'pls', 'seed': 0},
                           'final': {'error': 2.0, 'winning_softmax': .5, 'ece': .1, 'nll': 1.}}], ['erm', 'pls'])
    assert [r['method'] for r in rows] == ['pls'] and rows[0]['vs_erm'] is None      # no ERM runs: no paired difference
