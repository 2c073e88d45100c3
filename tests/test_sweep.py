"Presets, the runner (skip, resume, failure records, several devices), manifests and the paper-layout tables."

import dataclasses
import json

import nbformat
import pytest

from fixtures import fake_result
from pls_edu.sweepcli import main, run_index
from pls_edu.presets import PRESETS, preset_runs
from pls_edu.tables import paper_results
from pls_edu.results import CKPT, RESULT, run_dir
from pls_edu.runs import run_one
from pls_edu.slurm import load_manifest, write_manifest, write_sbatch
from pls_edu.runspec import RunOptions, RunSpec
from pls_edu.tables import aggregate, write_tables
from pls_edu.runnotebook import run_notebook
from pls_edu.sweep import run_sweep
from pls_edu.train import TrainConfig


def test_presets_cover_the_paper():
    assert {'table1', 'table2', 'table3', 'table4', 'fig3', 'cpu-table1', 'cpu-mnist', 'cpu-tiny'} <= set(PRESETS)
    t1 = preset_runs('table1')
    assert len(t1) == 270
    assert {r.config.epochs for r in t1} == {None}
    assert t1[0].config.resolved().epochs == 400
    assert {r.config.model for r in preset_runs('table2')} == {'resnet50'}
    assert {r.config.method for r in preset_runs('fig3')} == {f'pls-w0.{i}' for i in range(1, 10)}
    assert {r.config.dataset for r in preset_runs('table4')} == {'cifar10', 'cifar100'}
    n = preset_runs('table1', datasets=['svhn'], methods=['pls', 'erm'], seeds=[0], epochs=3)
    got = [(r.config.dataset, r.config.method, r.config.epochs) for r in n]
    assert got == [('svhn', 'erm', 3), ('svhn', 'pls', 3)]
    with pytest.raises(ValueError, match=r"unknown preset 'table7'; choose one of \['table1'"):
        preset_runs('table7')
    with pytest.raises(ValueError, match=r"preset 'table1' has no dataset \['imagenet'\]"):
        preset_runs('table1', datasets=['imagenet'])
    with pytest.raises(ValueError, match='epochs must be a positive integer'):
        preset_runs('table1', epochs=0)


def test_mnist_presets_are_the_papers_experiments_on_real_mnist():
    main_runs = preset_runs('cpu-mnist')
    assert len(main_runs) == 27
    assert {r.config.dataset for r in main_runs} == {'mnist'}
    assert {r.config.holdout for r in main_runs} == {0.0}  # all 60,000 training images are trained on
    assert len({r.config.method for r in main_runs}) == 9
    abl = preset_runs('cpu-mnist-ablations')
    seeds = {}
    for r in abl:
        seeds.setdefault(r.config.method, set()).add(r.config.seed)
    assert seeds['pls-no-original'] == seeds['pls-coeff'] == {0, 1, 2}
    assert seeds['pls-w0.1'] == {0} and 'pls-w0.5' not in seeds  # Fig. 3's w = 0.5 is PLS itself
    # the ablations share PLS's runs with the main preset: same folder, trained once
    ids = {run_dir('x', r.config).name for r in abl} & {run_dir('x', r.config).name for r in main_runs}
    assert ids == {f'mnist_small-cnn-g3_pls_s{s}' for s in range(3)}


def test_run_notebook_parameters_cover_every_config_field_and_option():
    nb = run_notebook()
    cell = [c for c in nb.cells if 'parameters' in c.metadata.get('tags', [])]
    assert len(cell) == 1
    lines = cell[0].source.splitlines()
    names = {line.split('=')[0].strip() for line in lines if '=' in line and not line.startswith('#')}
    assert {f.name for f in dataclasses.fields(TrainConfig)} <= names
    assert {f.name for f in dataclasses.fields(RunOptions)} <= names
    assert {'ood', 'lease_token'} <= names


class Stop(Exception):
    "Raised from an epoch callback to leave a run half-done, as a crash would."


def _stop_after_first_epoch(t):
    if t.epoch == 1:
        raise Stop


