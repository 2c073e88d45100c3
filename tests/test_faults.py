"""Fault injection: every way the write path of a run or a sweep can fail, tried for real, and what survives it.

| #  | fault, and how it is injected                                                      | what happens                                                                   | what is kept                                                           |
|----|------------------------------------------------------------------------------------|--------------------------------------------------------------------------------|------------------------------------------------------------------------|
| 1  | disk full while a checkpoint is written (`RLIMIT_FSIZE` in the child: `EFBIG`)      | `pls-train` stops with one line naming `checkpoint.pt` and "File too large"      | the previous checkpoint, byte for byte; the rerun ends identical        |
| 2  | disk full while the final weights are written (a limit between logits and model)    | one line naming `model.pt`; no `result.json`, so the run is not finished        | the last checkpoint; the rerun resumes and ends identical              |
| 3  | results folder turned read-only mid-sweep (tmpfs remounted `ro`; `chmod` if not root) | the running run fails naming the file and the cause; the sweep stops early      | finished runs and the last checkpoint; after `rw`, the rerun completes |
| 4  | SIGKILL half-way through writing `checkpoint.pt` (`PLS_FAULT_PAUSE_WRITE` hook)     | a half-written `.checkpoint.pt.tmp*` is left; nothing reads it                  | the previous checkpoint; the rerun deletes the temp file, ends identical |
| 5  | SIGKILL half-way through writing `result.json`                                       | no `result.json`: the run is not finished, although logits and weights exist    | the last checkpoint; the rerun resumes and ends identical              |
| 6  | truncated `result.json`                                                             | refused naming the file; the sweep moves it aside and retrains; aggregate skips | `result.corrupt-<time>.json`                                            |
| 7  | truncated `logits.npz`                                                              | same, naming `logits.npz` (size differs from the recorded one)                  | `logits.corrupt-<time>.npz` and the old result beside it                |
| 8  | garbage `model.pt`                                                                  | same, naming `model.pt`                                                         | `model.corrupt-<time>.pt`                                                |
| 9  | garbage `checkpoint.pt`                                                             | a warning naming it; moved aside; the run trains from the start                 | `checkpoint.corrupt-<time>.pt`                                           |
| 10 | garbage or truncated sweep manifest                                                 | `run-index` refuses in one line naming the file (exit 2)                        | the file                                                                |
| 11 | a pickle that runs a command, planted as `checkpoint.pt` and as `model.pt`          | refused by `torch.load(weights_only=True)`; the command never runs              | the planted file, moved aside                                           |
| 12 | the papermill kernel SIGKILLed mid-run                                              | the run is recorded as failed (`failed.json`, partial `failed.ipynb`)           | the last checkpoint; the next sweep resumes and ends identical         |
| 13 | SLURM's time-limit USR1 while `run-index` exits after finishing its entry (atexit)  | the process exits 0, so the batch script does not requeue a finished task       | the finished run                                                       |
| 14 | SLURM's USR1 (sent up to a minute early) before the run starts training (a hook)    | the run stops after its first step, checkpoints, and `run-index` exits 3        | the checkpoint; the requeued task resumes it and ends identical         |

Every "ends identical" compares per-epoch metrics and test/holdout logits, bit for bit, with an uninterrupted run.
"""

import json, os, resource, signal, subprocess, sys, time
from pathlib import Path

import numpy as np
import pytest
import torch

from fixtures import PLS_SWEEP, PLS_TRAIN
from pls_edu.files import file_record, save_json
from pls_edu.presets import preset_runs
from pls_edu.results import CKPT, LOG, LOGITS, MODEL, RESULT, collect, load_run_model, read_result, run_dir
from pls_edu.runs import run_one
from pls_edu.slurm import write_manifest
from pls_edu.runspec import RunOptions, RunSpec
from pls_edu.tables import aggregate
from pls_edu.sweep import run_sweep
from pls_edu.train import TrainConfig

