"""Running a notebook as the course does (development only): a fresh kernel with pinned threads and instruction sets,
the cells that tests skip left out, a failing cell named with its line; and the numeric fingerprint of a machine."""

from __future__ import annotations
import configparser, os, re, subprocess, sys, time
from pathlib import Path

import nbformat

from catalog import NBS, ROOT

# ## Executing a notebook

PREAMBLE = """%matplotlib inline
%config InlineBackend.figure_formats = ['png']
import matplotlib as _mpl; _mpl.rcParams.update({'figure.dpi': 80, 'savefig.dpi': 80})"""


def skip_flags():
    "The flags whose cells are not executed (`tst_flags` of settings.ini)."
    c = configparser.ConfigParser(delimiters=['='])
    c.read(ROOT / 'settings.ini')
    return set(c['DEFAULT'].get('tst_flags', '').split())


def skipped(cell, flags=None):
    "Whether a code cell is left unexecuted (flagged, `eval: false`, or nbdev's export call)."
    if cell.cell_type != 'code':
        return True
    if 'nbdev_export' + '()' in cell.source:
        return True
    directives = set(re.findall(r'^#\|\s*([\w-]+)\s*$', cell.source, re.M))
    if directives & (skip_flags() if flags is None else flags):
        return True
    return bool(re.search(r'^#\|\s*eval:\s*false', cell.source, re.M))


def kernel_env():
    "The environment of every kernel: one thread, pinned instruction sets, no progress bars."
    from pls_edu.train import CPU_REPRO_ENV

    return {
        **os.environ,
        **CPU_REPRO_ENV,
        'OMP_NUM_THREADS': '1',
        'MKL_NUM_THREADS': '1',
        'TQDM_DISABLE': '1',
        'PYTHONHASHSEED': '0',
    }


class CellFailed(RuntimeError):
    "A cell raised: the message names the notebook, the cell, the failing line and the error."


def _failing_line(cell, traceback_text):
    "The line of `cell` that the traceback points at (its frame in the cell that ran), or None."
    count = cell.get('execution_count')
    plain = re.sub(r'\x1b\[[0-9;]*m', '', traceback_text)  # tracebacks come coloured
    hits = re.findall(rf'Cell In\[{count}\], line (\d+)', plain) if count else []
    if not hits:
        return None
    n = int(hits[0])
    lines = cell.source.splitlines()
    return (n, lines[n - 1].strip()) if 0 < n <= len(lines) else None


def execute_notebook(path, timeout=1200):
    "Run notebook `path` in a fresh kernel; returns the notebook with its outputs and the seconds it took."
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError
    from pls_edu.runnotebook import ipc_kernel_manager

    nb = nbformat.read(path, 4)
    flags = skip_flags()
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name='python3',
        kernel_manager_class=ipc_kernel_manager(),
        resources={'metadata': {'path': str(Path(path).parent)}},
        store_widget_state=False,
    )
    t0 = time.perf_counter()
    with client.setup_kernel(env=kernel_env()):
        pre = nbformat.v4.new_code_cell(PREAMBLE)
        nb.cells.insert(0, pre)
        client.execute_cell(pre, 0)
        nb.cells.pop(0)
        for i, cell in enumerate(nb.cells):
            if cell.cell_type != 'code':
                continue
            if skipped(cell, flags):
                cell.outputs = []
                continue
            try:
                client.execute_cell(cell, i)
            except CellExecutionError as e:
                where = _failing_line(cell, str(e))
                line = f", line {where[0]}: {where[1]}" if where else ''
                why = re.sub(r'\x1b\[[0-9;]*m', '', f"{e.ename}: {e.evalue}").strip()
                raise CellFailed(
                    f"{Path(path).relative_to(NBS)} cell {i} (id {cell.get('id')}){line} -> {why[:300]}"
                ) from None
    return nb, time.perf_counter() - t0


# ## The fingerprint, and outputs that must never be committed

_FP = """
import hashlib, torch
from pls_edu.data import load_digits_data
from pls_edu.train import TrainConfig, train
t = train(TrainConfig(method='pls', epochs=2), load_digits_data(), progress=False)
print(torch.__version__, hashlib.sha256(t.logits.numpy().tobytes()).hexdigest()[:16])
"""


def fingerprint(prefix=(), env=None):
    "torch version and a hash of two epochs of training, in the kernels' environment (or `env`), under `prefix`."
    p = subprocess.run(
        [*prefix, sys.executable, '-c', _FP],
        env=env or kernel_env(),
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=1800,
    )
    if p.returncode:
        raise RuntimeError(f"the fingerprint run failed: {p.stderr[-500:]}")
    return ' '.join(p.stdout.split()[-2:])