def test_papermill_sweep_skips_resumes_and_records_failures(tmp_path, digits):
    runs = preset_runs('cpu-tiny', methods=['pls'])
    # one run already finished, one interrupted after its first epoch (a checkpoint and no result)
    run_one(runs[0], tmp_path, digits)
    with pytest.raises(Stop):
        run_one(runs[1], tmp_path, digits, on_epoch=_stop_after_first_epoch)
    assert (run_dir(tmp_path, runs[1].config) / CKPT).exists()
    bad_cfg = dataclasses.replace(runs[0].config, seed=7, epochs='2')  # a string where an int belongs
    bad = RunSpec(bad_cfg)
    s = run_sweep(runs + [bad], RunOptions(str(tmp_path)))
    assert {k: v for k, v in s['counts'].items() if v} == {'resumed': 1, 'failed': 1, 'skipped': 1}
    d = run_dir(tmp_path, bad_cfg)
    f = json.loads((d / 'failed.json').read_text())
    assert 'parameter epochs must be an integer' in f['error']
    assert (d / 'failed.ipynb').exists()
    executed = nbformat.read(run_dir(tmp_path, runs[1].config) / 'run.ipynb', 4)
    assert any('resumed' in o.get('text', '') for c in executed.cells for o in c.get('outputs', []))
    # a later sweep with the bad run fixed clears the failure record
    fixed = RunSpec(dataclasses.replace(bad_cfg, epochs=2))
    s = run_sweep([fixed], RunOptions(str(tmp_path), engine='direct'))
    assert s['counts']['done'] == 1
    assert not (d / 'failed.json').exists()


def test_several_devices_run_at_the_same_time(tmp_path, capfd):
    runs = preset_runs('cpu-tiny', methods=['erm'])
    s = run_sweep(runs, RunOptions(str(tmp_path), threads=1), devices=['cpu', 'cpu'])
    assert s['counts']['done'] == 2
    assert 'without encryption' not in capfd.readouterr().err  # the kernels talk over IPC sockets, not TCP
    spans = []
    for r in runs:
        md = nbformat.read(run_dir(tmp_path, r.config) / 'run.ipynb', 4).metadata.papermill
        spans.append((md['start_time'], md['end_time']))
    (a0, a1), (b0, b1) = sorted(spans)
    assert b0 < a1, 'the two runs did not overlap: the devices were not used in parallel'


def test_unwritable_folder_and_corrupt_results(tmp_path):
    f = tmp_path / 'file'
    f.write_text('x')
    with pytest.raises(PermissionError, match='is not writable'):
        run_sweep(preset_runs('cpu-tiny'), RunOptions(str(f / 'out')))
    runs = preset_runs('cpu-tiny', methods=['erm'], seeds=[0])
    direct = RunOptions(str(tmp_path), engine='direct')
    run_sweep(runs, direct)
    p = run_dir(tmp_path, runs[0].config) / RESULT
    good = p.read_text()
    p.write_text(good[:30])
    a = aggregate('cpu-tiny', tmp_path, methods=['erm'], seeds=[0])
    assert a['runs'] == 0
    assert 'corrupt result file' in a['corrupt'][0]
    assert 'missing' in a['markdown']
    s = run_sweep(runs, direct)
    assert s['counts']['done'] == 1
    assert len(list(p.parent.glob('result.corrupt-*.json'))) == 1


def test_tables_report_the_final_or_the_best_epoch_and_say_which(tmp_path, capsys):
    for r in preset_runs('cpu-tiny'):
        fake_result(tmp_path, r.config, 5.0, best=4.0)
    main(['aggregate', 'cpu-tiny', '--out', str(tmp_path), '--error', 'best'])
    best = (tmp_path / 'tables' / 'cpu-tiny_best.md').read_text()
    assert 'the **best epoch** of each run' in best
    assert '| 4.00 ± 0.00 (2) |' in best and '**4.00' not in best  # no row is marked best
    main(['aggregate', 'cpu-tiny', '--out', str(tmp_path)])
    final = (tmp_path / 'tables' / 'cpu-tiny.md').read_text()
    assert 'the **final epoch**' in final
    assert '| 5.00 ± 0.00 (2) |' in final
    assert 'precision: fp32 (4)' in final


def _row(md, name):
    return [line for line in md.splitlines() if line.startswith(f'| {name} |')][0]


