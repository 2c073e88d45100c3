"Presets, the papermill runner (skip, resume, failure records, several devices), manifests and the paper-layout tables."
import dataclasses, json, os
from pathlib import Path

import nbformat
import pytest
import torch

from pls_edu.runs import run_one, run_dir, save_json, RESULT, CKPT
from pls_edu.sweep import PRESETS, preset_runs, run_sweep, execute_run, aggregate, write_tables, paper_results, run_notebook
from pls_edu.slurm import write_manifest, write_sbatch, run_index
from pls_edu.cli import main
from pls_edu.train import TrainConfig


def test_presets_cover_the_paper():
    assert {'table1', 'table2', 'table3', 'table4', 'fig3', 'cpu-table1', 'cpu-tiny'} <= set(PRESETS)
    t1 = preset_runs('table1')
    assert len(t1) == 270 and {r['config'].epochs for r in t1} == {None} and t1[0]['config'].resolved().epochs == 400
    assert {r['config'].model for r in preset_runs('table2')} == {'resnet50'}
    assert {r['config'].method for r in preset_runs('fig3')} == {f'pls-w0.{i}' for i in range(1, 10)}
    assert {r['config'].dataset for r in preset_runs('table4')} == {'cifar10', 'cifar100'}
    n = preset_runs('table1', datasets=['svhn'], methods=['pls', 'erm'], seeds=[0], epochs=3)
    assert [(r['config'].dataset, r['config'].method, r['config'].epochs) for r in n] == [('svhn', 'erm', 3), ('svhn', 'pls', 3)]
    with pytest.raises(ValueError, match=r"unknown preset 'table7'; choose one of \['table1'"): preset_runs('table7')
    with pytest.raises(ValueError, match=r"preset 'table1' has no dataset \['imagenet'\]"): preset_runs('table1', datasets=['imagenet'])
    with pytest.raises(ValueError, match='epochs must be a positive integer'): preset_runs('table1', epochs=0)


def test_run_notebook_parameters_cover_every_config_field():
    nb = nbformat.read(run_notebook(), 4)
    cell = [c for c in nb.cells if 'parameters' in c.metadata.get('tags', [])]
    assert len(cell) == 1
    names = {line.split('=')[0].strip() for line in cell[0].source.splitlines() if '=' in line and not line.startswith('#')}
    assert {f.name for f in dataclasses.fields(TrainConfig)} <= names
    assert {'out', 'data_root', 'ckpt_every', 'threads', 'ood', 'download'} <= names


def test_papermill_sweep_skips_resumes_and_records_failures(tmp_path, digits):
    runs = preset_runs('cpu-tiny', methods=['pls'])
    # one run already finished, one interrupted after its first epoch (a checkpoint and no result)
    run_one(runs[0]['config'], tmp_path, digits, progress=False)
    class Stop(Exception): pass
    def stop(t):
        if t.epoch == 1: raise Stop
    with pytest.raises(Stop): run_one(runs[1]['config'], tmp_path, digits, ckpt_every=1, progress=False, on_epoch=stop)
    assert (run_dir(tmp_path, runs[1]['config'])/CKPT).exists()
    bad_type = {'config': dataclasses.replace(runs[0]['config'], seed=7, epochs='2'), 'ood': ''}      # a string where an int belongs
    s = run_sweep(runs + [bad_type], tmp_path, progress=False)
    assert {k: v for k, v in s['counts'].items() if v} == {'resumed': 1, 'failed': 1, 'skipped': 1}
    d = run_dir(tmp_path, bad_type['config'])
    f = json.loads((d/'failed.json').read_text())
    assert 'parameter epochs must be an integer' in f['error'] and (d/'failed.ipynb').exists()
    assert (run_dir(tmp_path, runs[1]['config'])/'run.ipynb').exists()
    executed = nbformat.read(run_dir(tmp_path, runs[1]['config'])/'run.ipynb', 4)
    assert any('resumed' in o.get('text', '') for c in executed.cells for o in c.get('outputs', []))
    # a later sweep with the bad run fixed clears the failure record
    s = run_sweep([{'config': dataclasses.replace(bad_type['config'], epochs=2), 'ood': ''}], tmp_path, engine='direct', progress=False)
    assert s['counts']['done'] == 1 and not (d/'failed.json').exists()


