"The capstone's exercises: each check passes the right answer and fails the wrong one a student is likely to give."

import re
from pathlib import Path

import nbformat
import pytest

SOLUTIONS = Path(__file__).resolve().parent.parent / 'nbs' / 'solutions'


@pytest.fixture(scope='module')
def ns():
    "The capstone's solutions run in their own folder, as the notebook runs (its paths start at nbs/solutions)."
    import os

    nb = nbformat.read(SOLUTIONS / '19_capstone_solutions.ipynb', 4)
    here, out = os.getcwd(), {}
    os.chdir(SOLUTIONS)
    try:
        for c in nb.cells:
            if c.cell_type == 'code':
                exec(c.source, out)
    finally:
        os.chdir(here)
    return out


def test_check_1_needs_the_paired_interval_and_the_rules_class(ns):
    ns['check_1'](ns['by_seed'], ns['cls'])
    gaps = ns['gaps']
    with pytest.raises(AssertionError):  # reading the mean alone as a finding
        ns['check_1'](ns['by_seed'], 'better' if gaps.mean() < 0 else 'worse')
    e = ns['err']
    unpaired = ns['stats'].ttest_ind(list(e['pls'].values()), list(e['mixup'].values())).confidence_interval()
    with pytest.raises(AssertionError):  # the seeds not paired
        ns['check_1']((unpaired.low, unpaired.high), ns['cls'])


def test_check_2_needs_the_clean_training_error_not_the_test_error(ns):
    ns['check_2'](ns['shares'], 'erm')
    with pytest.raises(AssertionError):
        ns['check_2']({m: float(v) for m, v in ns['test'].items()}, 'erm')
    with pytest.raises(AssertionError):  # the method that misses the most images taken for the one that over-fits
        ns['check_2'](ns['shares'], max(ns['shares'], key=ns['shares'].get))


def test_check_3_needs_before_minus_after(ns):
    ns['check_3'](ns['drops'])
    cal = ns['cal']
    with pytest.raises(AssertionError):  # the ECE after scaling taken for the fall
        ns['check_3']({m: cal[m]['ece_ts'] for m in ('pls', 'erm')})


def test_every_exercise_of_the_capstone_has_a_check(ns):
    text = nbformat.read(SOLUTIONS.parent / '19_capstone.ipynb', 4).cells[-1].source
    count = len(re.findall(r'^\d+\. ', text.split('## Exercises', 1)[1], re.M))
    assert sorted(k for k in ns if k.startswith('check_')) == [f'check_{i}' for i in range(1, count + 1)]


def test_the_parameter_counts_the_course_quotes_are_the_networks():
    "notebooks 17 and 19 quote the small CNN's size; a changed network must change the words."
    from pls_edu.methods import get_method
    from pls_edu.models import build_model

    count = {
        m: sum(p.numel() for p in build_model('small-cnn-g3', 1, 10, get_method(m).head_out(10)).parameters())
        for m in ('erm', 'pls')
    }
    quoted = f"{count['erm']:,} parameters" in (SOLUTIONS.parent / '17_regime.ipynb').read_text()
    assert quoted and f"{count['pls']:,} with PLS's head" in (SOLUTIONS.parent / '17_regime.ipynb').read_text()
