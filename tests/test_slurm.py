"A CPU preset as a job array on a real single-node SLURM cluster (Debian's slurm-wlm and munge), aggregated from the shared folder."

import os, shutil, subprocess, time
from pathlib import Path

import pytest

from fixtures import PLS_SWEEP, PLS_TRAIN

HERE = Path(__file__).parent
NEEDED = ('munged', 'slurmctld', 'slurmd', 'sbatch', 'squeue', 'sinfo')


def _free_port():
    import socket

    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.fixture(scope='module')
def slurm(tmp_path_factory):
    missing = [x for x in NEEDED if not shutil.which(x)]
    if missing:
        pytest.skip(
            f"SLURM test skipped: {missing} not installed (Debian packages slurm-wlm and munge; .ci/run installs them when it can)"
        )
    if os.geteuid() != 0:
        pytest.skip('SLURM test skipped: starting slurmd and munged here needs root')
    d = tmp_path_factory.mktemp('slurm')
    env = {**os.environ, 'SLURMCTLD_PORT': str(_free_port()), 'SLURMD_PORT': str(_free_port())}
    p = subprocess.run(
        [str(HERE / 'slurm' / 'start_cluster.sh'), str(d)], capture_output=True, text=True, timeout=180, env=env
    )
    if p.returncode != 0:
        subprocess.run([str(HERE / 'slurm' / 'stop_cluster.sh'), str(d)], capture_output=True)
        pytest.skip(f"SLURM test skipped: the local cluster did not start: {p.stderr[-600:]}")
    old = os.environ.get('SLURM_CONF')
    os.environ['SLURM_CONF'] = p.stdout.strip().splitlines()[-1]
    yield d
    subprocess.run(['scancel', '--user', 'root'], capture_output=True)
    subprocess.run([str(HERE / 'slurm' / 'stop_cluster.sh'), str(d)], capture_output=True)
    if old is None:
        os.environ.pop('SLURM_CONF', None)
    else:
        os.environ['SLURM_CONF'] = old


def test_cpu_preset_as_a_job_array(slurm, tmp_path, capsys):
    from pls_edu.sweepcli import main
    from pls_edu.presets import preset_runs
    from pls_edu.results import run_dir
    from pls_edu.tables import aggregate

    shared = tmp_path / 'shared'
    main(['slurm', 'cpu-tiny', '--out', str(shared), '--cpus', '1', '--time', '00:20:00', '--threads', '1', '--submit'])
    job = capsys.readouterr().out.strip().splitlines()[-1]
    assert job.isdigit(), job
    runs = preset_runs('cpu-tiny')
    seen_partial, t0 = False, time.time()
    while True:
        done = sum((run_dir(shared, r.config) / 'result.json').exists() for r in runs)
        a = aggregate('cpu-tiny', shared)  # aggregation works on the shared folder mid-array
        assert a['runs'] == done or a['runs'] == done + 1
        if 0 < a['runs'] < 4:
            seen_partial = True
        q = subprocess.run(['squeue', '-h', '-j', job], capture_output=True, text=True).stdout.strip()
        if done == 4 and not q:
            break
        assert time.time() - t0 < 900, (
            f"the array did not finish in 15 minutes; squeue: {q}; logs: {list((shared / 'slurm').glob('*'))}"
        )
        time.sleep(2)
    a = aggregate('cpu-tiny', shared)
    assert a['runs'] == 4 and 'missing' not in a['markdown']
    logs = sorted((shared / 'slurm').glob(f'{job}_*.out'))
    assert len(logs) == 4 and all('done' in log.read_text() for log in logs)
    assert all((run_dir(shared, r.config) / 'run.ipynb').exists() for r in runs)
    # a second submission finds everything finished: every task skips
    main(['slurm', 'cpu-tiny', '--out', str(shared), '--cpus', '1', '--time', '00:05:00', '--submit'])
    job2 = capsys.readouterr().out.strip().splitlines()[-1]
    t0 = time.time()
    while subprocess.run(['squeue', '-h', '-j', job2], capture_output=True, text=True).stdout.strip():
        assert time.time() - t0 < 300
        time.sleep(1)
    logs2 = sorted((shared / 'slurm').glob(f'{job2}_*.out'))
    assert len(logs2) == 4 and all('skipped' in log.read_text() for log in logs2)
    print(f"SLURM job {job}: 4 array tasks finished; seen a partial table while running: {seen_partial}")


def _wait_for(job, shared, timeout, on_pending=None, until=None):
    """Poll squeue until job `job` has left the queue (and `until()` holds, if given: a requeued job can stay out of
    the listing longer than ten polls on a busy machine); `on_pending(task, reason)` sees every pending task."""
    t0, empty = time.time(), 0
    while True:
        p = subprocess.run(['squeue', '-h', '-j', job, '-o', '%i %T %r'], capture_output=True, text=True)
        gone = p.returncode != 0 and 'Invalid job id' in p.stderr  # purged from the controller
        q = [line.split() for line in p.stdout.split('\n') if line.strip()] if p.returncode == 0 or gone else None
        # a busy controller can fail a query, and a job between a requeue and its pending state is missing from the
        # listing for a few seconds: gone means gone for ten polls in a row
        empty = empty + 1 if q == [] else 0
        if empty >= 10 and (until is None or until()):
            return
        for task, state, reason in q or []:
            if state == 'PENDING' and on_pending:
                on_pending(task, reason)
        assert time.time() - t0 < timeout, (
            f"job {job} still queued after {timeout} s: {q}; logs: {[p.read_text()[-500:] for p in (shared / 'slurm').glob('*.out')]}"
        )
        time.sleep(1)