def test_several_devices_run_at_the_same_time(tmp_path, capfd):
    runs = preset_runs('cpu-tiny', methods=['erm'])
    s = run_sweep(runs, tmp_path, devices=['cpu', 'cpu'], threads=1, progress=False)
    assert s['counts']['done'] == 2
    assert 'without encryption' not in capfd.readouterr().err          # the kernels talk over IPC sockets, not TCP
    spans = []
    for r in runs:
        md = nbformat.read(run_dir(tmp_path, r['config'])/'run.ipynb', 4).metadata.papermill
        spans.append((md['start_time'], md['end_time']))
    (a0, a1), (b0, b1) = sorted(spans)
    assert b0 < a1, 'the two runs did not overlap: the devices were not used in parallel'


def test_unwritable_folder_and_corrupt_results(tmp_path):
    f = tmp_path/'file'; f.write_text('x')
    with pytest.raises(PermissionError, match='is not writable'):
        run_sweep(preset_runs('cpu-tiny'), f/'out', progress=False)
    runs = preset_runs('cpu-tiny', methods=['erm'], seeds=[0])
    run_sweep(runs, tmp_path, engine='direct', progress=False)
    p = run_dir(tmp_path, runs[0]['config'])/RESULT
    good = p.read_text()
    p.write_text(good[:30])
    a = aggregate('cpu-tiny', tmp_path, methods=['erm'], seeds=[0])
    assert a['runs'] == 0 and 'corrupt result file' in a['corrupt'][0] and 'missing' in a['markdown']
    s = run_sweep(runs, tmp_path, engine='direct', progress=False)
    assert s['counts']['done'] == 1 and len(list(p.parent.glob('result.corrupt-*.json'))) == 1


def _fake_result(out, cfg, error, best=None):
    "A result file as run_one writes it (aggregation reads only these files)."
    save_json(run_dir(out, cfg)/RESULT, {'id': run_dir(out, cfg).name, 'config': dataclasses.asdict(cfg.resolved()),
                                         'history': [], 'final': {'error': error, 'best_error': error if best is None else best}, 'status': 'done'})


def test_tables_report_the_final_or_the_best_epoch_and_say_which(tmp_path, capsys):
    for r in preset_runs('cpu-tiny'): _fake_result(tmp_path, r['config'], 5.0, best=4.0)
    main(['aggregate', 'cpu-tiny', '--out', str(tmp_path), '--error', 'best'])
    best = (tmp_path/'tables'/'cpu-tiny_best.md').read_text()
    assert 'the **best epoch** of each run' in best and '| **4.00 ± 0.00 (2)** |' in best
    main(['aggregate', 'cpu-tiny', '--out', str(tmp_path)])
    final = (tmp_path/'tables'/'cpu-tiny.md').read_text()
    assert 'the **final epoch**' in final and '| **5.00 ± 0.00 (2)** |' in final and 'precision: fp32 (4)' in final


def test_table1_layout_beside_the_paper(tmp_path):
    runs = preset_runs('table1', datasets=['cifar10'], methods=['erm', 'pls'])
    errs = {'erm': [5.0, 5.2, 5.4, 5.6, 5.8], 'pls': [3.5, 3.7]}        # pls: only two seeds finished so far
    for r in runs:
        c = r['config']
        if c.seed < len(errs[c.method]): _fake_result(tmp_path, c, errs[c.method][c.seed])
    a = write_tables('table1', tmp_path)
    md = a['markdown']
    pls_row = [l for l in md.splitlines() if l.startswith('| PLS |')][0]
    erm_row = [l for l in md.splitlines() if l.startswith('| ERM |')][0]
    assert pls_row.startswith('| PLS | missing | 0.47 ± 0.03 | — | — | missing | 3.96 ± 0.05 | — | — | missing | 2.68 ± 0.09 | — | — |')
    assert '| **3.60 ± 0.14 (2)** | 3.63 ± 0.10 | -0.03 | -1.50 [-1.50, -1.50] * |' in pls_row   # CIFAR-10: best in bold; paired vs ERM
    assert '| 5.40 ± 0.32 (5) | 5.19 ± 0.30 | +0.21 | — |' in erm_row
    assert md.count('missing') == 7 * 6 + 2 * 5            # every other method everywhere, and the five other datasets
    assert a['runs'] == 7 and a['expected'] == 270
    rows = [r for r in a['rows'] if r['dataset'] == 'cifar10' and r['method'] == 'pls']
    assert rows[0]['paper_mean'] == 3.63 and rows[0]['seeds'] == 2 and rows[0]['diff'] == pytest.approx(3.6 - 3.63)
    assert (tmp_path/'tables'/'table1.md').exists() and (tmp_path/'tables'/'table1.csv').exists()
    # a finished run of another config (other epochs) is not counted
    _fake_result(tmp_path/'other', dataclasses.replace(runs[0]['config'], epochs=10), 1.0)
    assert aggregate('table1', tmp_path/'other')['runs'] == 0
    # but one trained on a GPU (device, bf16 autocast, channels_last, compile) is the same run
    gpu = dataclasses.replace(runs[0]['config'], device='cpu', precision='bf16', channels_last=True, compile=True, workers=8)
    _fake_result(tmp_path/'gpu', gpu, 5.0)
    assert aggregate('table1', tmp_path/'gpu')['runs'] == 1


