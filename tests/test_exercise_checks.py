"""Every exercise of lessons 00-17 has a check in its solutions, and every check fails on a plausible wrong answer and
passes the right one.

The checks are the `def check_N(...)` cells of the solution notebooks (N: the exercise's number); each test runs a
notebook's import cell and its check cells, then feeds each check the mistake a student is likely to make. A test
registers the checks it covers with `@covers`, and the first test requires one covered check per exercise."""

import math
import os
import re
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import nbformat
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import pls_edu.methods
from pls_edu.train import TrainConfig, train

NBS = Path(__file__).resolve().parent.parent / 'nbs'
SOLUTIONS = NBS / 'solutions'
# the lessons whose every exercise has a check here (18_curve and 19_capstone are covered elsewhere)
LESSONS = [p.stem for p in sorted(NBS.glob('[0-9][0-9]_*.ipynb')) if int(p.stem[:2]) <= 17]


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
        if re.match(r'def check_\d+\(', src):
            exec(src, ns)
    return ns


def exercises(name):
    "The numbers of the items of lesson `name`'s `## Exercises` list."
    nb = nbformat.read(NBS / f'{name}.ipynb', 4)
    md = [c.source for c in nb.cells if c.cell_type == 'markdown' and c.source.startswith('## Exercises')]
    assert len(md) == 1, (name, len(md))
    return [int(n) for n in re.findall(r'^(\d+)\. ', md[0], re.M)]


COVERED = {}


def covers(name, *names):
    "Register the decorated test as the one that feeds checks `names` of solution notebook `name` a wrong answer."

    def register(test):
        COVERED.setdefault(name, []).extend(names)
        return test

    return register


def test_every_check_in_the_solutions_has_a_wrong_answer_test():
    found = {}
    for p in sorted(SOLUTIONS.glob('*_solutions.ipynb')):
        name = p.stem.removesuffix('_solutions')
        names = [m for src in _code(name) for m in re.findall(r'^def (check_\d+)\(', src, re.M)]
        if names and name in LESSONS:  # 18_curve's and 19_capstone's are tested in test_curve.py, test_capstone.py
            found[name] = sorted(names)
        for src in _code(name):  # a check has a cell of its own, which `checks` runs
            if re.search(r'^def check_\d+\(', src, re.M):
                assert re.match(r'def check_\d+\(', src), (name, src[:60])
    assert found == {k: sorted(v) for k, v in COVERED.items()}
    assert len(LESSONS) == 18, LESSONS
    for name in LESSONS:  # one check per exercise, numbered as the exercises are
        numbers = exercises(name)
        assert numbers == list(range(1, len(numbers) + 1)), (name, numbers)
        assert sorted(COVERED.get(name, [])) == sorted(f'check_{n}' for n in numbers), name


def test_each_check_is_called_by_its_answer():
    for name, names in COVERED.items():
        calls = '\n'.join(src for src in _code(name) if not re.search(r'^def check_', src, re.M))
        for c in names:
            assert re.search(rf'^\s*{c}\(', calls, re.M), (name, c)


def fails(check, *args):
    "`check(*args)` raises an AssertionError: the wrong answer is caught."
    with pytest.raises(AssertionError):
        check(*args)


# 00 data


