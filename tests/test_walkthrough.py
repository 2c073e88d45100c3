"The README's path from a fresh clone to Table 1, command by command, on CPU fixtures written in each dataset's own format."

import contextlib, io, json, re, shlex, subprocess, sys
from pathlib import Path

import pytest

from fixtures import fake_result, make_cifar, make_mnist, make_svhn, make_tiny_imagenet

ROOT = Path(__file__).resolve().parent.parent


def walkthrough():
    "The commands of the README's walkthrough, one per line, with their step numbers."
    text = (ROOT / 'README.md').read_text().split("## From a fresh clone to the paper's Table 1", 1)[1]
    block = re.search(r'```bash\n(.*?)```', text, re.S).group(1)
    return [
        (int(re.search(r'# (\d+)\.', line).group(1)), line.split('#')[0].strip())
        for line in block.splitlines()
        if line.strip()
    ]


def sweep(argv):
    "Run pls-sweep in this process; return its exit status and output."
    from pls_edu.sweepcli import main

    with contextlib.redirect_stdout(io.StringIO()) as o, contextlib.redirect_stderr(io.StringIO()) as e:
        try:
            main(argv)
            code = 0
        except SystemExit as x:
            code = x.code if isinstance(x.code, int) else 2
    return code, o.getvalue() + e.getvalue()


@pytest.fixture(scope='module')
def paths(tmp_path_factory):
    d = tmp_path_factory.mktemp('walk')
    return {
        '/shared/data': d / 'data',
        '/shared/results/table1': d / 'results',
        'gpu_timings.json': d / 'gpu_timings.json',
        'report.ipynb': d / 'report.ipynb',
    }


def args_of(line, paths):
    "The command's arguments after the program, with the README's paths replaced by the test's."
    words = shlex.split(line)
    return [str(paths.get(w, w)) for w in words]


def test_the_walkthrough_has_every_step():
    steps = walkthrough()
    assert [n for n, _ in steps] == list(range(1, 9))
    progs = [c.split()[0] for _, c in steps]
    assert progs[1:] == [
        '.venv/bin/pls-sweep',
        'PYTHONPATH=.',
        '.venv/bin/pls-sweep',
        '.venv/bin/pls-sweep',
        '.venv/bin/pls-sweep',
        '.venv/bin/pls-sweep',
        '.venv/bin/papermill',
    ]
    assert (
        steps[0][1]
        == (ROOT / 'README.md').read_text().split('```bash\n')[1].split('&& .venv/bin/pls-compare')[0].strip()
    )  # the README's own install
    assert (
        'python3 -m pls_edu.gpucheck --out gpu_check.json' in steps[2][1]
    )  # what tests/test_bench.py runs, dry, on the CPU


def test_walkthrough_on_fixtures(paths):
    steps = dict(walkthrough())
    # 2. check: first with no data at all, then with the six datasets placed in their native formats
    check = args_of(steps[2], paths)[1:]
    code, out = sweep(check + ['--devices', 'cpu'])
    assert code == 1 and 'pre-flight check FAILED' in out
    assert all(f'dataset {n}:' in out for n in ('mnist', 'fashion', 'svhn', 'cifar10', 'cifar100', 'tiny-imagenet')), (
        out
    )
    data = paths['/shared/data']
    make_mnist(data)
    make_mnist(data, 'FashionMNIST')
    make_svhn(data)
    make_cifar(data)
    make_cifar(data, hundred=True)
    make_tiny_imagenet(data)
    code, out = sweep(check + ['--devices', 'cpu'])
    assert code == 0 and 'data, devices and results folder are ready' in out, out
    import torch

    if not torch.cuda.is_available():  # as written, on a machine without a GPU: the device is missing
        code, out = sweep(check)
        assert code == 1 and 'CUDA is not available' in out and 'dataset' not in out
    # 3. the GPU check writes timings; here, the same format with made-up numbers
    paths['gpu_timings.json'].write_text(
        json.dumps(
            {
                's_per_image': {'preact-resnet18': {'1x28x28': 6e-5, '3x32x32': 8e-5, '3x64x64': 3e-4}},
                'pls_over_erm': 1.02,
                'device': 'test',
            }
        )
    )
    # 4. plan
    code, out = sweep(args_of(steps[4], paths)[1:])
    assert code == 0 and 'total: 270 runs' in out and 'on 8 GPU(s)' in out and str(paths['gpu_timings.json']) in out, (
        out
    )
    # 5. slurm, without --submit here (tests/test_slurm.py submits to a real local cluster)
    code, out = sweep([a for a in args_of(steps[5], paths)[1:] if a != '--submit'])
    assert code == 0, out
    sb = (paths['/shared/results/table1'] / 'sweep.sbatch').read_text()
    from pls_edu.slurm import task_time
    from pls_edu.presets import preset_runs
    from pls_edu.preflight import load_timings

    for want in (
        '--array=0-269%16',
        '--gres=gpu:1',
        '--partition=gpu',
        '--device cuda',
        '--signal=B:USR1@120',
        '--requeue',
        f"--time={task_time(preset_runs('table1'), 'gpu', load_timings(paths['gpu_timings.json']))}",
    ):
        assert want in sb, want
    # 6. status, 7. aggregate
    code, out = sweep(args_of(steps[6], paths)[1:])
    assert code == 0 and out.startswith('finished 0, running 0, interrupted 0, failed 0, started 0, missing 270'), out
    code, out = sweep(args_of(steps[7], paths)[1:])
    assert (
        code == 0
        and out.startswith('0 of 270 runs finished')
        and (paths['/shared/results/table1'] / 'tables' / 'table1.md').exists()
    )


def test_walkthrough_report_notebook(paths, tmp_path):
    "8. The report notebook, through papermill, on a results folder holding one finished run of the preset."
    from pls_edu.presets import preset_runs

    res = tmp_path / 'results'
    cfg = preset_runs('table1', datasets=['cifar10'], methods=['pls'], seeds=[0])[0].config
    fake_result(res, cfg, 3.5)  # a finished run, as aggregation reads it
    line = dict(walkthrough())[8]
    argv = args_of(line.replace('/shared/results/table1', str(res)), {'report.ipynb': tmp_path / 'report.ipynb'})
    p = subprocess.run(
        [sys.executable, '-m', 'papermill', *argv[1:]], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert p.returncode == 0, p.stderr[-2000:]
    nb = json.loads((tmp_path / 'report.ipynb').read_text())
    shown = ' '.join(
        ''.join(o.get('data', {}).get('text/markdown', '')) for c in nb['cells'] for o in c.get('outputs', [])
    )
    assert (
        '### table1: Table 1' in shown
        and '1 of 270 runs finished' in shown
        and '| 3.50 (1) | 3.63 ± 0.10 | -0.13 |' in shown  # nothing bold: one run ranks nothing
    )
