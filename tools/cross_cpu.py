"""Which CPUs give the course's numbers bit for bit: the numeric fingerprint (two epochs of PLS on `digits`, hashed) on
this CPU and on emulated Intel and AMD CPUs (qemu-user), with `CPU_REPRO_ENV` and with each of its switches left out.

    python tools/cross_cpu.py                 # every CPU model and environment; writes nbs/measured/cross_cpu.json
    python tools/cross_cpu.py --quick         # this CPU and one emulated CPU of the other vendor, CPU_REPRO_ENV only

Needs `qemu-x86_64` (Debian: `apt-get install qemu-user`) for the emulated CPUs; an emulated run takes about a minute.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import catalog  # noqa: E402
import nbrun  # noqa: E402

from pls_edu.files import save_json  # noqa: E402
from pls_edu.train import CPU_REPRO_ENV  # noqa: E402

OUT = catalog.NBS / 'measured' / 'cross_cpu.json'
# qemu CPU models: vendor, and the widest vector instructions qemu 7.2 can run for them (its TCG has AVX2, not AVX-512)
CPUS = {
    'Haswell-v4': ('Intel', 'Haswell, AVX2'),
    'Skylake-Server-v4': ('Intel', 'Skylake-Server, AVX-512 announced, AVX2 run'),
    'EPYC-Rome-v2': ('AMD', 'EPYC Rome (Zen 2), AVX2'),
    'EPYC-Milan-v1': ('AMD', 'EPYC Milan (Zen 3), AVX2'),
}
ENVS = {'CPU_REPRO_ENV': CPU_REPRO_ENV, 'without MKL_CBWR': {k: v for k, v in CPU_REPRO_ENV.items() if k != 'MKL_CBWR'}}


def native_cpu():
    "This CPU's vendor and model name, from /proc/cpuinfo."
    info = Path('/proc/cpuinfo').read_text() if Path('/proc/cpuinfo').exists() else ''

    def field(k):
        return next((line.split(':', 1)[1].strip() for line in info.splitlines() if line.startswith(k)), '?')

    vendor = {'AuthenticAMD': 'AMD', 'GenuineIntel': 'Intel'}.get(field('vendor_id'), field('vendor_id'))
    flags = field('flags').split()
    width = 'AVX-512' if 'avx512f' in flags else 'AVX2' if 'avx2' in flags else 'no AVX2'
    return vendor, f"{field('model name')}, {width}"


def env_for(name):
    "The kernels' environment with `CPU_REPRO_ENV` replaced by the variant `name`."
    env = {k: v for k, v in nbrun.kernel_env().items() if k not in CPU_REPRO_ENV}
    return {**env, **ENVS[name]}


def measure(model, env_name):
    "One fingerprint: on this CPU (`model` None) or under qemu-user's CPU `model`."
    prefix = () if model is None else ('qemu-x86_64', '-cpu', model)
    t0 = time.perf_counter()
    fp = nbrun.fingerprint(prefix, env_for(env_name)).split()[-1]
    return {'fingerprint': fp, 'seconds': round(time.perf_counter() - t0, 1)}


_COST = """
import time, torch
from pls_edu.data import load_digits_data
from pls_edu.train import TrainConfig, train
d = load_digits_data()
t0 = time.perf_counter()
train(TrainConfig(method='pls', epochs=10), d, progress=False)
print(time.perf_counter() - t0)
"""


def cost(rounds=3):
    "Seconds of 10 epochs of PLS on `digits` with `CPU_REPRO_ENV` and with the CPU's native code paths, interleaved."
    import statistics
    import subprocess

    native = {k: v for k, v in nbrun.kernel_env().items() if k not in CPU_REPRO_ENV}
    out = {'CPU_REPRO_ENV': [], 'native': []}
    for _ in range(rounds):
        for name, env in (('CPU_REPRO_ENV', env_for('CPU_REPRO_ENV')), ('native', native)):
            p = subprocess.run([sys.executable, '-c', _COST], env=env, capture_output=True, text=True, check=True)
            out[name].append(float(p.stdout.split()[-1]))
    med = {k: statistics.median(v) for k, v in out.items()}
    return {'seconds': out, 'ratio': med['CPU_REPRO_ENV'] / med['native'], 'rounds': rounds}


def other_vendor(vendor):
    "An emulated CPU model of the other vendor than `vendor`."
    return 'Skylake-Server-v4' if vendor == 'AMD' else 'EPYC-Milan-v1'


def run(quick=False, log=print, with_cost=True):
    "Measure the fingerprints (and the cost); returns the record written to `OUT` (not written with `quick`)."
    vendor, name = native_cpu()
    if shutil.which('qemu-x86_64') is None:
        raise SystemExit('cross_cpu: qemu-x86_64 is not installed (Debian: apt-get install qemu-user)')
    models = [other_vendor(vendor)] if quick else list(CPUS)
    envs = ['CPU_REPRO_ENV'] if quick else list(ENVS)
    rows = []
    for env_name in envs:
        for model in [None] + models:
            r = measure(model, env_name)
            v, what = (vendor, f'the measuring machine: {name}') if model is None else (CPUS[model][0], CPUS[model][1])
            rows.append({'cpu': what, 'qemu_model': model, 'vendor': v, 'env': env_name, **r})
            log(f"{env_name:17s} {v:5s} {what:50s} {r['fingerprint']}  ({r['seconds']:.0f} s)")
    import torch

    rec = {'made': time.strftime('%Y-%m-%d'), 'torch': torch.__version__, 'machine': name, 'rows': rows}
    if not quick:
        if with_cost:
            rec['cost'] = cost()
            log(f"CPU_REPRO_ENV / native training time: {rec['cost']['ratio']:.3f}")
        save_json(OUT, rec)
        log(f"wrote {OUT.relative_to(catalog.ROOT)}")
    return rec


def markdown(rec=None):
    "The measurements as the README's table: one row per CPU, one column per environment."
    rec = rec or json.loads(OUT.read_text())
    envs = list(dict.fromkeys(r['env'] for r in rec['rows']))
    cpus = list(dict.fromkeys((r['vendor'], r['cpu'], r['qemu_model']) for r in rec['rows']))
    fp = {(r['vendor'], r['cpu'], r['env']): r['fingerprint'] for r in rec['rows']}
    head = '| vendor | CPU | run | ' + ' | '.join(f'fingerprint, {e}' for e in envs) + ' |'
    lines = [head, '|---|---|---|' + '---|' * len(envs)]
    for v, c, q in cpus:
        how = f'emulated: `qemu-x86_64 -cpu {q}`' if q else 'native'
        lines.append(f'| {v} | {c} | {how} | ' + ' | '.join(f"`{fp.get((v, c, e), '—')}`" for e in envs) + ' |')
    if rec.get('cost'):
        c = rec['cost']
        lines += [
            '',
            f"Measured {rec['made']} with torch {rec['torch']}. The cost on this machine: 10 epochs of PLS on "
            f"`digits` took {c['ratio']:.2f} times as long with `CPU_REPRO_ENV` as with the CPU's native code paths "
            f"(median of {c['rounds']} interleaved runs each).",
        ]
    return '\n'.join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(prog='tools/cross_cpu.py', description=__doc__.split('\n\n')[0])
    p.add_argument('--quick', action='store_true', help='this CPU and one emulated CPU of the other vendor only')
    p.add_argument('--no-cost', action='store_true', help='skip the timing of CPU_REPRO_ENV against native code paths')
    p.add_argument('--cost-only', action='store_true', help='only time it, into the existing measurements file')
    a = p.parse_args(argv)
    if a.cost_only:
        rec = json.loads(OUT.read_text())
        rec['cost'] = cost()
        save_json(OUT, rec)
    else:
        rec = run(a.quick, with_cost=not a.no_cost)
    print(markdown(rec))


if __name__ == '__main__':
    main()