def test_table1_layout_beside_the_paper(tmp_path):
    runs = preset_runs('table1', datasets=['cifar10'], methods=['erm', 'pls'])
    errs = {'erm': [5.0, 5.2, 5.4, 5.6, 5.8], 'pls': [3.5, 3.7]}  # pls: only two seeds finished so far
    for r in runs:
        c = r.config
        if c.seed < len(errs[c.method]):
            fake_result(tmp_path, c, errs[c.method][c.seed])
    a = write_tables('table1', tmp_path)
    md = a['markdown']
    pls_row = _row(md, 'PLS')
    erm_row = _row(md, 'ERM')
    # columns per dataset: ours, paper, difference, paired by seed, paired over test images
    assert pls_row.startswith('| PLS | missing | 0.47 ± 0.03 | — | — | — | missing | 3.96 ± 0.05 | — | — | — |')
    # CIFAR-10: best in bold; by seed over the two common seeds; over images, pooled predictions
    assert '| 3.60 ± 0.14 (2) | 3.63 ± 0.10 | -0.03 | -1.50 [-1.50, -1.50] * | -1.50 [' in pls_row
    assert '| 5.40 ± 0.32 (5) | 5.19 ± 0.30 | +0.21 | — | — |' in erm_row
    assert md.count('missing') == 7 * 6 + 2 * 5  # every other method everywhere, and the five other datasets
    assert a['runs'] == 7
    assert a['expected'] == 270
    rows = [r for r in a['rows'] if r['dataset'] == 'cifar10' and r['method'] == 'pls']
    assert rows[0]['seeds'] == 2
    assert rows[0]['boot_hi'] < 0  # 35 and 37 wrong against 50 and 52 on the same images: always fewer errors
    assert (tmp_path / 'tables' / 'table1.md').exists()
    assert (tmp_path / 'tables' / 'table1.csv').exists()
    # a finished run of another config (other epochs) is not counted
    fake_result(tmp_path / 'other', dataclasses.replace(runs[0].config, epochs=10), 1.0)
    assert aggregate('table1', tmp_path / 'other')['runs'] == 0
    # but one trained on a GPU (device, bf16 autocast, channels_last, compile) is the same run
    gpu = dataclasses.replace(runs[0].config, precision='bf16', channels_last=True, compile=True, workers=8)
    fake_result(tmp_path / 'gpu', gpu, 5.0)
    assert aggregate('table1', tmp_path / 'gpu')['runs'] == 1


def test_paper_numbers_are_complete():
    p = paper_results()
    for tab in ('table1', 'table2'):
        assert len([k for k in p if k[0] == tab]) == 54
    assert p[('table1', 'preact-resnet18', 'tiny-imagenet', 'pls')] == (35.26, 0.10)
    assert p[('table2', 'resnet50', 'svhn', 'pls')] == (2.36, 0.03)
    assert p[('table3', 'resnet50', 'cifar100', 'pls-no-original')] == (24.42, None)
    assert p[('table4', 'preact-resnet18', 'cifar10', 'pls-coeff')] == (4.67, None)


def test_other_layouts(tmp_path):
    for name in ('table3', 'table4', 'fig3'):
        r = preset_runs(name)[0].config
        fake_result(tmp_path / name, r, 20.0)
        a = write_tables(name, tmp_path / name)
        assert '20.00 (1)' in a['markdown'] and '**20.00' not in a['markdown']
        assert a['runs'] == 1
    t3 = aggregate('table3', tmp_path / 'table3')['markdown']
    assert '| — no original samples | missing | 23.84 | — | — | missing | 24.42 | — | — |' in t3
    t4 = aggregate('table4', tmp_path / 'table4')['markdown']
    assert '| pred. coeff. | 20.00 (1) | 4.67 | +15.33 | — | missing | 21.60 |' in t4
    assert (tmp_path / 'fig3' / 'tables' / 'fig3.png').read_bytes()[:4] == b'\x89PNG'
    # runs are shared between presets: Table 3's PLS on CIFAR-100 is Table 4's too
    shared = preset_runs('table3', methods=['pls'], models=['preact-resnet18'], seeds=[0])[0].config
    fake_result(tmp_path / 'shared', shared, 19.0)
    assert aggregate('table4', tmp_path / 'shared')['runs'] == 1


