"The course's numbers do not depend on the CPU vendor: this CPU and an emulated CPU of the other vendor agree bit for bit."

import json
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / 'tools'))
import course  # noqa: E402
import cross_cpu  # noqa: E402


@pytest.mark.skipif(
    shutil.which('qemu-x86_64') is None, reason='qemu-user is not installed (.ci/run installs it as root)'
)
def test_this_cpu_and_the_other_vendor_give_the_committed_fingerprint():
    vendor, _ = cross_cpu.native_cpu()
    here = cross_cpu.measure(None, 'CPU_REPRO_ENV')['fingerprint']
    there = cross_cpu.measure(cross_cpu.other_vendor(vendor), 'CPU_REPRO_ENV')['fingerprint']
    assert here == there, f"{vendor} here: {here}; emulated {cross_cpu.other_vendor(vendor)}: {there}"
    committed = json.loads(course.FINGERPRINT.read_text())['fingerprint'].split()[-1]
    assert here == committed, 'the notebooks were executed with other numerics: run python tools/course.py execute'


def test_the_committed_measurements_show_what_the_readme_says():
    rec = json.loads(cross_cpu.OUT.read_text())
    repro = {r['fingerprint'] for r in rec['rows'] if r['env'] == 'CPU_REPRO_ENV'}
    assert len(repro) == 1  # one fingerprint on every CPU measured
    vendors = {r['vendor'] for r in rec['rows'] if r['env'] == 'CPU_REPRO_ENV'}
    assert vendors == {'Intel', 'AMD'}
    without = {}
    for r in rec['rows']:
        if r['env'] == 'without MKL_CBWR':
            without.setdefault(r['vendor'], set()).add(r['fingerprint'])
    assert without['Intel'].isdisjoint(without['AMD'])  # without it, MKL picks its code path by vendor
    assert cross_cpu.markdown(rec) in (ROOT / 'README.md').read_text()
