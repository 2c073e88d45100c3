"""Every exercise check in the solutions fails on a plausible wrong answer, and passes the right one.

The checks are the `def check_...` cells of the solution notebooks; each test runs a notebook's import cell and its
check cells, then feeds each check the mistake a student is likely to make."""

import math
import os
import re
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch

SOLUTIONS = Path(__file__).resolve().parent.parent / 'nbs' / 'solutions'


def _code(name):
    nb = nbformat.read(SOLUTIONS / f'{name}_solutions.ipynb', 4)
    return [c.source for c in nb.cells if c.cell_type == 'code']


def checks(name):
    "The namespace of solution notebook `name` after its import cell and its cells that define checks."
    cells = _code(name)
    ns = {}
    here = os.getcwd()
    os.chdir(SOLUTIONS)  # as the notebook runs: its relative paths start at nbs/solutions
    try:
        exec(cells[0], ns)
    finally:
        os.chdir(here)
    for src in cells[1:]:
        if src.startswith('def ') and re.search(r'^def check_\d+\(', src, re.M):
            exec(src, ns)
    return ns


COVERED = {
    '00_data': ['check_1'],
    '02_midpoints': ['check_2'],
    '03_head': ['check_1'],
    '06_loaders': ['check_3'],
    '07_metrics': ['check_1'],
    '09_train': ['check_2', 'check_3', 'check_4'],
    '10_conservative': ['check_2'],
    '11_calibration': ['check_2', 'check_3'],
    '13_explore': ['check_1', 'check_3'],
    '15_mnist': ['check_1', 'check_2', 'check_3'],
    '16_regime': ['check_1', 'check_2', 'check_3'],
}


def test_every_check_in_the_solutions_has_a_wrong_answer_test():
    found = {}
    for p in sorted(SOLUTIONS.glob('*_solutions.ipynb')):
        names = [
            m for src in _code(p.stem.removesuffix('_solutions')) for m in re.findall(r'^def (check_\d+)\(', src, re.M)
        ]
        if names:
            found[p.stem.removesuffix('_solutions')] = names
    assert found == COVERED


def test_each_check_is_called_by_its_answer():
    for name, names in COVERED.items():
        calls = '\n'.join(src for src in _code(name) if not re.search(r'^def check_', src, re.M))
        for c in names:
            assert re.search(rf'^{c}\(', calls, re.M), (name, c)