def test_paper_numbers_are_complete():
    p = paper_results()
    for tab, model in (('table1', 'preact-resnet18'), ('table2', 'resnet50')):
        assert len([k for k in p if k[0] == tab]) == 54
    assert p[('table1', 'preact-resnet18', 'tiny-imagenet', 'pls')] == (35.26, 0.10)
    assert p[('table2', 'resnet50', 'svhn', 'pls')] == (2.36, 0.03)
    assert p[('table3', 'resnet50', 'cifar100', 'pls-no-original')] == (24.42, None)
    assert p[('table4', 'preact-resnet18', 'cifar10', 'pls-coeff')] == (4.67, None)


def test_other_layouts(tmp_path):
    for name in ('table3', 'table4', 'fig3'):
        r = preset_runs(name)[0]['config']
        _fake_result(tmp_path/name, r, 20.0)
        a = write_tables(name, tmp_path/name)
        assert '**20.00 (1)**' in a['markdown'] and a['runs'] == 1
    assert '| — no original samples | missing | 23.84 | — | — | missing | 24.42 | — | — |' in aggregate('table3', tmp_path/'table3')['markdown']
    assert '| pred. coeff. | **20.00 (1)** | 4.67 | +15.33 | — | missing | 21.60 |' in aggregate('table4', tmp_path/'table4')['markdown']
    assert (tmp_path/'fig3'/'tables'/'fig3.png').read_bytes()[:4] == b'\x89PNG'
    # runs are shared between presets: Table 3's PLS on CIFAR-100 is Table 4's too
    _fake_result(tmp_path/'shared', preset_runs('table3', methods=['pls'], models=['preact-resnet18'], seeds=[0])[0]['config'], 19.0)
    assert aggregate('table4', tmp_path/'shared')['runs'] == 1


def test_manifest_and_array_script(tmp_path, capsys):
    runs = preset_runs('cpu-tiny')
    man = write_manifest(runs, tmp_path/'shared')
    m = json.loads(man.read_text())
    assert len(m['runs']) == 4 and m['out'] == str((tmp_path/'shared').resolve())
    sb = write_sbatch(man, gpus_per_task=1, partition='gpu', max_parallel=2).read_text()
    assert '#SBATCH --array=0-3%2' in sb and '#SBATCH --gres=gpu:1' in sb and 'run-index' in sb and '--device cuda' in sb
    with pytest.raises(IndexError, match=r'manifest index 4 is out of range: .* has 4 runs \(valid 0..3\)'):
        run_index(man, 4)
    with pytest.raises(SystemExit) as e: main(['run-index', str(man), '-1'])
    assert e.value.code == 2 and 'out of range' in capsys.readouterr().err
    with pytest.raises(SystemExit) as e: main(['run-index', str(tmp_path/'nope.json'), '0'])
    assert 'no manifest at' in capsys.readouterr().err
    assert run_index(man, 1, 'cpu')[0] == 'done'
    assert run_index(man, 1, 'cpu')[0] == 'skipped'
    main(['status', 'cpu-tiny', '--out', str(tmp_path/'shared')])
    assert 'finished 1' in capsys.readouterr().out


def test_cli_errors(capsys):
    with pytest.raises(SystemExit) as e: main(['run', 'table9'])
    assert e.value.code == 2 and "unknown preset 'table9'" in capsys.readouterr().err
    with pytest.raises(SystemExit): main(['aggregate', 'table1', '--seeds', 'x'])
    assert "invalid int value: 'x'" in capsys.readouterr().err
