"Run folders: atomic files, skip/resume/conflict rules, and exact resumption after a real SIGKILL."

import os, signal, subprocess, sys, textwrap, time

import numpy as np
import pytest
import torch

from pls_edu.results import CKPT, LOGITS, RESULT, CorruptResultError, read_result, run_dir
from pls_edu.runs import RunConflictError, run_one
from pls_edu.runspec import RunOptions
from pls_edu.train import TrainConfig

KEYS = ('error', 'nll', 'ece', 'brier', 'winning_softmax', 'train_loss', 'lr')


def metrics(hist):
    return [{k: h[k] for k in KEYS} for h in hist]


CHILD = textwrap.dedent('''
    import sys, time, torch
    torch.set_num_threads(1)
    from pathlib import Path
    from pls_edu.data import load_digits_data
    from pls_edu.runs import run_one
    from pls_edu.runspec import RunOptions
    from pls_edu.train import TrainConfig
    out, marker = sys.argv[1], Path(sys.argv[2])
    def on_epoch(t):
        if t.epoch == 3: marker.write_text('3')       # the parent kills us as soon as it sees this
    run_one(TrainConfig(method='pls', epochs=24, holdout=0.1), RunOptions(out), load_digits_data(), on_epoch=on_epoch)
    time.sleep(60)
''')


def test_sigkill_then_resume_matches_an_uninterrupted_run(tmp_path, digits):
    out, marker = tmp_path / 'out', tmp_path / 'marker'
    script = tmp_path / 'child.py'
    script.write_text(CHILD)
    proc = subprocess.Popen([sys.executable, str(script), str(out), str(marker)])
    try:
        t0 = time.time()
        while not marker.exists():
            assert proc.poll() is None, 'child died before epoch 3'
            assert time.time() - t0 < 240, 'child too slow'
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    cfg = TrainConfig(method='pls', epochs=24, holdout=0.1)  # long enough that the kill lands mid-run
    d = run_dir(out, cfg)
    assert not (d / RESULT).exists(), 'a killed run must not look finished'
    assert (d / CKPT).exists() and 3 <= torch.load(d / CKPT, weights_only=True)['epoch'] < 24
    resumed = run_one(cfg, RunOptions(str(out)), digits)
    assert resumed['status'] == 'resumed'
    fresh = run_one(cfg, tmp_path / 'fresh', digits)
    assert metrics(resumed['result']['history']) == metrics(fresh['result']['history'])
    assert resumed['result']['final'] == fresh['result']['final']
    a, b = np.load(d / LOGITS), np.load(run_dir(tmp_path / 'fresh', cfg) / LOGITS)
    assert np.array_equal(a['test_logits'], b['test_logits']) and np.array_equal(
        a['holdout_logits'], b['holdout_logits']
    )
    assert not (d / CKPT).exists()  # a finished run drops its checkpoint
    assert [p.name for p in d.iterdir() if '.tmp' in p.name] == []  # no temporary files left


def test_checkpoint_loads_with_weights_only(tmp_path, digits):
    cfg = TrainConfig(method='mixup', epochs=3)

    class Stop(Exception):
        pass

    def stop(t):
        if t.epoch == 1:
            raise Stop

    with pytest.raises(Stop):
        run_one(cfg, tmp_path, digits, on_epoch=stop)
    sd = torch.load(run_dir(tmp_path, cfg) / CKPT, weights_only=True)
    from pls_edu.loaders import DeviceLoader

    assert sd['epoch'] == 1 and len(sd['history']) == 1 and sd['config']['method'] == 'mixup'
    assert sd['step'] == len(DeviceLoader(digits, batch_size=64))
    assert set(sd) >= {'model', 'opt', 'sched', 'gen', 'rng', 'torch_rng', 'step', 'epoch', 'history', 'config'}


def test_finished_runs_are_skipped_and_never_overwritten(tmp_path, digits):
    cfg = TrainConfig(method='erm', epochs=1)
    assert run_one(cfg, tmp_path, digits)['status'] == 'done'
    p = run_dir(tmp_path, cfg) / RESULT
    before = p.read_bytes()
    assert run_one(cfg, tmp_path, digits)['status'] == 'skipped'
    with pytest.raises(RunConflictError, match=r"different config \{'epochs': \(1, 2\)\}"):
        run_one(TrainConfig(method='erm', epochs=2), tmp_path, digits)
    assert p.read_bytes() == before


def test_corrupt_result_is_reported_moved_aside_and_rerun(tmp_path, digits, capsys):
    cfg = TrainConfig(method='erm', epochs=1)
    run_one(cfg, tmp_path, digits)
    p = run_dir(tmp_path, cfg) / RESULT
    p.write_text(p.read_text()[:50])
    with pytest.raises(CorruptResultError, match='corrupt result file'):
        read_result(p)
    r = run_one(cfg, tmp_path, digits)
    assert r['status'] == 'done' and 'corrupt result file' in capsys.readouterr().out
    assert len(list(p.parent.glob('result.corrupt-*.json'))) == 1  # kept, not deleted
    assert read_result(p)['final'] == r['result']['final']


@pytest.mark.skipif(os.geteuid() == 0, reason='root can write anywhere')
def test_unwritable_results_folder(tmp_path, digits):
    ro = tmp_path / 'ro'
    ro.mkdir()
    ro.chmod(0o500)
    with pytest.raises(PermissionError, match='is not writable'):
        run_one(TrainConfig(epochs=1), ro / 'sub', digits)


def test_unwritable_results_folder_is_refused_even_for_root(tmp_path, digits):
    f = tmp_path / 'a-file'
    f.write_text('x')  # a path under a regular file can never be a folder
    with pytest.raises(PermissionError, match='is not writable'):
        run_one(TrainConfig(epochs=1), f / 'results', digits)