def test_00_class_counts():
    ns = checks('00_data')
    d = ns['load_digits_data']()
    per_class = torch.bincount(torch.cat([d.y_train, d.y_test])).tolist()
    ns['check_1']([round(n / 4) for n in per_class], d)
    with pytest.raises(AssertionError):
        ns['check_1']([45] * 10, d)  # "450 over 10 classes"
    with pytest.raises(AssertionError):
        ns['check_1']([n // 4 for n in per_class], d)  # a quarter, rounded down


def test_02_two_cycles_and_uniform_derangements():
    ns = checks('02_midpoints')

    def two_cycles(p):
        i = torch.arange(len(p))
        return int(((p[p] == i) & (p != i)).sum()) // 2

    def uniform(n, generator=None):
        while True:
            p = torch.randperm(n, generator=generator)
            if not bool((p == torch.arange(n)).any()):
                return p

    ns['check_2'](two_cycles, uniform)
    with pytest.raises(AssertionError):  # each pair counted from both ends
        ns['check_2'](lambda p: int(((p[p] == torch.arange(len(p))) & (p != torch.arange(len(p)))).sum()), uniform)
    with pytest.raises(AssertionError):  # fixed points counted as 2-cycles
        ns['check_2'](lambda p: int((p[p] == torch.arange(len(p))).sum()) // 2, uniform)
    with pytest.raises(AssertionError):  # our cyclic derangement is not uniform
        ns['check_2'](two_cycles, ns['derangement'])
    with pytest.raises(AssertionError):  # randperm pairs samples with themselves
        ns['check_2'](two_cycles, lambda n, generator=None: torch.randperm(n, generator=generator))


def test_03_midpoint_bound_is_the_tight_one():
    ns = checks('03_head')
    cap = ns['smoothing_cap'](100)
    ns['check_1'](0.25 + cap / 2)
    for wrong in (0.5 + cap / 2, 0.25, 0.3, 0.25 + cap):
        with pytest.raises(AssertionError):
            ns['check_1'](wrong)


def test_06_pil_conversions():
    ns = checks('06_loaders')
    ns['check_3']({'device': 0, 'baseline': 4000}, 4000)
    for wrong in ({'device': 0, 'baseline': 4000 // 64 + 1}, {'device': 4000, 'baseline': 4000}):
        with pytest.raises(AssertionError):
            ns['check_3'](wrong, 4000)


def _ece_equal_mass(probs, labels, n_bins=15):
    conf, pred = probs.double().max(1)
    total = 0.0
    for idx in conf.argsort().tensor_split(n_bins):
        total += len(idx) / len(conf) * abs(float((pred[idx] == labels[idx]).double().mean() - conf[idx].mean()))
    return total


def test_07_equal_mass_ece():
    ns = checks('07_metrics')
    ns['check_1'](_ece_equal_mass)
    with pytest.raises(AssertionError):  # the equal-width ECE under another name
        ns['check_1'](ns['ece'])
    with pytest.raises(AssertionError):  # ten bins, not fifteen
        ns['check_1'](lambda p, y: _ece_equal_mass(p, y, n_bins=10))


def test_09_best_epoch_images():
    ns = checks('09_train')
    history = [{'error': e} for e in (5.0, 2.0, 0.89, 1.33, 1.78)]
    ns['check_2'](4, history, 450)
    for wrong in (0, 14, -4):  # nothing; from the first epoch; the wrong sign
        with pytest.raises(AssertionError):
            ns['check_2'](wrong, history, 450)


def test_09_pairing_verdict():
    ns = checks('09_train')
    err = {'derangement': [1.56, 2.0], 'randperm': [1.78, 2.0]}
    gap = 0.11 * 4.5
    e = (1.78 + 1.89) / 200
    sd = math.sqrt(e * (1 - e) * 450)
    ns['check_3'](err, gap, sd, 'within noise')
    with pytest.raises(AssertionError):  # a gap below the noise ranked
        ns['check_3'](err, gap, sd, 'derangement lower over test images only')
    with pytest.raises(AssertionError):  # points, not images
        ns['check_3'](err, 0.11, sd, 'within noise')
    with pytest.raises(AssertionError):  # the sd in points
        ns['check_3'](err, gap, 100 * math.sqrt(e * (1 - e) / 450), 'within noise')
    far = {'derangement': [1.0, 1.2], 'randperm': [4.0, 4.4]}
    gap_far = 3.1 * 4.5
    e_far = 2.65 / 100
    sd_far = math.sqrt(e_far * (1 - e_far) * 450)
    ns['check_3'](far, gap_far, sd_far, 'derangement lower over test images only')
    for wrong in ('within noise', 'derangement lower'):  # the gap missed; a finding claimed on one interval
        with pytest.raises(AssertionError):
            ns['check_3'](far, gap_far, sd_far, wrong)


def test_09_midpoint_steps_counted():
    ns = checks('09_train')
    ns['check_4']({'strict': (340, 680), 'random': (331, 680)})
    for wrong in (
        {'strict': (680, 680), 'random': (331, 680)},  # every step counted as a midpoint
        {'strict': (340, 680), 'random': (400, 680)},  # not a fair coin
        {'strict': (17, 40), 'random': (331, 680)},  # steps per epoch against epochs
    ):
        with pytest.raises(AssertionError):
            ns['check_4'](wrong)


def test_10_bound_and_mean_target_of_pls_w03():
    ns = checks('10_conservative')
    t = ns['train'](ns['TrainConfig'](method='pls-w0.3', epochs=1), ns['d'], progress=False)
    x, y = t.data.tensors('train')
    with torch.no_grad():
        u = t.model.eval().forward_smooth(x)[1].double()
    u_gold = float(u[torch.arange(len(y)), y].mean())
    cap = ns['smoothing_cap'](10)
    ns['check_2'](0.7 + 0.3 * cap, 0.7 + 0.3 * u_gold, t)
    with pytest.raises(AssertionError):  # the bound of w = 0.5
        ns['check_2'](0.5 + 0.5 * cap, 0.7 + 0.3 * u_gold, t)
    with pytest.raises(AssertionError):  # the target of w = 0.5
        ns['check_2'](0.7 + 0.3 * cap, 0.5 + 0.5 * u_gold, t)


def _logits(sharp, n=3000, seed=0):
    "Logits whose labels are drawn from softmax(sharp * z): the NLL's best temperature is near 1/sharp."
    g = torch.Generator().manual_seed(seed)
    z = 2 * torch.randn(n, 10, generator=g)
    return z, torch.multinomial((sharp * z).softmax(1), 1, generator=g).squeeze(1)


def test_11_temperatures_by_nll_and_by_ece():
    ns = checks('11_calibration')
    z, y = _logits(2.0)
    by_nll = ns['fit_temperature_lbfgs'](z, y)['T']
    by_ece = ns['fit_temperature_grid'](z, y, objective='ece')['T']
    assert abs(by_nll - by_ece) > 0.005
    ns['check_2'](by_nll, by_ece, z, y)
    with pytest.raises(AssertionError):  # the two swapped
        ns['check_2'](by_ece, by_nll, z, y)
    with pytest.raises(AssertionError):  # no temperature at all
        ns['check_2'](1.0, by_ece, z, y)


def test_11_each_temperature_fits_its_own_holdout():
    ns = checks('11_calibration')
    holdout = {m: _logits(s, seed=i) for i, (m, s) in enumerate((('erm', 1.0), ('uls-0.1', 2.0), ('pls', 4.0)))}
    temps = {m: ns['fit_temperature_lbfgs'](*holdout[m])['T'] for m in holdout}
    ns['check_3'](temps, holdout)
    with pytest.raises(AssertionError):  # fitted on one method, used for all
        ns['check_3']({m: temps['erm'] for m in holdout}, holdout)
    with pytest.raises(AssertionError):  # ERM not the largest
        ns['check_3']({**temps, 'erm': temps['pls']}, {**holdout, 'erm': holdout['pls']})


def test_14_uls_weight_and_test_ece_temperature():
    ns = checks('13_explore')
    u, K = ns['default_u'](), 10
    q = (ns['one_hot'](torch.tensor([3]), K) + ns['one_hot'](torch.tensor([7]), K)) / 2
    gold = float(ns['pls_targets'](q, u[None], 0.5)[0, 3])
    ns['check_1']((1 - gold) * K / (K - 1))
    for wrong in (1 - gold, gold):  # eq. 1 without its a/K term; the gold mass itself
        with pytest.raises(AssertionError):
            ns['check_1'](wrong)
    test, holdout = _logits(3.0, seed=1), _logits(3.0, seed=2)
    grid = 10 ** np.arange(-2, 1.3 + 1e-9, 0.02)
    eces = [ns['ece']((test[0].double() / T).softmax(1), test[1]) for T in grid]
    best = grid[int(np.argmin(eces))]
    T_hold = ns['fit_temperature'](*holdout)['T']
    ns['check_3'](best, T_hold, test, holdout)
    with pytest.raises(AssertionError):  # the holdout's temperature given as the test ECE's best
        ns['check_3'](T_hold, T_hold, test, holdout)
    with pytest.raises(AssertionError):  # the test ECE's best given as the holdout's fit
        ns['check_3'](best, best * 1.1, test, holdout)


# the exercises on the evidence: committed summaries, checked against what the library makes of them


def test_32_row_mcnemar_and_interval_by_hand():
    ns = checks('15_mnist')
    errs = np.array(list(ns['final_errors'](ns['raw'], 'pls').values()))
    ns['check_1'](errs.mean(), errs.std(ddof=1))
    with pytest.raises(AssertionError):  # the population sd
        ns['check_1'](errs.mean(), errs.std())
    best = [r['final']['best_error'] for r in ns['raw']['runs'] if r['config']['method'] == 'pls']
    with pytest.raises(AssertionError):  # the best epoch's errors
        ns['check_1'](np.mean(best), errs.std(ddof=1))
    run = {r['config']['method']: r for r in ns['abl']}
    a, b = (run[m]['pred'] == run[m]['labels'] for m in ('pls-w0.2', 'pls-w0.3'))
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    binom = ns['stats'].binomtest
    p = binom(only_a, only_a + only_b, 0.5).pvalue
    ns['check_2'](only_a, only_b, p)
    with pytest.raises(AssertionError):  # the two counts swapped
        ns['check_2'](only_b, only_a, p)
    with pytest.raises(AssertionError):  # a one-sided p
        ns['check_2'](only_a, only_b, binom(only_a, only_a + only_b, 0.5, alternative='greater').pvalue)
    e_pls, e_erm = ns['final_errors'](ns['raw'], 'pls'), ns['final_errors'](ns['raw'], 'erm')
    d = np.array([e_pls[s] - e_erm[s] for s in sorted(e_pls)])
    t_half = ns['stats'].t.ppf(0.975, 2) * d.std(ddof=1) / math.sqrt(3)
    ns['check_3'](d.mean() - t_half, d.mean() + t_half)
    z_half = 1.96 * d.std(ddof=1) / math.sqrt(3)
    with pytest.raises(AssertionError):  # 1.96 instead of Student's t
        ns['check_3'](d.mean() - z_half, d.mean() + z_half)
    unpaired = 4.30 * math.sqrt(np.var(list(e_pls.values()), ddof=1) / 3 + np.var(list(e_erm.values()), ddof=1) / 3)
    with pytest.raises(AssertionError):  # not paired by seed
        ns['check_3'](d.mean() - unpaired, d.mean() + unpaired)


def test_34_seeds_needed_bn_and_a_reading():
    ns = checks('16_regime')
    stats = ns['stats']
    g = ns['difference'](ns['data'], 'mixup', 'erm')
    sd = (g['by_seed'][1] - g['diff']) * math.sqrt(3) / stats.t.ppf(0.975, 2)
    n = next(m for m in range(2, 1000) if stats.t.ppf(0.975, m - 1) * sd / math.sqrt(m) < abs(g['diff']))
    way = 'worse' if g['diff'] > 0 else 'better'
    ns['check_1'](n, way)
    z_n = next(m for m in range(2, 1000) if 1.96 * sd / math.sqrt(m) < abs(g['diff']))
    assert z_n != n
    for wrong in ((z_n, way), (n - 1, way), (n, 'better' if way == 'worse' else 'worse')):
        with pytest.raises(AssertionError):
            ns['check_1'](*wrong)
    runs = [r for r in ns['data'] if r['config']['method'] == 'pls']
    d = np.array([r['final']['error_bn_recal'] - r['final']['error'] for r in runs])
    half = stats.t.ppf(0.975, 2) * d.std(ddof=1) / math.sqrt(3)
    by_seed = (d.mean() - half, d.mean() + half)
    passed = []
    for v in ('worse', 'better', 'within noise'):
        try:
            ns['check_2'](by_seed, v)
            passed.append(v)
        except AssertionError:
            pass
    assert len(passed) == 1, passed  # exactly one verdict is right
    with pytest.raises(AssertionError):  # the interval with z
        z = 1.96 * d.std(ddof=1) / math.sqrt(3)
        ns['check_2']((d.mean() - z, d.mean() + z), passed[0])
    g = ns['difference'](ns['pool'], 'pls_detach', 'pls')
    truth = ns['reading_verdict'](g['class'], ns['difference'](ns['pool'], 'pls_detach', 'erm')['class'])
    ns['check_3'](g['by_seed'], truth)
    for wrong in {'responsible', 'helps', 'hurts', 'within noise'} - {truth}:
        with pytest.raises(AssertionError):
            ns['check_3'](g['by_seed'], wrong)
    with pytest.raises(AssertionError):  # against ERM instead of PLS
        ns['check_3'](ns['difference'](ns['pool'], 'pls_detach', 'erm')['by_seed'], truth)