E = 6
CFG = TrainConfig(method='pls', epochs=E, holdout=0.2)
KEYS = ('error', 'nll', 'ece', 'train_loss', 'lr', 'ece_ts_refit')
ENV = {**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONUNBUFFERED': '1'}


@pytest.fixture(scope='module')
def reference(tmp_path_factory):
    "An uninterrupted run of CFG: its result, logits and file sizes."
    from pls_edu.data import load_digits_data

    out = tmp_path_factory.mktemp('ref')
    r = run_one(CFG, out, load_digits_data())['result']
    d = run_dir(out, CFG)
    return {
        'result': r,
        'logits': dict(np.load(d / LOGITS)),
        'sizes': {n: (d / n).stat().st_size for n in (LOGITS, MODEL, RESULT)},
    }


def assert_identical(folder, ref):
    r = read_result(Path(folder) / RESULT)
    assert [{k: h[k] for k in KEYS} for h in r['history']] == [
        {k: h[k] for k in KEYS} for h in ref['result']['history']
    ]
    z = np.load(Path(folder) / LOGITS)
    for k in ('test_logits', 'holdout_logits'):
        assert np.array_equal(z[k], ref['logits'][k]), k
    return r


def stopped_at(out, digits, epoch):
    "A run of CFG stopped right after its checkpoint at `epoch` (as a crash would leave it)."

    class Stop(Exception):
        pass

    def stop(t):
        if t.epoch == epoch:
            raise Stop

    with pytest.raises(Stop):
        run_one(CFG, out, digits, on_epoch=stop)
    return run_dir(out, CFG)


def pls_train(out, *args, env=None, fsize=None, wait=True):
    "`pls-train` of CFG in a fresh process, optionally with a file-size limit (writes beyond it fail with EFBIG)."

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    cmd = [
        *PLS_TRAIN,
        '--method',
        'pls',
        '--epochs',
        str(E),
        '--holdout',
        '0.2',
        '--out',
        str(out),
        '--no-progress',
        '--eager-cpu',  # the references below train eager, in this process
        *args,
    ]
    kw = dict(
        env={**ENV, **(env or {})},
        preexec_fn=limit if fsize else None,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    if not wait:
        return subprocess.Popen(cmd, **kw)
    p = subprocess.run(cmd, timeout=240, **kw)
    return p.returncode, p.stdout, p.stderr


def one_error_line(stderr):
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and 'Traceback' not in stderr, stderr
    return lines[0]


def sha(p):
    return file_record(p)['sha256']


# 1, 2: a full disk --------------------------------------------------------------------------------------------------


def test_full_disk_during_a_checkpoint_keeps_the_previous_one(tmp_path, digits, reference):
    d = stopped_at(tmp_path, digits, 2)
    before = sha(d / CKPT)
    code, _, err = pls_train(tmp_path, '--ckpt-every', '1', fsize=(d / CKPT).stat().st_size // 2)
    line = one_error_line(err)
    assert code == 1 and 'cannot write' in line and 'checkpoint.pt: File too large' in line, line
    assert sha(d / CKPT) == before and torch.load(d / CKPT, weights_only=True)['epoch'] == 2  # untouched, usable
    assert not (d / RESULT).exists() and not list(d.glob('.*.tmp*'))
    assert run_one(CFG, tmp_path, digits)['status'] == 'resumed'
    assert_identical(d, reference)


def test_full_disk_during_the_final_weights_leaves_no_result(tmp_path, digits, reference):
    s = reference['sizes']
    assert s[LOGITS] < s[MODEL]
    d = stopped_at(tmp_path, digits, 3)
    code, _, err = pls_train(tmp_path, '--ckpt-every', '0', fsize=(s[LOGITS] + s[MODEL]) // 2)
    line = one_error_line(err)
    assert code == 1 and line.endswith('model.pt: File too large'), line
    assert not (d / RESULT).exists() and (d / CKPT).exists()  # not finished: logits alone do not make a result
    r = run_one(CFG, tmp_path, digits)
    assert r['status'] == 'resumed' and [a['from_epoch'] for a in r['result']['attempts']] == [
        0,
        3,
    ]  # the failed try left no checkpoint
    starts = [
        line.split(': ', 1)[1]
        for line in (d / LOG).read_text().splitlines()
        if ': start ' in line or ': resume ' in line
    ]
    assert [x.split(' on ')[0] for x in starts] == [
        'start at epoch 0 of 6',
        'resume at epoch 3 of 6',
        'resume at epoch 3 of 6',
    ]  # but the log has it
    assert_identical(d, reference)


# 3: read-only mid-sweep ---------------------------------------------------------------------------------------------


@pytest.fixture
def volume(tmp_path):
    "A folder that can be made read-only for real: a tmpfs remounted read-only (root), or chmod (others)."
    m = tmp_path / 'vol'
    m.mkdir()
    if os.geteuid() != 0:

        def ro(flag):
            subprocess.run(['chmod', '-R', 'a-w' if flag else 'u+w', str(m)], check=True)

        yield m, ro
        ro(False)
        return
    if subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=64m', 'tmpfs', str(m)], capture_output=True).returncode != 0:
        pytest.skip('cannot mount a tmpfs here (root without CAP_SYS_ADMIN), and chmod does not stop root')

    def ro(flag):
        subprocess.run(['mount', '-o', f"remount,{'ro' if flag else 'rw'}", str(m)], check=True)

    try:
        yield m, ro
    finally:
        subprocess.run(['umount', '-l', str(m)], capture_output=True)


def test_results_folder_turns_read_only_mid_sweep(volume, digits):
    vol, read_only = volume
    out = vol / 'res'
    runs = preset_runs('cpu-tiny', methods=['pls'], epochs=40)
    cmd = [
        *PLS_SWEEP,
        'run',
        'cpu-tiny',
        '--methods',
        'pls',
        '--epochs',
        '40',
        '--out',
        str(out),
        '--engine',
        'direct',
        '--threads',
        '1',
        '--no-progress',
        '--eager-cpu',
    ]
    p = subprocess.Popen(cmd, env=ENV, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first, second = (run_dir(out, r.config) for r in runs)
    t0 = time.time()
    while not ((first / RESULT).exists() and (second / CKPT).exists()):  # one run finished, the next one under way
        assert p.poll() is None and time.time() - t0 < 120, p.communicate()
        time.sleep(0.05)
    read_only(True)
    stdout, stderr = p.communicate(timeout=120)
    assert p.returncode == 1, (stdout, stderr)
    assert 'STOPPED EARLY' in stdout and 'cannot write to the results folder' in stdout, stdout
    assert 'Read-only file system' in stdout or 'Permission denied' in stdout, stdout
    assert read_result(first / RESULT)['status'] == 'done'  # what finished stays finished
    ck = torch.load(second / CKPT, weights_only=True)  # the last checkpoint is usable
    read_only(False)
    s = run_sweep(runs, RunOptions(str(out), engine='direct', threads=1))
    assert s['counts']['skipped'] == 1 and s['counts']['resumed'] == 1, s
    from pls_edu.data import load_digits_data

    ref = run_one(runs[1], vol / 'ref', load_digits_data())['result']
    got = read_result(second / RESULT)
    assert [h['error'] for h in got['history']] == [h['error'] for h in ref['history']] and ck['epoch'] >= 1


# 4, 5: SIGKILL half-way through a write -----------------------------------------------------------------------------


def kill_while_writing(out, name, *args):
    p = pls_train(out, *args, env={'PLS_FAULT_PAUSE_WRITE': name}, wait=False)
    d, t0 = run_dir(out, CFG), time.time()
    while not list(d.glob(f'.{name}.tmp*.paused')):
        assert p.poll() is None and time.time() - t0 < 120, p.communicate()
        time.sleep(0.02)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    half = [q for q in d.glob(f'.{name}.tmp*') if not q.name.endswith('.paused')]
    assert len(half) == 1 and half[0].stat().st_size > 0
    return d


def test_sigkill_during_a_checkpoint_write(tmp_path, digits, reference):
    d = stopped_at(tmp_path, digits, 2)
    before = sha(d / CKPT)
    kill_while_writing(tmp_path, CKPT, '--ckpt-every', '1')  # the epoch-3 checkpoint, half written
    assert sha(d / CKPT) == before and not (d / RESULT).exists()
    r = run_one(CFG, tmp_path, digits)
    assert r['status'] == 'resumed' and not list(d.glob('.*.tmp*'))  # the stale half file is gone
    assert_identical(d, reference)


def test_sigkill_during_the_result_write(tmp_path, digits, reference):
    d = kill_while_writing(tmp_path, RESULT, '--ckpt-every', '1')
    assert not (d / RESULT).exists() and (d / LOGITS).exists() and (d / MODEL).exists() and (d / CKPT).exists()
    r = run_one(CFG, tmp_path, digits)
    assert r['status'] == 'resumed' and r['result']['attempts'][-1]['from_epoch'] == E - 1
    assert_identical(d, reference)


# 6-9, 11: damaged and planted files ---------------------------------------------------------------------------------


@pytest.mark.parametrize('name, damage', [(RESULT, 'truncate'), (LOGITS, 'truncate'), (MODEL, 'garbage')])
def test_damaged_run_files_are_refused_moved_aside_and_retrained(tmp_path, digits, reference, capsys, name, damage):
    runs = [RunSpec(CFG)]
    d = run_dir(tmp_path, CFG)
    run_one(CFG, tmp_path, digits)
    b = (d / name).read_bytes()
    (d / name).write_bytes(b[: len(b) // 3] if damage == 'truncate' else os.urandom(len(b) + 7))
    a = aggregate('cpu-tiny', tmp_path, methods=['pls'], seeds=[0], epochs=E)  # CFG is this preset's run
    assert a['runs'] == 0 and len(a['corrupt']) == 1 and name in a['corrupt'][0], a['corrupt']  # skipped, and said so
    assert collect(tmp_path) == [] and 'skipped a damaged run' in capsys.readouterr().out
    s = run_sweep(runs, RunOptions(str(tmp_path), engine='direct'))
    out = capsys.readouterr().out
    assert s['counts']['done'] == 1 and f"{name}" in out and 'moved' in out, out
    stem, suffix = name.rsplit('.', 1)
    assert len(list(d.glob(f'{stem}.corrupt-*.{suffix}'))) == 1
    assert_identical(d, reference)


def test_garbage_checkpoint_is_moved_aside_and_the_run_starts_over(tmp_path, digits, reference, capsys):
    d = stopped_at(tmp_path, digits, 2)
    (d / CKPT).write_bytes(b'PK\x03\x04 this is not a checkpoint')
    r = run_one(CFG, tmp_path, digits)
    assert r['status'] == 'done' and f"checkpoint {d / CKPT} is unreadable" in capsys.readouterr().out
    assert len(list(d.glob('checkpoint.corrupt-*.pt'))) == 1
    assert_identical(d, reference)


class Evil:
    "A pickle that would run a command when loaded."

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}',))


def test_planted_pickles_never_run(tmp_path, digits, capsys):
    marker = tmp_path / 'pwned'
    d = stopped_at(tmp_path, digits, 2)
    torch.save({'config': {}, 'x': Evil(marker)}, d / CKPT)
    run_one(CFG, tmp_path, digits)
    assert 'is unreadable (Weights only load failed' in capsys.readouterr().out and not marker.exists()
    torch.save({'w': Evil(marker)}, d / MODEL)
    r = read_result(d / RESULT)
    r['files'][MODEL] = file_record(d / MODEL)
    save_json(d / RESULT, r)
    with pytest.raises(ValueError, match=r'model.pt was refused: not a plain weights file'):
        load_run_model(d)
    assert not marker.exists()


# 10: the manifest ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    'text',
    [
        '{"out": "/x", "runs": [{"config": {"meth',
        'garbage \x00\x01',
        '{"out": "/x", "runs": [{"config": {"shell": "rm"}}]}',
    ],
)
def test_damaged_manifest_is_refused_in_one_line(tmp_path, text):
    m = tmp_path / 'manifest.json'
    m.write_text(text)
    p = subprocess.run([*PLS_SWEEP, 'run-index', str(m), '0'], env=ENV, capture_output=True, text=True, timeout=120)
    line = one_error_line(p.stderr)
    assert p.returncode == 2 and line.startswith('pls-sweep: error: ') and str(m) in line, line


# 12: a kernel that dies ---------------------------------------------------------------------------------------------


def test_dead_papermill_kernel_is_a_failure_and_the_next_sweep_resumes(tmp_path, digits):
    out = tmp_path / 'res'
    cmd = [
        *PLS_SWEEP,
        'run',
        'cpu-tiny',
        '--methods',
        'pls',
        '--seeds',
        '0',
        '--epochs',
        '60',
        '--out',
        str(out),
        '--threads',
        '1',
        '--no-progress',
        '--eager-cpu',
    ]
    p = subprocess.Popen(cmd, env=ENV, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    cfg = preset_runs('cpu-tiny', methods=['pls'], seeds=[0], epochs=60)[0].config
    d, t0 = run_dir(out, cfg), time.time()
    while not (d / CKPT).exists():
        assert p.poll() is None and time.time() - t0 < 180, p.communicate()
        time.sleep(0.05)
    kernels = [
        k
        for t in Path(f'/proc/{p.pid}/task').glob('*/children')
        for k in t.read_text().split()
        if 'ipykernel' in Path(f'/proc/{k}/cmdline').read_text()
    ]
    assert len(kernels) == 1, kernels
    os.kill(int(kernels[0]), signal.SIGKILL)
    stdout, _ = p.communicate(timeout=180)
    assert p.returncode == 1 and 'FAILED digits_small-cnn_pls_s0' in stdout, stdout
    f = json.loads((d / 'failed.json').read_text())
    assert 'DeadKernelError' in f['error'] and (d / 'failed.ipynb').exists() and (d / CKPT).exists()
    # resumed, and a reference run, in worker processes: like the kernels, they pin the CPU's instruction sets
    # (CPU_REPRO_ENV), which this test process cannot do for itself once torch is loaded
    s = run_sweep([RunSpec(cfg)], RunOptions(str(out), threads=1, engine='process'))
    assert s['counts']['resumed'] == 1
    assert not (d / 'failed.json').exists()
    run_sweep([RunSpec(cfg)], RunOptions(str(tmp_path / 'ref'), threads=1, engine='process'))
    ref = read_result(run_dir(tmp_path / 'ref', cfg) / RESULT)
    assert [h['error'] for h in read_result(d / RESULT)['history']] == [h['error'] for h in ref['history']]


# 13: a time-limit signal after the work is done ---------------------------------------------------------------------


def test_a_stop_request_after_the_entry_finished_ends_nothing(tmp_path):
    """SLURM's USR1 can come while `run-index` exits after finishing its entry. Seen once in CI: the process died of it
    (status 138), the batch script requeued the task, and the requeued task found the run done and skipped it."""
    runs = preset_runs('cpu-tiny', methods=['erm'], seeds=[0], epochs=1)
    m = write_manifest(runs, RunOptions(out=str(tmp_path / 'out'), engine='direct'))
    code = (
        "import atexit, os, signal\n"
        "atexit.register(lambda: (os.kill(os.getpid(), signal.SIGUSR1), print('still here after a late USR1')))\n"
        "from pls_edu.sweepcli import main\n"
        f"main(['run-index', {str(m)!r}, '0'])"
    )
    p = subprocess.run([sys.executable, '-c', code], env=ENV, capture_output=True, text=True, timeout=300)
    out = p.stdout.rstrip().splitlines()
    assert p.returncode == 0 and out[-2:] == ['manifest entry 0: done', 'still here after a late USR1'], (
        p.returncode,
        out,
        p.stderr[-500:],
    )


# 14: a time-limit signal before the run starts ------------------------------------------------------------------------


def test_a_stop_request_before_training_starts_is_kept(tmp_path):
    """SLURM may send USR1 up to a minute before the `--signal` time, while `run-index` still prepares the run. Seen once
    in CI: the request was lost (cleared when the run entered its own signal block), the task ran on uninterrupted and
    was never requeued. Now the run stops after its first step with a checkpoint, exits 3 (requeue), and the next
    `run-index` resumes it to the digits of an uninterrupted run."""
    runs = preset_runs('cpu-tiny', methods=['pls'], seeds=[0], epochs=2)
    m = write_manifest(runs, RunOptions(out=str(tmp_path / 'out'), engine='direct'))
    hook = (
        "import os, signal\n"
        "import pls_edu.runs as r\n"
        "check = r.check_writable\n"
        "r.check_writable = lambda p: (os.kill(os.getpid(), signal.SIGUSR1), check(p))[1]\n"
    )
    first = f"{hook}from pls_edu.sweepcli import main\nmain(['run-index', {str(m)!r}, '0'])"
    p = subprocess.run([sys.executable, '-c', first], env=ENV, capture_output=True, text=True, timeout=300)
    d = run_dir(tmp_path / 'out', runs[0].config)
    assert p.returncode == 3 and p.stdout.splitlines()[-1].startswith('manifest entry 0: interrupted'), (
        p.returncode,
        p.stdout[-500:],
        p.stderr[-500:],
    )
    assert (d / CKPT).exists() and not (d / RESULT).exists()
    assert 'stopped on request after step 1 ' in (d / LOG).read_text()
    again = subprocess.run([*PLS_SWEEP, 'run-index', str(m), '0'], env=ENV, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and again.stdout.splitlines()[-1] == 'manifest entry 0: resumed', again.stdout[-500:]
    ref = run_one(runs[0], RunOptions(out=str(tmp_path / 'ref'), threads=1))['result']
    got = read_result(d / RESULT)
    assert [h['error'] for h in got['history']] == [h['error'] for h in ref['history']]
    assert np.array_equal(
        np.load(d / LOGITS)['test_logits'], np.load(run_dir(tmp_path / 'ref', runs[0].config) / LOGITS)['test_logits']
    )