@covers('01_data', 'check_1')
def test_00_class_counts():
    ns = checks('01_data')
    d = ns['load_digits_data']()
    per_class = torch.bincount(torch.cat([d.y_train, d.y_test])).tolist()
    ns['check_1']([round(n / 4) for n in per_class], d)
    fails(ns['check_1'], [45] * 10, d)  # "450 over 10 classes"
    fails(ns['check_1'], [n // 4 for n in per_class], d)  # a quarter, rounded down


@covers('01_data', 'check_2')
def test_00_hypergeometric_sd_and_random_splits():
    ns = checks('01_data')
    N, K, n = 1797, 180, 450
    sd = math.sqrt(n * K / N * (1 - K / N) * (N - n) / (N - 1))
    labels = np.r_[np.zeros(K), np.ones(N - K)]
    rng = np.random.default_rng(0)
    counts = [int((labels[rng.permutation(N)[:n]] == 0).sum()) for _ in range(2000)]
    ns['check_2'](sd, counts)
    fails(ns['check_2'], math.sqrt(n * K / N * (1 - K / N)), counts)  # binomial: no finite-population correction
    from pls_edu.data import stratified_split

    stratified = [int((labels[stratified_split(labels, n / N, s)[1]] == 0).sum()) for s in range(2000)]
    fails(ns['check_2'], sd, stratified)  # simulated with stratification: the count never moves
    fails(ns['check_2'], sd, counts[:200])  # too few splits


@covers('01_data', 'check_3')
def test_00_class_shares_of_each_split():
    ns = checks('01_data')

    def shares(data, splits=('train', 'test'), norm=True):
        out = {}
        for key, s in zip(('train', 'test'), splits, strict=True):
            y = data.split(s)[1]
            c = torch.bincount(y, minlength=data.num_classes).double()
            out[key] = (c / len(y) if norm else c).numpy()
        return out

    ns['check_3'](shares)
    fails(ns['check_3'], lambda d: shares(d, ('train', 'train')))  # the train split read twice: a gap of 0
    fails(ns['check_3'], lambda d: shares(d, norm=False))  # counts, not shares

    def pooled(d):  # the whole set's shares for both splits
        y = torch.cat([d.y_train, d.y_test])
        s = (torch.bincount(y, minlength=d.num_classes).double() / len(y)).numpy()
        return {'train': s, 'test': s}

    fails(ns['check_3'], pooled)


# 01 smoothing


@covers('02_smoothing', 'check_1')
def test_01_linearity_checked_on_any_distributions():
    ns = checks('02_smoothing')
    g = torch.Generator().manual_seed(0)
    q, r = (torch.softmax(torch.randn(16, 10, generator=g, dtype=torch.float64), 1) for _ in range(2))
    ns['check_1'](q, r)
    onehot = F.one_hot(torch.arange(16) % 10, 10).double()
    fails(ns['check_1'], onehot, torch.full((16, 10), 0.1, dtype=torch.float64))  # only eq. 4 -> 5, labels and u
    fails(ns['check_1'], q.float(), r.float())  # float32


@covers('02_smoothing', 'check_2')
def test_01_smallest_uls_loss():
    ns = checks('02_smoothing')
    q = ns['uls_targets'](torch.tensor([3]), 10, 0.1).double()[0]
    entropy = float(-(q * q.log()).sum())
    ns['check_2'](entropy, q)
    onehot = F.one_hot(torch.tensor(3), 10).double()
    fails(ns['check_2'], 0.0, onehot)  # "the loss reaches 0 at the label"
    fails(ns['check_2'], entropy, onehot)  # the right value, at the wrong prediction
    fails(ns['check_2'], -math.log(0.91), q)  # the gold class's term alone
    fails(ns['check_2'], entropy / math.log(2), q)  # in bits


@covers('02_smoothing', 'check_3')
def test_01_gradient_wrt_logits():
    ns = checks('02_smoothing')
    ns['check_3'](lambda z, q: torch.softmax(z, 1) - q)
    fails(ns['check_3'], lambda z, q: q - torch.softmax(z, 1))  # the sign
    fails(ns['check_3'], lambda z, q: torch.softmax(z, 0) - q)  # softmax over the batch
    fails(ns['check_3'], lambda z, q: (torch.softmax(z, 1) - q) / len(z))  # the mean's gradient


# 02 midpoints


@covers('03_midpoints', 'check_1')
def test_02_self_pairs_of_randperm():
    ns = checks('03_midpoints')
    g = torch.Generator().manual_seed(0)
    sizes = (2, 16, 256)

    def mean_fixed(perm, n):
        return float(np.mean([int((perm(n) == torch.arange(n)).sum()) for _ in range(2000)]))

    sim = {n: mean_fixed(lambda m: torch.randperm(m, generator=g), n) for n in sizes}
    ns['check_1']({n: 1.0 for n in sizes}, sim, 2000)
    fails(ns['check_1'], {n: 1 / n for n in sizes}, {n: v / n for n, v in sim.items()}, 2000)  # the share
    fails(ns['check_1'], {n: n / 2 for n in sizes}, sim, 2000)  # half the batch
    cyclic = {n: mean_fixed(lambda m: ns['derangement'](m, g), n) for n in sizes}
    fails(ns['check_1'], {n: 1.0 for n in sizes}, cyclic, 2000)  # simulated with our derangement


@covers('03_midpoints', 'check_2')
def test_02_two_cycles_and_uniform_derangements():
    ns = checks('03_midpoints')

    def two_cycles(p):
        i = torch.arange(len(p))
        return int(((p[p] == i) & (p != i)).sum()) // 2

    def uniform(n, generator=None):
        while True:
            p = torch.randperm(n, generator=generator)
            if not bool((p == torch.arange(n)).any()):
                return p

    ns['check_2'](two_cycles, uniform)
    # each pair counted from both ends
    fails(ns['check_2'], lambda p: int(((p[p] == torch.arange(len(p))) & (p != torch.arange(len(p)))).sum()), uniform)
    # fixed points counted as 2-cycles
    fails(ns['check_2'], lambda p: int((p[p] == torch.arange(len(p))).sum()) // 2, uniform)
    fails(ns['check_2'], two_cycles, ns['derangement'])  # our cyclic derangement is not uniform
    # randperm pairs samples with themselves
    fails(ns['check_2'], two_cycles, lambda n, generator=None: torch.randperm(n, generator=generator))


@covers('03_midpoints', 'check_3')
def test_02_moments_of_the_gold_mass():
    ns = checks('03_midpoints')
    rng = np.random.default_rng(0)
    lam = np.array([ns['sample_lambda'](1.0, rng) for _ in range(20000)])
    right = {'mixup': (0.5, 1 / 12), 'midpoint': (0.5, 0.0)}
    ns['check_3'](right, lam)
    fails(ns['check_3'], {**right, 'mixup': (0.5, 1 / 4)}, lam)  # the variance of a coin
    fails(ns['check_3'], {**right, 'mixup': (0.5, math.sqrt(1 / 12))}, lam)  # the sd, not the variance
    fails(ns['check_3'], {**right, 'midpoint': (0.5, 1 / 12)}, lam)  # a midpoint's mass does not move
    fails(ns['check_3'], right, rng.beta(0.2, 0.2, 20000))  # simulated with another alpha


# 03 head


@covers('04_head', 'check_1')
def test_03_midpoint_bound_is_the_tight_one():
    ns = checks('04_head')
    cap = ns['smoothing_cap'](100)
    ns['check_1'](0.25 + cap / 2)
    for wrong in (0.5 + cap / 2, 0.25, 0.3, 0.25 + cap):
        fails(ns['check_1'], wrong)


@covers('04_head', 'check_2')
def test_03_floor_of_the_gold_target():
    ns = checks('04_head')
    floor = 0.5 + 0.5 / (1 + 9 * math.e)
    ns['check_2'](floor)
    for wrong in (0.5, 0.5 + 0.5 / 10, 0.5 + 0.5 * ns['smoothing_cap'](10)):  # u_y = 0; u uniform; the ceiling
        fails(ns['check_2'], wrong)


@covers('04_head', 'check_3')
def test_03_training_without_labels():
    ns = checks('04_head')

    def alone(q, u):
        return ns['pls_targets'](q, u, w=1.0)

    ns['check_3'](90, alone)
    fails(ns['check_3'], 10, alone)  # the accuracy of chance, given as the error
    fails(ns['check_3'], 90, lambda q, u: ns['pls_targets'](q, u))  # w left at 0.5: the labels still enter


# 04 methods


@covers('05_methods', 'check_1')
def test_04_midpoint_steps_counted_across_epochs():
    ns = checks('05_methods')
    ns['check_1']({'pls': [8, 9, 8], 'pls-no-original': [17, 17, 17]})
    fails(ns['check_1'], {'pls': [8, 8, 8], 'pls-no-original': [17, 17, 17]})  # the count restarted each epoch
    fails(ns['check_1'], {'pls': [9, 8, 9], 'pls-no-original': [17, 17, 17]})  # even steps as midpoints
    fails(ns['check_1'], {'pls': [8, 9, 8], 'pls-no-original': [0, 0, 0]})  # "no original" read as "no midpoint"


@covers('05_methods', 'check_2')
def test_04_derivative_of_ud_a():
    ns = checks('05_methods')

    def H(q, p):
        return float(-(q * p.log()).sum())

    def uniform(p):
        return torch.full_like(p, 1 / p.shape[1])

    ns['check_2'](lambda p, q: H(uniform(p), p) - H(q, p))
    fails(ns['check_2'], lambda p, q: H(q, p) - H(uniform(p), p))  # the sign
    fails(ns['check_2'], lambda p, q: H(uniform(p), p))  # the smoothing term alone


@covers('05_methods', 'check_3')
def test_04_mixup_uls_target():
    ns = checks('05_methods')

    def target(gold3, gold5, other):
        t = torch.full((10,), other)
        t[3], t[5] = gold3, gold5
        return t

    ns['check_3'](target(0.64, 0.28, 0.01))
    fails(ns['check_3'], target(0.63, 0.27, 0.01))  # a/K left off the gold classes
    fails(ns['check_3'], target(0.28, 0.64, 0.01))  # lambda on the 5
    fails(ns['check_3'], target(0.7, 0.3, 0.0))  # Mixup without the smoothing


# 05 models


@covers('06_models', 'check_1')
def test_05_parameter_counts():
    ns = checks('06_models')
    body = 9 * 1 * 16 + 9 * 16 * 32 + 9 * 32 * 64 + 2 * (16 + 32 + 64)
    right = {n: (body + m * 10 + 10, body + 2 * (m * 10 + 10)) for n, m in (('small-cnn', 64), ('small-cnn-g3', 576))}
    ns['check_1'](right)
    bias = 16 + 32 + 64  # convolutions with a bias
    fails(ns['check_1'], {n: (a + bias, b + bias) for n, (a, b) in right.items()})
    stats = 2 * (16 + 32 + 64)  # BatchNorm's running mean and variance, which are buffers
    fails(ns['check_1'], {n: (a + stats, b + stats) for n, (a, b) in right.items()})
    fails(ns['check_1'], {n: (a, a + 10 * 10 + 10) for n, (a, b) in right.items()})  # a head from the logits


@covers('06_models', 'check_2')
def test_05_receptive_field():
    ns = checks('06_models')
    ns['check_2'](18)
    fails(ns['check_2'], 7)  # three 3x3 convolutions, the pools forgotten
    fails(ns['check_2'], 28)  # the whole image


@covers('06_models', 'check_3')
def test_05_plain_shortcut():
    ns = checks('06_models')
    PreAct = ns['PreActBlock']

    class Plain(PreAct):
        def forward(self, x):
            out = F.relu(self.bn1(x))
            return self.conv2(F.relu(self.bn2(self.conv1(out)))) + x

    class NoShortcut(PreAct):
        def forward(self, x):
            return self.conv2(F.relu(self.bn2(self.conv1(F.relu(self.bn1(x))))))

    class ExtraNorm(Plain):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            self.bn_short = torch.nn.BatchNorm2d(a[0])

    ns['check_3'](Plain)
    fails(ns['check_3'], PreAct)  # the library's block, unchanged
    fails(ns['check_3'], NoShortcut)  # no shortcut at all
    fails(ns['check_3'], ExtraNorm)  # more parameters


# 06 loaders


@covers('07_loaders', 'check_1')
def test_06_batches_per_epoch(digits):
    ns = checks('07_loaders')
    ns['check_1'](lambda n, b: n // b + (n % b > 1), digits)
    fails(ns['check_1'], lambda n, b: math.ceil(n / b), digits)  # a last batch of one image kept
    fails(ns['check_1'], lambda n, b: n // b, digits)  # the remainder dropped


@covers('07_loaders', 'check_2')
def test_06_three_shuffled_epochs(digits):
    ns = checks('07_loaders')
    DeviceLoader = ns['DeviceLoader']

    def orders(loaders):
        out = []
        for dl in loaders:
            for _ in dl:
                pass
            out.append(dl.order.clone())
        return out

    dl = DeviceLoader(digits, batch_size=100, generator=torch.Generator().manual_seed(0))
    n = len(digits.x_train)
    ns['check_2'](orders([dl] * 3), n)
    fresh = [DeviceLoader(digits, batch_size=100, generator=torch.Generator().manual_seed(0)) for _ in range(3)]
    fails(ns['check_2'], orders(fresh), n)  # three loaders with one seed: one order
    g = torch.Generator().manual_seed(0)
    fails(ns['check_2'], [torch.randint(0, n, (n,), generator=g) for _ in range(3)], n)  # drawn with replacement


@covers('07_loaders', 'check_3')
def test_06_pil_conversions():
    ns = checks('07_loaders')
    ns['check_3']({'device': 0, 'baseline': 4000}, 4000)
    for wrong in ({'device': 0, 'baseline': 4000 // 64 + 1}, {'device': 4000, 'baseline': 4000}):
        fails(ns['check_3'], wrong, 4000)


# 07 metrics


def _ece_equal_mass(probs, labels, n_bins=15):
    conf, pred = probs.double().max(1)
    total = 0.0
    for idx in conf.argsort().tensor_split(n_bins):
        total += len(idx) / len(conf) * abs(float((pred[idx] == labels[idx]).double().mean() - conf[idx].mean()))
    return total


@covers('08_metrics', 'check_1')
def test_07_equal_mass_ece():
    ns = checks('08_metrics')
    ns['check_1'](_ece_equal_mass)
    fails(ns['check_1'], ns['ece'])  # the equal-width ECE under another name
    fails(ns['check_1'], lambda p, y: _ece_equal_mass(p, y, n_bins=10))  # ten bins, not fifteen


@covers('08_metrics', 'check_2')
def test_07_ece_with_one_bin():
    ns = checks('08_metrics')

    def gap(p, y):
        conf, pred = p.double().max(1)
        return (pred == y).double() - conf

    ns['check_2'](lambda p, y: abs(float(gap(p, y).mean())))
    fails(ns['check_2'], lambda p, y: float(gap(p, y).mean()))  # signed: negative when over-confident
    fails(ns['check_2'], lambda p, y: float(gap(p, y).abs().mean()))  # a bin per prediction


@covers('08_metrics', 'check_3')
def test_07_interval_of_three_seeds():
    ns = checks('08_metrics')
    d = np.array([0.22, 0.0, -0.22])
    half = ns['t'].ppf(0.975, 2) * d.std(ddof=1) / math.sqrt(3)
    ns['check_3'](-half, half, True)
    z = 1.96 * d.std(ddof=1) / math.sqrt(3)
    fails(ns['check_3'], -z, z, True)  # 1.96 instead of Student's t
    pop = ns['t'].ppf(0.975, 2) * d.std() / math.sqrt(3)
    fails(ns['check_3'], -pop, pop, True)  # the population sd
    fails(ns['check_3'], -half, half, False)  # the reading


@covers('08_metrics', 'check_4')
def test_07_mcnemar_by_hand():
    ns = checks('08_metrics')
    from scipy.stats import binomtest

    p = {'shared': binomtest(10, 30, 0.5).pvalue, 'apart': binomtest(50, 110, 0.5).pvalue}
    ns['check_4'](p, {'shared': False, 'apart': False})
    one_sided = {'shared': binomtest(10, 30, 0.5, alternative='less').pvalue}
    one_sided['apart'] = binomtest(50, 110, 0.5, alternative='less').pvalue
    assert one_sided['shared'] < 0.05 < p['shared']
    fails(ns['check_4'], one_sided, {k: v < 0.05 for k, v in one_sided.items()})  # a one-sided p
    every_mistake = {'shared': p['apart'], 'apart': p['apart']}  # 60 against 50, the shared mistakes counted
    fails(ns['check_4'], every_mistake, {'shared': False, 'apart': False})
    fails(ns['check_4'], p, {'shared': True, 'apart': False})  # the reading


# 08 temperature


@covers('09_temperature', 'check_1')
def test_08_limits_of_the_winning_softmax():
    ns = checks('09_temperature')
    ns['check_1'](1.0, 0.1)
    fails(ns['check_1'], 1.0, 0.0)  # "every probability goes to 0"
    fails(ns['check_1'], 0.1, 1.0)  # the two limits swapped


def _logits(sharp, n=3000, seed=0):
    "Logits whose labels are drawn from softmax(sharp * z): the NLL's best temperature is near 1/sharp."
    g = torch.Generator().manual_seed(seed)
    z = 2 * torch.randn(n, 10, generator=g)
    return z, torch.multinomial((sharp * z).softmax(1), 1, generator=g).squeeze(1)


@covers('09_temperature', 'check_2')
def test_08_temperatures_of_an_under_confident_model():
    ns = checks('09_temperature')
    z, y = _logits(3.0)  # logits a third of what the labels follow: the right T is 1/3
    by_nll = ns['fit_temperature_lbfgs'](z, y)['T']
    by_ece = ns['fit_temperature_grid'](z, y, objective='ece')['T']
    assert abs(by_nll - by_ece) > 0.005
    ns['check_2'](by_nll, by_ece, z, y)
    fails(ns['check_2'], 3.0, by_ece, z, y)  # the factor the logits were divided by, not its inverse
    fails(ns['check_2'], by_ece, by_nll, z, y)  # the two swapped


@covers('09_temperature', 'check_3')
def test_08_a_holdout_with_no_best_temperature():
    ns = checks('09_temperature')
    temps = np.logspace(1, -2, 30)

    def nll(z, y):
        return [F.cross_entropy(z / T, y).item() for T in temps]

    sep = torch.eye(10, dtype=torch.float64).repeat(5, 1) * 5
    labels = torch.arange(10).repeat(5)
    ns['check_3'](sep, labels, temps, nll(sep, labels))
    wrong = labels.clone()
    wrong[0] = 1  # one prediction wrong: the NLL now has a minimum
    fails(ns['check_3'], sep, wrong, temps, nll(sep, wrong))
    tied = sep.clone()
    tied[:, 0] = 5.0  # a logit tied with the label's: the NLL stops at log 2
    tied[torch.arange(0, 50, 10), 1] = 5.0
    fails(ns['check_3'], tied, labels, temps, nll(tied, labels))
    fails(ns['check_3'], sep, labels, temps[::-1], nll(sep, labels))  # temperatures rising, NLLs of others


# 09 train: short runs on digits (1 epoch) stand for the exercises' 20-epoch ones


@covers('10_train', 'check_1')
def test_09_learning_rate_drops():
    ns = checks('10_train')
    ns['check_1']({'reference': [], 'step': [10, 15]})
    fails(ns['check_1'], {'reference': [100, 150], 'step': [10, 15]})  # the paper's epochs, past the run's end
    fails(ns['check_1'], {'reference': [10, 15], 'step': [10, 15]})  # the reference schedule scaled too
    fails(ns['check_1'], {'reference': [], 'step': [11, 16]})  # the first epoch at the lower rate, counted from 1


@covers('10_train', 'check_2')
def test_09_best_epoch_images():
    ns = checks('10_train')
    history = [{'error': e} for e in (5.0, 2.0, 0.89, 1.33, 1.78)]
    ns['check_2'](4, history, 450)
    for wrong in (0, 14, -4):  # nothing; from the first epoch; the wrong sign
        fails(ns['check_2'], wrong, history, 450)


def _pls(digits, **kw):
    return train(TrainConfig(method='pls', epochs=1, **kw), digits, progress=False)


def _fake(error, seed, pairing, n=450):
    "A finished run as check_3 reads it: its config, last error, test logits and labels."
    g = torch.Generator().manual_seed(1000 * seed + len(pairing))
    cfg = SimpleNamespace(seed=seed, pairing=pairing)
    return SimpleNamespace(cfg=cfg, history=[{'error': error}], logits=torch.randn(n, 10, generator=g), labels=[0] * n)


def _pairing_answer(runs):
    "What the worked solution computes from `runs`: the gap and one sd in test images, and the verdict."
    mean = {p: np.mean([t.history[-1]['error'] for t in ts]) for p, ts in runs.items()}
    n = len(runs['derangement'][0].labels)
    gap = abs(mean['derangement'] - mean['randperm']) * n / 100
    e = (mean['derangement'] + mean['randperm']) / 200
    sd = math.sqrt(e * (1 - e) * n)
    verdict = 'within noise' if gap <= 2 * sd else min(mean, key=mean.get) + ' lower over test images only'
    return gap, sd, verdict


@covers('10_train', 'check_3')
def test_09_pairing_runs_and_verdict(digits):
    ns = checks('10_train')
    runs = {p: [_pls(digits, pairing=p, seed=s) for s in (0, 1)] for p in ('derangement', 'randperm')}
    ns['check_3'](runs, *_pairing_answer(runs))
    # pairing not passed: the 'randperm' runs are the default's, identical, and their gap of 0 is "within noise"
    forgot = {'derangement': runs['derangement'], 'randperm': [_pls(digits, seed=s) for s in (0, 1)]}
    fails(ns['check_3'], forgot, *_pairing_answer(forgot))
    one_seed = {p: [ts[0], ts[0]] for p, ts in runs.items()}  # seed 0 twice
    fails(ns['check_3'], one_seed, *_pairing_answer(one_seed))
    # the rule, on made-up errors: near and far
    near = {
        p: [_fake(e, s, p) for s, e in enumerate(v)]
        for p, v in {'derangement': [1.56, 2.0], 'randperm': [1.78, 2.0]}.items()
    }
    gap, sd, verdict = _pairing_answer(near)
    assert verdict == 'within noise'
    ns['check_3'](near, gap, sd, verdict)
    fails(ns['check_3'], near, gap, sd, 'derangement lower over test images only')  # a gap below the noise ranked
    fails(ns['check_3'], near, gap / 4.5, sd, verdict)  # points, not images
    fails(ns['check_3'], near, gap, sd / 450 * 100, verdict)  # the sd in points
    far = {
        p: [_fake(e, s, p) for s, e in enumerate(v)]
        for p, v in {'derangement': [1.0, 1.2], 'randperm': [4.0, 4.4]}.items()
    }
    gap, sd, verdict = _pairing_answer(far)
    assert verdict == 'derangement lower over test images only'
    ns['check_3'](far, gap, sd, verdict)
    for wrong in ('within noise', 'derangement lower'):  # the gap missed; a finding claimed on one interval
        fails(ns['check_3'], far, gap, sd, wrong)


def _spied(digits, alternation=None):
    "Two 1-epoch PLS runs (seeds 0, 1) with `alternation` (None: not passed), and their midpoint steps and steps."
    kw = {} if alternation is None else {'alternation': alternation}
    with mock.patch.object(pls_edu.methods, 'midpoint', wraps=pls_edu.methods.midpoint) as calls:
        runs = [_pls(digits, seed=s, **kw) for s in (0, 1)]
    return runs, (calls.call_count, sum(t.step for t in runs))


@covers('10_train', 'check_4')
def test_09_alternation_runs_and_midpoint_steps(digits):
    ns = checks('10_train')
    (strict, s_share), (coin, c_share) = _spied(digits, 'strict'), _spied(digits, 'random')
    ns['check_4']({'strict': s_share, 'random': c_share}, {'strict': strict, 'random': coin})
    # alternation not passed: the 'random' runs are strict ones, exactly half their steps midpoints, within the coin's sd
    forgot, f_share = _spied(digits)
    fails(ns['check_4'], {'strict': s_share, 'random': f_share}, {'strict': strict, 'random': forgot})
    every = {'strict': (s_share[1], s_share[1]), 'random': c_share}  # every step counted as a midpoint
    fails(ns['check_4'], every, {'strict': strict, 'random': coin})
    # both runs' midpoint steps against one run's steps
    per_run = {'strict': (s_share[0], strict[0].step), 'random': c_share}
    fails(ns['check_4'], per_run, {'strict': strict, 'random': coin})


@covers('10_train', 'check_5')
def test_09_precision_runs(digits):
    ns = checks('10_train')
    runs = {p: _pls(digits, precision=p) for p in ('fp32', 'bf16')}

    def gaps(rs):
        return {k: abs(rs['fp32'].history[-1][k] - rs['bf16'].history[-1][k]) for k in ('error', 'winning_softmax')}

    ns['check_5'](gaps(runs), runs)
    forgot = {'fp32': runs['fp32'], 'bf16': _pls(digits)}  # precision not passed: fp32 on a CPU, a gap of 0
    fails(ns['check_5'], gaps(forgot), forgot)
    fails(ns['check_5'], {k: v * 4.5 for k, v in gaps(runs).items()}, runs)  # in test images, not points
    seeded = {'fp32': runs['fp32'], 'bf16': _pls(digits, precision='bf16', seed=1)}  # a second difference
    fails(ns['check_5'], gaps(seeded), seeded)


# 10 conservative: 5-epoch runs, enough for ERM and PLS to predict near their targets


@pytest.fixture(scope='module')
def fitted(digits):
    return {m: train(TrainConfig(method=m, epochs=5), digits, progress=False) for m in ('erm', 'pls')}


@covers('11_conservative', 'check_1')
def test_10_winning_softmax_near_each_target(fitted):
    ns = checks('11_conservative')
    winning = {m: ns['mean_winning'](t)[0] for m, t in fitted.items()}
    ns['check_1'](1.0, winning, fitted)
    fails(ns['check_1'], 0.5 + 0.5 * ns['smoothing_cap'](10), winning, fitted)  # PLS's bound expected of ERM too
    on_test = {m: t.history[-1]['winning_softmax'] for m, t in fitted.items()}
    fails(ns['check_1'], 1.0, on_test, fitted)  # measured on the test images
    untrained = {**fitted, 'erm': train(TrainConfig(method='erm', epochs=1, lr=1e-4), ns['d'], progress=False)}
    w = {m: ns['mean_winning'](t)[0] for m, t in untrained.items()}
    fails(ns['check_1'], 1.0, w, untrained)  # a model that has not fitted: far from its target


@covers('11_conservative', 'check_2')
def test_10_bound_and_mean_target_of_pls_w03():
    ns = checks('11_conservative')
    t = ns['train'](ns['TrainConfig'](method='pls-w0.3', epochs=1), ns['d'], progress=False)
    x, y = t.data.tensors('train')
    with torch.no_grad():
        u = t.model.eval().forward_smooth(x)[1].double()
    u_gold = float(u[torch.arange(len(y)), y].mean())
    cap = ns['smoothing_cap'](10)
    ns['check_2'](0.7 + 0.3 * cap, 0.7 + 0.3 * u_gold, t)
    fails(ns['check_2'], 0.5 + 0.5 * cap, 0.7 + 0.3 * u_gold, t)  # the bound of w = 0.5
    fails(ns['check_2'], 0.7 + 0.3 * cap, 0.5 + 0.5 * u_gold, t)  # the target of w = 0.5


@covers('11_conservative', 'check_3')
def test_10_coefficient_started_at_uls_03():
    ns = checks('11_conservative')
    torch.manual_seed(0)
    model = ns['build_model']('small-cnn', 1, 10, head_out=1)
    with torch.no_grad():
        model.smoother.linear.weight.zero_()
        model.smoother.linear.bias.fill_(math.log(0.3 / 0.7))
    t = ns['Trainer'](TrainConfig(method='pls-coeff', epochs=5), ns['d'], progress=False, model=model)
    x, _ = t.data.tensors('train')

    def c():
        return float(t.model.eval().forward_smooth(x)[1].mean().detach())

    c0 = c()
    t.fit()
    ns['check_3'](c0, c(), t)
    fails(ns['check_3'], 1 / (1 + math.exp(-0.3)), c(), t)  # the bias set to 0.3, not to logit(0.3)
    fails(ns['check_3'], c0, c0, t)  # "it stays where it started"


# 11 calibration


@covers('12_calibration', 'check_1')
def test_11_where_the_two_ece_curves_meet(digits):
    ns = checks('12_calibration')
    t = train(TrainConfig(method='pls', holdout=0.2, epochs=3), digits, progress=False)
    ns['check_1'](3, t)
    fails(ns['check_1'], 1, t)  # the first epoch
    fails(ns['check_1'], 2, t)  # the last epoch's index, counted from 0


@covers('12_calibration', 'check_2')
def test_11_temperatures_by_nll_and_by_ece():
    ns = checks('12_calibration')
    z, y = _logits(2.0)
    by_nll = ns['fit_temperature_lbfgs'](z, y)['T']
    by_ece = ns['fit_temperature_grid'](z, y, objective='ece')['T']
    assert abs(by_nll - by_ece) > 0.005
    ns['check_2'](by_nll, by_ece, z, y)
    fails(ns['check_2'], by_ece, by_nll, z, y)  # the two swapped
    fails(ns['check_2'], 1.0, by_ece, z, y)  # no temperature at all


@covers('12_calibration', 'check_3')
def test_11_predicted_order_of_the_temperatures():
    ns = checks('12_calibration')
    sharp = {'erm': 1.0, 'uls-0.1': 2.0, 'mixup': 2.0, 'pls': 4.0}  # T near 1/sharp
    holdout = {m: _logits(s, seed=i) for i, (m, s) in enumerate(sharp.items())}
    temps = {m: ns['fit_temperature_lbfgs'](*holdout[m])['T'] for m in holdout}
    se = {m: ns['log_t_se'](*holdout[m], temps[m]) for m in temps}
    assert abs(math.log(temps['mixup'] / temps['uls-0.1'])) < 2 * math.hypot(se['mixup'], se['uls-0.1'])
    ns['check_3'](['pls', 'mixup', 'uls-0.1', 'erm'], temps, holdout)
    ns['check_3'](['pls', 'uls-0.1', 'mixup', 'erm'], temps, holdout)  # within their noise: either order
    fails(ns['check_3'], ['erm', 'uls-0.1', 'mixup', 'pls'], temps, holdout)  # the softest target given the largest T
    fails(ns['check_3'], ['pls', 'erm', 'mixup', 'uls-0.1'], temps, holdout)  # ERM not the largest
    fails(ns['check_3'], ['pls', 'mixup', 'erm'], temps, holdout)  # a method left out
    one_t = {m: temps['erm'] for m in holdout}  # fitted on one method, used for all
    fails(ns['check_3'], ['pls', 'mixup', 'uls-0.1', 'erm'], one_t, holdout)


# 12 ood


@covers('13_ood', 'check_1')
def test_12_auroc_of_no_and_of_perfect_information():
    ns = checks('13_ood')
    ns['check_1'](0.5, 1.0)
    fails(ns['check_1'], 0.0, 1.0)  # "no information, no area"
    fails(ns['check_1'], 0.5, 0.0)  # the foreign images taken as the positives


@covers('13_ood', 'check_2')
def test_12_fpr_at_80_tpr_by_hand():
    ns = checks('13_ood')
    ns['check_2'](1 / 3)
    inside, outside = np.array([0.95, 0.9, 0.85, 0.8, 0.3]), np.array([0.9, 0.5, 0.2])
    fails(ns['check_2'], float((outside >= np.quantile(inside, 0.8)).mean()))  # the 80th percentile as threshold
    fails(ns['check_2'], 2 / 3)  # threshold at the lowest score
    fails(ns['check_2'], 0.2)  # 1 - TPR


@covers('13_ood', 'check_3')
def test_12_logits_whose_auroc_a_temperature_changes():
    ns = checks('13_ood')
    z_in = torch.tensor([[0.5, 0.0] + [-10.0] * 8])
    z_out = torch.tensor([[2.0] + [0.0] * 9])
    ns['check_3'](z_in, z_out, (1.0, 0.3))
    shape = torch.tensor([[2.0] + [0.0] * 9])
    fails(ns['check_3'], shape, shape / 2, (1.0, 0.3))  # one shape, scaled: a temperature keeps their order
    fails(ns['check_3'], shape, shape / 2, (1.0, 1e-4))  # a tie of two scores rounded to 1


# 13 explore


@covers('14_explore', 'check_1')
def test_13_uls_weight():
    ns = checks('14_explore')
    u, K = ns['default_u'](), 10
    q = (ns['one_hot'](torch.tensor([3]), K) + ns['one_hot'](torch.tensor([7]), K)) / 2
    gold = float(ns['pls_targets'](q, u[None], 0.5)[0, 3])
    ns['check_1']((1 - gold) * K / (K - 1))
    for wrong in (1 - gold, gold):  # eq. 1 without its a/K term; the gold mass itself
        fails(ns['check_1'], wrong)


@covers('14_explore', 'check_2')
def test_13_same_label_pair():
    ns = checks('14_explore')
    d = ns['digits']
    y = d.y_train
    j = int((y == y[0]).nonzero()[1])
    other = int((y != y[0]).nonzero()[0])
    one = ns['one_hot'](y[[0]], 10)[0]
    ns['check_2'](0, j, one, d)
    fails(ns['check_2'], 0, 0, one, d)  # one image twice
    fails(ns['check_2'], 0, other, one, d)  # two labels
    fails(ns['check_2'], 0, j, one / 2, d)  # "a midpoint halves the label"


@covers('14_explore', 'check_3')
def test_13_test_ece_temperature():
    ns = checks('14_explore')
    test, holdout = _logits(3.0, seed=1), _logits(3.0, seed=2)
    grid = 10 ** np.arange(-2, 1.3 + 1e-9, 0.02)
    eces = [ns['ece']((test[0].double() / T).softmax(1), test[1]) for T in grid]
    best = grid[int(np.argmin(eces))]
    T_hold = ns['fit_temperature'](*holdout)['T']
    ns['check_3'](best, T_hold, test, holdout)
    fails(ns['check_3'], T_hold, T_hold, test, holdout)  # the holdout's temperature given as the test ECE's best
    fails(ns['check_3'], best, best * 1.1, test, holdout)  # the test ECE's best given as the holdout's fit


# 14 report


@covers('15_report', 'check_1')
def test_14_binomial_standard_error():
    ns = checks('15_report')
    ns['check_1'](lambda e, n: 100 * math.sqrt(e * (1 - e) / n))
    fails(ns['check_1'], lambda e, n: 100 * math.sqrt(e / n))  # the (1 - e) left out: 1% off at 2%, 20% at 30%
    fails(ns['check_1'], lambda e, n: math.sqrt(e * (1 - e) * n))  # in images
    fails(ns['check_1'], lambda e, n: math.sqrt(e * (1 - e) / n))  # a fraction, not points


@covers('15_report', 'check_2')
def test_14_paired_ci_against_scipy():
    ns = checks('15_report')
    stats = ns['stats']
    rng = np.random.default_rng(1)
    a = rng.normal(2.0, 0.3, 5)
    b = a + rng.normal(-0.2, 0.2, 5)
    ns['check_2'](tuple(stats.ttest_rel(a, b).confidence_interval(0.95)), a, b)
    fails(ns['check_2'], tuple(stats.ttest_ind(a, b).confidence_interval(0.95)), a, b)  # not paired
    fails(ns['check_2'], tuple(stats.ttest_rel(b, a).confidence_interval(0.95)), a, b)  # b - a


@covers('15_report', 'check_3')
def test_14_seeds_for_a_narrow_interval():
    ns = checks('15_report')
    stats = ns['stats']
    ns['check_3'](12)
    z = next(n for n in range(2, 100) if 1.96 * 0.3 / math.sqrt(n) < 0.2)
    assert z != 12
    fails(ns['check_3'], z)  # 1.96 instead of Student's t
    df_n = next(n for n in range(2, 100) if stats.t.ppf(0.975, n) * 0.3 / math.sqrt(n) < 0.2)
    assert df_n != 12
    fails(ns['check_3'], df_n)  # n degrees of freedom, not n - 1


# 15 mnist and 16 regime: exercises on the evidence, committed summaries checked against what the library makes of them


@covers('16_mnist', 'check_1', 'check_2', 'check_3')
def test_15_row_mcnemar_and_interval_by_hand():
    ns = checks('16_mnist')
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


@covers('17_regime', 'check_1', 'check_2', 'check_3')
def test_16_seeds_needed_bn_and_a_reading():
    ns = checks('17_regime')
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


@covers('00_game', 'check_1', 'check_2', 'check_3')
def test_00_points_confidence_and_a_midpoint_target():
    ns = checks('00_game')
    runs = {
        m: [train(TrainConfig(method=m, seed=s, epochs=2), ns['digits'], progress=False) for s in range(3)]
        for m in ('erm', 'pls')
    }
    n = len(runs['erm'][0].labels)
    mean = {m: np.mean([t.history[-1]['error'] for t in ts]) for m, ts in runs.items()}
    gap = abs(mean['erm'] - mean['pls']) * n / 100
    ns['check_1'](n / 100, gap, runs)
    fails(ns['check_1'], 100 / n, gap, runs)  # points per image, not images per point
    fails(ns['check_1'], n / 100, abs(mean['erm'] - mean['pls']), runs)  # the gap left in points
    share = {
        m: (torch.cat([t.logits.softmax(1).max(1).values for t in ts]) > 0.9).double().mean().item()
        for m, ts in runs.items()
    }
    ns['check_2'](share, runs)
    fails(ns['check_2'], {'erm': share['pls'], 'pls': share['erm']}, runs)  # the methods swapped
    gold = {
        m: torch.cat([t.logits.softmax(1).gather(1, t.labels[:, None]).squeeze(1) for t in ts])
        for m, ts in runs.items()
    }
    fails(
        ns['check_2'], {m: (g > 0.9).double().mean().item() for m, g in gold.items()}, runs
    )  # the true class's probability
    ns['check_3'](0.3, 0.05)
    fails(ns['check_3'], 0.55, 0.1)  # q + u without halving
    fails(ns['check_3'], 0.5, 0.0)  # the midpoint's label alone, the learned half forgotten
