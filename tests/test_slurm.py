"A CPU preset as a job array on a real single-node SLURM cluster (Debian's slurm-wlm and munge), aggregated from the shared folder."
import os, shutil, subprocess, time
from pathlib import Path

import pytest

HERE = Path(__file__).parent
NEEDED = ('munged', 'slurmctld', 'slurmd', 'sbatch', 'squeue', 'sinfo')


def _free_port():
    import socket
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]


@pytest.fixture(scope='module')
def slurm(tmp_path_factory):
    missing = [x for x in NEEDED if not shutil.which(x)]
    if missing:
        pytest.skip(f"SLURM test skipped: {missing} not installed (Debian packages slurm-wlm and munge; .ci/run installs them when it can)")
    if os.geteuid() != 0: pytest.skip('SLURM test skipped: starting slurmd and munged here needs root')
    d = tmp_path_factory.mktemp('slurm')
    env = {**os.environ, 'SLURMCTLD_PORT': str(_free_port()), 'SLURMD_PORT': str(_free_port())}
    p = subprocess.run([str(HERE/'slurm'/'start_cluster.sh'), str(d)], capture_output=True, text=True, timeout=180, env=env)
    if p.returncode != 0:
        subprocess.run([str(HERE/'slurm'/'stop_cluster.sh'), str(d)], capture_output=True)
        pytest.skip(f"SLURM test skipped: the local cluster did not start: {p.stderr[-600:]}")
    old = os.environ.get('SLURM_CONF')
    os.environ['SLURM_CONF'] = p.stdout.strip().splitlines()[-1]
    yield d
    subprocess.run(['scancel', '--user', 'root'], capture_output=True)
    subprocess.run([str(HERE/'slurm'/'stop_cluster.sh'), str(d)], capture_output=True)
    if old is None: os.environ.pop('SLURM_CONF', None)
    else: os.environ['SLURM_CONF'] = old


def test_cpu_preset_as_a_job_array(slurm, tmp_path, capsys):
    from pls_edu.sweep import main, aggregate, preset_runs
    from pls_edu.runs import run_dir
    shared = tmp_path/'shared'
    main(['slurm', 'cpu-tiny', '--out', str(shared), '--cpus', '1', '--time', '00:20:00', '--threads', '1', '--submit'])
    job = capsys.readouterr().out.strip().splitlines()[-1]
    assert job.isdigit(), job
    runs = preset_runs('cpu-tiny')
    seen_partial, t0 = False, time.time()
    while True:
        done = sum((run_dir(shared, r['config'])/'result.json').exists() for r in runs)
        a = aggregate('cpu-tiny', shared)                       # aggregation works on the shared folder mid-array
        assert a['runs'] == done or a['runs'] == done + 1
        if 0 < a['runs'] < 4: seen_partial = True
        q = subprocess.run(['squeue', '-h', '-j', job], capture_output=True, text=True).stdout.strip()
        if done == 4 and not q: break
        assert time.time() - t0 < 900, f"the array did not finish in 15 minutes; squeue: {q}; logs: {list((shared/'slurm').glob('*'))}"
        time.sleep(2)
    a = aggregate('cpu-tiny', shared)
    assert a['runs'] == 4 and 'missing' not in a['markdown']
    logs = sorted((shared/'slurm').glob(f'{job}_*.out'))
    assert len(logs) == 4 and all('done' in l.read_text() for l in logs)
    assert all((run_dir(shared, r['config'])/'run.ipynb').exists() for r in runs)
    # a second submission finds everything finished: every task skips
    main(['slurm', 'cpu-tiny', '--out', str(shared), '--cpus', '1', '--time', '00:05:00', '--submit'])
    job2 = capsys.readouterr().out.strip().splitlines()[-1]
    t0 = time.time()
    while subprocess.run(['squeue', '-h', '-j', job2], capture_output=True, text=True).stdout.strip():
        assert time.time() - t0 < 300; time.sleep(1)
    logs2 = sorted((shared/'slurm').glob(f'{job2}_*.out'))
    assert len(logs2) == 4 and all('skipped' in l.read_text() for l in logs2)
    print(f"SLURM job {job}: 4 array tasks finished; seen a partial table while running: {seen_partial}")
