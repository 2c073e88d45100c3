"One trainer per run folder, with real processes: two sweeps on one folder, and takeover after a holder is killed."

import json, os, signal, subprocess, time
from pathlib import Path

import numpy as np
import pytest
import torch

from fixtures import PLS_SWEEP, PLS_TRAIN
from pls_edu.lock import read_lease, lease_state
from pls_edu.presets import preset_runs
from pls_edu.results import CKPT, LOG, LOGITS, RESULT, read_result, run_dir
from pls_edu.runs import run_one
from pls_edu.runspec import RunOptions, RunSpec
from pls_edu.sweep import sweep_status
from pls_edu.train import TrainConfig

ENV = {**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONUNBUFFERED': '1'}


def starts(folder):
    "Training starts (fresh or resumed) in a run's own log."
    return [line for line in (Path(folder) / LOG).read_text().splitlines() if ': start ' in line or ': resume ' in line]


def test_two_sweeps_started_together_train_every_run_exactly_once(tmp_path):
    out = tmp_path / 'shared'
    cmd = [
        *PLS_SWEEP,
        'run',
        'cpu-tiny',
        '--epochs',
        '12',
        '--out',
        str(out),
        '--engine',
        'direct',
        '--threads',
        '1',
        '--no-progress',
    ]
    procs = [
        subprocess.Popen(cmd, env=ENV, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    runs = preset_runs('cpu-tiny', epochs=12)
    for r in runs:
        d = run_dir(out, r.config)
        res = read_result(d / RESULT)
        assert len(res['attempts']) == 1 and len(starts(d)) == 1, (d.name, res['attempts'], starts(d))
        assert read_lease(d) is None  # released
    summaries = [o.splitlines()[1] for o, _ in outs]
    done = sum(int(s.split('done ')[1].split(',')[0]) for s in summaries)
    assert done == len(runs), summaries  # the two runners shared the work: 4 trainings in all
    assert any('running-elsewhere' in s or 'skipped' in s for s in summaries), summaries


def _holder(out, host=None, lease_s=None):
    env = {**ENV, **({'PLS_HOSTNAME': host} if host else {})}
    cmd = [
        *PLS_TRAIN,
        '--method',
        'pls',
        '--epochs',
        '40',
        '--holdout',
        '0.2',
        '--out',
        str(out),
        '--ckpt-every',
        '1',
        '--no-progress',
        '--eager-cpu',  # as the in-process references train
    ] + (['--lease-s', str(lease_s)] if lease_s else [])
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _kill_after_checkpoint(p, d, epoch=3):
    t0 = time.time()
    while not ((d / CKPT).exists() and torch.load(d / CKPT, weights_only=True)['epoch'] >= epoch):
        assert p.poll() is None and time.time() - t0 < 120
        time.sleep(0.05)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()


CFG = TrainConfig(method='pls', epochs=40, holdout=0.2)


@pytest.fixture(scope='module')
def uninterrupted(tmp_path_factory):
    from pls_edu.data import load_digits_data

    out = tmp_path_factory.mktemp('ref')
    run_one(CFG, out, load_digits_data())
    d = run_dir(out, CFG)
    return read_result(d / RESULT), np.load(d / LOGITS)


def _identical(d, ref):
    r, z = read_result(d / RESULT), np.load(d / LOGITS)
    keys = ('error', 'nll', 'ece', 'train_loss', 'lr')
    assert [{k: h[k] for k in keys} for h in r['history']] == [{k: h[k] for k in keys} for h in ref[0]['history']]
    assert np.array_equal(z['test_logits'], ref[1]['test_logits'])


def test_holder_on_another_node_killed_then_taken_over_after_the_lease(tmp_path, digits, uninterrupted):
    d = run_dir(tmp_path, CFG)
    p = _holder(tmp_path, host='node-a', lease_s=4)  # a runner "on another node"
    _kill_after_checkpoint(p, d)
    lease = read_lease(d)
    assert lease['host'] == 'node-a' and lease_state(lease, 4) == 'live'  # its lease still looks alive
    busy = run_one(CFG, RunOptions(str(tmp_path), lease_s=4), digits)
    assert busy['status'] == 'running-elsewhere' and busy['holder']['host'] == 'node-a'
    st = sweep_status([RunSpec(CFG)], tmp_path, lease_s=4)
    assert st['running'] and 'host node-a, pid ' in st['running'][0][1]  # status says where and since when
    while lease_state(read_lease(d), 4) == 'live':
        time.sleep(0.2)  # no heartbeat: stale after 4 s
    r = run_one(CFG, RunOptions(str(tmp_path), lease_s=4), digits)
    assert r['status'] == 'resumed' and r['result']['attempts'][0]['host'] == 'node-a'
    assert 'took over the lease of a runner that is gone (host node-a' in (d / LOG).read_text()
    _identical(d, uninterrupted)


def test_holder_on_this_host_killed_is_taken_over_at_once(tmp_path, digits, uninterrupted):
    d = run_dir(tmp_path, CFG)
    p = _holder(tmp_path)  # default lease: 300 s
    _kill_after_checkpoint(p, d)
    assert lease_state(read_lease(d)) == 'dead'  # its pid is gone: no need to wait 5 minutes
    r = run_one(CFG, tmp_path, digits)
    assert r['status'] == 'resumed'
    _identical(d, uninterrupted)


def test_a_runner_that_lost_its_lease_stops_without_writing(tmp_path, digits):
    cfg = TrainConfig(method='erm', epochs=6)
    d = run_dir(tmp_path, cfg)

    def hijack(t):  # another runner takes the folder over mid-run
        if t.epoch == 2:
            lease = read_lease(d)
            lease.update(token='someone-else', host='node-b')
            (d / 'lease.json').write_text(json.dumps(lease))

    from pls_edu.lock import LeaseLost

    with pytest.raises(LeaseLost, match='taken over by another runner'):
        run_one(cfg, tmp_path, digits, on_epoch=hijack)
    assert (
        not (d / RESULT).exists() and torch.load(d / CKPT, weights_only=True)['epoch'] == 2
    )  # epoch 3 was never written