def test_time_limit_signal_checkpoint_requeue_and_exact_resume(slurm, tmp_path, capsys):
    "A task whose --time runs out mid-run is signalled, checkpoints where it is (mid-epoch or between epochs), requeues itself, and finishes exactly as if never stopped."
    import numpy as np
    from pls_edu.sweepcli import main
    from pls_edu.presets import preset_runs
    from pls_edu.results import read_result, run_dir

    # SLURM sends USR1 at most 30 s into each attempt (up to a minute before the `--signal` time, so possibly at once):
    # 600 epochs (about 80 s on one core here) are long enough that no attempt finishes before its signal
    shared, E = tmp_path / 'shared', 600
    ref = subprocess.Popen(
        [
            *PLS_TRAIN,
            '--method',
            'pls',
            '--epochs',
            str(E),
            '--holdout',
            '0.2',
            '--out',
            str(tmp_path / 'ref'),
            '--no-progress',
        ],
        env={**os.environ, 'OMP_NUM_THREADS': '1'},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # the uninterrupted run, on the other core
    main(
        [
            'slurm',
            'cpu-tiny',
            '--methods',
            'pls',
            '--seeds',
            '0',
            '--epochs',
            str(E),
            '--out',
            str(shared),
            '--cpus',
            '1',
            '--threads',
            '1',
            '--engine',
            'direct',
            '--time',
            '0-00:01:00',
            '--signal-s',
            '30',
            '--submit',
        ]
    )
    job = capsys.readouterr().out.strip().splitlines()[-1]
    requeued = set()

    def start_now(task, reason):  # SLURM holds a requeued job for about two minutes (BeginTime); the test need not wait
        if reason == 'BeginTime':
            requeued.add(task)
            # but not at once: slurmd compares credentials by the second, and a relaunch in the same second as the end
            # of the last attempt finds its credential revoked and SLURM kills the job (seen once on a busy machine)
            time.sleep(2)
            subprocess.run(['scontrol', 'update', f'JobId={task}', 'StartTime=now'], capture_output=True)

    cfg = preset_runs('cpu-tiny', methods=['pls'], seeds=[0], epochs=E)[0].config
    _wait_for(job, shared, 900, start_now, until=lambda: (run_dir(shared, cfg) / 'result.json').exists())
    log = (shared / 'slurm' / f'{job}_0.out').read_text()
    entries = [line for line in log.splitlines() if line.startswith('manifest entry 0: ')]
    # a requeue that lands after the run finished only finds it done: 'skipped'
    finished = entries[-1] in ('manifest entry 0: resumed', 'manifest entry 0: skipped')
    assert 'interrupted' in log and 'requeueing job' in log and 'manifest entry 0: resumed' in entries and finished, log
    assert requeued, 'the task was never requeued'
    d = run_dir(shared, cfg)
    got = read_result(d / 'result.json')
    assert (
        len(got['attempts']) >= 2 and ': interrupted: stopped on request after ' in (d / 'run.log').read_text()
    )  # after a step, or between epochs
    assert ref.wait(timeout=300) == 0, ref.stderr.read()
    want = read_result(run_dir(tmp_path / 'ref', cfg) / 'result.json')
    keys = ('error', 'nll', 'ece', 'train_loss', 'lr')
    assert [{k: h[k] for k in keys} for h in got['history']] == [{k: h[k] for k in keys} for h in want['history']]
    a, b = np.load(d / 'logits.npz'), np.load(run_dir(tmp_path / 'ref', cfg) / 'logits.npz')
    assert np.array_equal(a['test_logits'], b['test_logits']) and np.array_equal(
        a['holdout_logits'], b['holdout_logits']
    )
    print(
        f"SLURM job {job}: {len(got['attempts'])} attempts, requeued {len(requeued)} time(s), identical to the uninterrupted run"
    )


def test_job_array_and_local_sweep_on_one_folder_train_each_run_once(slurm, tmp_path, capsys):
    from pls_edu.sweepcli import main
    from pls_edu.presets import preset_runs
    from pls_edu.results import read_result, run_dir

    shared = tmp_path / 'shared'
    main(
        [
            'slurm',
            'cpu-tiny',
            '--epochs',
            '15',
            '--out',
            str(shared),
            '--cpus',
            '1',
            '--threads',
            '1',
            '--engine',
            'direct',
            '--time',
            '00:10:00',
            '--submit',
        ]
    )
    job = capsys.readouterr().out.strip().splitlines()[-1]
    local = subprocess.run(
        [
            *PLS_SWEEP,
            'run',
            'cpu-tiny',
            '--epochs',
            '15',
            '--out',
            str(shared),
            '--engine',
            'direct',
            '--threads',
            '1',
            '--no-progress',
        ],
        env={**os.environ, 'OMP_NUM_THREADS': '1'},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert local.returncode == 0, local.stdout + local.stderr
    _wait_for(job, shared, 300)
    runs = preset_runs('cpu-tiny', epochs=15)
    for r in runs:
        d = run_dir(shared, r.config)
        starts = [
            line for line in (d / 'run.log').read_text().splitlines() if ': start ' in line or ': resume ' in line
        ]
        assert len(read_result(d / 'result.json')['attempts']) == 1 and len(starts) == 1, (d.name, starts)
    by_slurm = sum(
        'manifest entry' in p.read_text() and ': done' in p.read_text() for p in (shared / 'slurm').glob(f'{job}_*.out')
    )
    by_local = int(local.stdout.split('sweep summary: done ')[1].split(',')[0])
    assert by_slurm + by_local == len(runs), (by_slurm, local.stdout)
    print(f"array {job} trained {by_slurm} runs, the local sweep {by_local}; each exactly once")