def test_manifest_and_array_script(tmp_path, capsys):
    runs = preset_runs('cpu-tiny')
    opts = RunOptions(str(tmp_path / 'shared'), engine='direct', threads=1)
    man = write_manifest(runs, opts)
    m = json.loads(man.read_text())
    assert len(m['runs']) == 4
    assert m['options']['out'] == str((tmp_path / 'shared').resolve())
    back, back_opts, _ = load_manifest(man)
    assert back == runs  # the runs and the options travel unchanged
    assert (back_opts.engine, back_opts.threads) == ('direct', 1)
    sb = write_sbatch(man, gpus_per_task=1, partition='gpu', max_parallel=2).read_text()
    assert '#SBATCH --array=0-3%2' in sb
    assert '#SBATCH --gres=gpu:1' in sb
    assert 'run-index' in sb
    assert '--device cuda' in sb
    with pytest.raises(IndexError, match=r'manifest index 4 is out of range: .* has 4 runs \(valid 0..3\)'):
        run_index(man, 4)
    with pytest.raises(SystemExit) as e:
        main(['run-index', str(man), '-1'])
    assert e.value.code == 2
    assert 'out of range' in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(['run-index', str(tmp_path / 'nope.json'), '0'])
    assert 'no manifest at' in capsys.readouterr().err
    assert run_index(man, 1, 'cpu')[0] == 'done'
    assert run_index(man, 1, 'cpu')[0] == 'skipped'
    main(['status', 'cpu-tiny', '--out', str(tmp_path / 'shared')])
    assert 'finished 1' in capsys.readouterr().out


def test_cli_errors(capsys):
    with pytest.raises(SystemExit) as e:
        main(['run', 'table9'])
    assert e.value.code == 2
    assert "unknown preset 'table9'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(['aggregate', 'table1', '--seeds', 'x'])
    assert "invalid int value: 'x'" in capsys.readouterr().err


def _finished(out, cfg, error, started='2026-12-07 06:00:00', n_test=1000):
    "A fake finished run with what a summary records of how it ran."
    d = fake_result(out, cfg, error, n_test=n_test)
    r = json.loads((d / RESULT).read_text())
    r.update(attempts=[{'started': started}], wall_seconds_this_process=10.0, train_seconds=9.0, threads=1, torch='x')
    (d / RESULT).write_text(json.dumps(r))


def test_parts_merge_only_when_each_registered_run_is_in_one_part(tmp_path, capsys):
    "Parts from two folders merge into the whole; a run of another recipe, or other test images, is refused."
    runs = preset_runs('cpu-tiny')
    for i, r in enumerate(runs):
        _finished(tmp_path / ('a' if i < 3 else 'b'), r.config, 5.0 + i)
        _finished(tmp_path / 'whole', r.config, 5.0 + i)
    for f in ('a', 'b', 'whole'):
        partial = ['--partial'] if f != 'whole' else []
        main(['summary', 'cpu-tiny', '--out', str(tmp_path / f), '--to', str(tmp_path / f'{f}.json'), *partial])
    main(['merge', 'cpu-tiny', str(tmp_path / 'a.json'), str(tmp_path / 'b.json'), '--to', str(tmp_path / 'm.json')])
    merged, whole = (json.loads((tmp_path / f).read_text()) for f in ('m.json', 'whole.json'))
    assert merged['runs'] == whole['runs'] and merged['runs_trained_here'] == 4
    assert [p['runs_trained_here'] for p in merged['parts']] == [3, 1]
    # a run trained with other epochs than the registered recipe is not a run of the preset
    _finished(tmp_path / 'c', dataclasses.replace(runs[3].config, epochs=3), 1.0)
    doc = json.loads((tmp_path / 'b.json').read_text())
    doc['runs'][0]['config']['epochs'] = 3
    (tmp_path / 'c.json').write_text(json.dumps(doc))
    with pytest.raises(SystemExit):
        main(
            ['merge', 'cpu-tiny', str(tmp_path / 'a.json'), str(tmp_path / 'c.json'), '--to', str(tmp_path / 'x.json')]
        )
    assert 'is not a run of preset cpu-tiny as registered' in capsys.readouterr().err
    # parts scored on different test images cannot be one summary
    _finished(tmp_path / 'd', runs[3].config, 5.0, n_test=500)
    main(['summary', 'cpu-tiny', '--out', str(tmp_path / 'd'), '--partial', '--to', str(tmp_path / 'd.json')])
    with pytest.raises(SystemExit):
        main(
            ['merge', 'cpu-tiny', str(tmp_path / 'a.json'), str(tmp_path / 'd.json'), '--to', str(tmp_path / 'x.json')]
        )
    assert 'were not scored on the same test images' in capsys.readouterr().err
    assert not (tmp_path / 'x.json').exists()
