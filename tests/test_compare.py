"The main job, small: result files, table, analyses, figures, resumption and command-line errors."

import csv
import json

import pytest

from pls_edu.compare import compare, expand_methods, main, plan_runs
from pls_edu.methods import PAPER_METHODS
from pls_edu.presets import preset_runs
from pls_edu.formats import main_table
from pls_edu.report import summary_rows


def test_main_job_small(tmp_path, capsys):
    argv = ['--methods', 'erm', 'pls', '--seeds', '0', '1', '--epochs', '2', '--out', str(tmp_path)]
    main(argv + ['--workers', '2', '--no-progress'])
    text = capsys.readouterr().out
    assert 'wall time:' in text
    assert 'winning softmax' in text
    assert 'McNemar p' in text
    runs = sorted(p.name for p in tmp_path.iterdir() if p.is_dir())
    assert runs == [f'digits_small-cnn_{m}_s{s}' for m in ('erm', 'pls') for s in (0, 1)]
    rows = list(csv.DictReader((tmp_path / 'table.csv').read_text().splitlines()))
    assert [r['method'] for r in rows] == ['erm', 'pls']
    assert all(r['seeds'] == '2' for r in rows)
    # the table is made from the result files: recompute one cell from them
    errs = [
        json.loads((tmp_path / f'digits_small-cnn_pls_s{s}' / 'result.json').read_text())['final']['error']
        for s in (0, 1)
    ]
    assert abs(float(rows[1]['error_mean']) - sum(errs) / 2) < 1e-9
    for png in ('winning_softmax', 'reliability', 'ece_temperature', 'ece_per_epoch', 'soft_targets', 'ood'):
        assert (tmp_path / f'{png}.png').read_bytes()[:4] == b'\x89PNG', png
    cal = list(csv.DictReader((tmp_path / 'calibration.csv').read_text().splitlines()))
    assert len(cal) == 4
    assert all(float(c['T']) > 0 for c in cal)  # each run has a 20% holdout: every temperature is fitted
    assert (tmp_path / 'table.md').read_text().count('**') == 0  # no row is marked best
    findings = (tmp_path / 'findings.md').read_text()
    assert findings.startswith('- **Conservative classification**')
    # a second call finds everything finished and trains nothing
    r = compare(methods=['erm', 'pls'], seeds=[0, 1], epochs=2, out=tmp_path, workers=1, progress=False)
    assert r['counts'] == {'skipped': 4}


def test_the_main_job_is_its_preset():
    "`pls-compare` plans exactly the runs of preset `cpu-table1`, so the two share their run folders."
    assert plan_runs() == preset_runs('cpu-table1')
    some = plan_runs(methods=['pls', 'pls-no-learned'], seeds=[5], epochs=3)
    assert [(r.config.method, r.config.seed, r.config.epochs) for r in some] == [
        ('pls', 5, 3),
        ('pls-no-learned', 5, 3),
    ]
    assert expand_methods(['paper', 'pls']) == PAPER_METHODS  # groups expand, duplicates drop
    with pytest.raises(ValueError, match="unknown dataset 'cifar10'; the main job runs on \\['digits', 'mnist5k'\\]"):
        plan_runs('cifar10')


def test_parallel_and_serial_runs_agree(tmp_path):
    one = dict(seeds=[3], epochs=1, progress=False, analysis=False)
    a = compare(methods=['mixup'], out=tmp_path / 'a', workers=1, **one)['rows']
    b = compare(methods=['mixup', 'erm'], out=tmp_path / 'b', workers=2, **one)['rows']
    mix = [r for r in b if r['method'] == 'mixup'][0]
    assert (a[0]['error_mean'], a[0]['nll']) == (mix['error_mean'], mix['nll'])


def test_cli_errors(capsys):
    with pytest.raises(SystemExit):
        main(['--dataset', 'cifar10'])
    assert "invalid choice: 'cifar10'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(['--methods', 'pls', 'plz'])
    assert "unknown method 'plz'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(['--epochs', '0'])
    assert '--epochs must be >= 1' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(['--seeds', 'one'])
    assert "invalid int value: 'one'" in capsys.readouterr().err


def test_missing_runs_are_missing_not_zero():
    final = {'error': 2.0, 'winning_softmax': 0.5, 'ece': 0.1, 'nll': 1.0}
    one = {'config': {'dataset': 'd', 'model': 'm', 'method': 'pls', 'seed': 0}, 'final': final}
    rows = summary_rows([one], ['erm', 'pls'])
    assert [r['method'] for r in rows] == ['pls']
    assert rows[0]['vs_ref'] is None  # no ERM runs: no paired difference
    assert rows[0]['boot_lo'] is None
    assert '—' in main_table(rows)


def _row(m, d, seed_ci, boot_ci):
    return {
        'method': m,
        'ref': 'erm',
        'vs_ref': d,
        'vs_ref_lo': seed_ci[0],
        'vs_ref_hi': seed_ci[1],
        'vs_ref_significant': seed_ci[0] > 0 or seed_ci[1] < 0,
        'boot_lo': boot_ci[0],
        'boot_hi': boot_ci[1],
        'boot_significant': boot_ci[0] > 0 or boot_ci[1] < 0,
        'error_mean': 1.0 + d,
        'winning_softmax': 0.9,
    }


def test_findings_call_a_method_better_or_worse_only_when_both_intervals_agree():
    from pls_edu.formats import findings

    rows = [
        {**_row('erm', 0.0, (0, 0), (0, 0)), 'vs_ref': None},
        _row('a', -0.5, (-0.9, -0.1), (-0.8, -0.2)),  # both exclude 0: better
        _row('b', -0.5, (-0.9, 0.3), (-0.8, -0.2)),  # the by-seed interval includes 0: not a finding
        _row('c', 0.6, (0.2, 1.0), (0.1, 1.1)),  # both: worse
        _row('d', 0.6, (0.2, 1.0), (-0.1, 1.1)),  # the bootstrap includes 0
    ]
    text = findings(rows)
    line = next(ln for ln in text.splitlines() if 'by both' in ln)
    assert 'better than ERM: `a`;' in line and 'worse: `c`.' in line, line
