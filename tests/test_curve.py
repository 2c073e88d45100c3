"The learning curve's machinery (notebook 18_curve): nested training sets, scoring every k-th epoch, its rules."

import re
import subprocess
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch

from pls_edu.config import scored_epochs
from pls_edu.curve import COMPARISONS, RULES, conclusion, difference, plain, size_findings, sizes_where
from pls_edu.data import stratified_subset
from pls_edu.datasets import load_dataset
from pls_edu.preflight import FALLBACK_S_PER_IMAGE, estimate_run
from pls_edu.presets import CURVE_COMMITTED, CURVE_SIZES, PRESETS, preset_runs
from pls_edu.results import collect, read_summary, write_summary
from pls_edu.runs import run_one
from pls_edu.traincli import train_parser
from pls_edu.train import TrainConfig, Trainer, train

ROOT = Path(__file__).resolve().parent.parent
NB = ROOT / 'nbs' / '18_curve.ipynb'
MEASURED = ROOT / 'nbs' / 'measured'


# ## The training sets


def test_the_training_subsets_nest_keep_each_class_share_and_are_the_same_for_every_method_and_seed(real_root):
    data = load_dataset('mnist', real_root)
    labels = data.y_train.numpy()
    full = np.bincount(labels, minlength=10)
    subsets = {n: stratified_subset(labels, n, seed=0) for n in RULES['sizes']}
    for small, large in zip(RULES['sizes'], RULES['sizes'][1:], strict=False):
        assert set(subsets[small]) <= set(subsets[large]), (small, large)
    for n, idx in subsets.items():
        counts = np.bincount(labels[idx], minlength=10)
        assert counts.sum() == n and np.abs(counts - full * n / len(labels)).max() < 1, n
    # the trainer draws the subset with seed 0 whatever the run's method and seed
    trained = [
        Trainer(TrainConfig(dataset='mnist', model='small-cnn-g3', method=m, seed=s, train_subset=1_000), data).data
        for m, s in (('erm', 0), ('mixup', 3), ('pls', 4))
    ]
    for d in trained:
        assert torch.equal(d.y_train, data.y_train[torch.from_numpy(subsets[1_000])])
        assert torch.equal(d.x_train, trained[0].x_train)


def test_another_subset_seed_would_not_nest():
    "The nesting is a property of seed 0's fixed order per class, not of any draw: a fresh seed per size breaks it."
    labels = np.arange(6_000) % 10
    assert not set(stratified_subset(labels, 500, seed=1)) <= set(stratified_subset(labels, 1_000, seed=2))
    assert set(stratified_subset(labels, 500, seed=0)) <= set(stratified_subset(labels, 1_000, seed=0))


# ## Scoring every k-th epoch


def test_eval_every_scores_every_kth_epoch_and_the_last_and_trains_the_same(digits):
    every = train(TrainConfig(method='pls', epochs=5), digits, progress=False)
    sparse = train(TrainConfig(method='pls', epochs=5, eval_every=2), digits, progress=False)
    assert [h['epoch'] for h in sparse.history if 'error' in h] == [2, 4, 5] == scored_epochs(5, 2)
    assert [h['epoch'] for h in sparse.history] == [1, 2, 3, 4, 5]  # every epoch keeps its loss and time
    assert 'error' not in sparse.history[2] and 'train_loss' in sparse.history[2]
    assert torch.equal(sparse.logits, every.logits)  # scoring less often changes nothing that is trained
    assert [h['train_loss'] for h in sparse.history] == [h['train_loss'] for h in every.history]
    f = sparse.final_metrics()
    assert f['error'] == every.final_metrics()['error']
    assert f['best_epoch'] in (2, 4, 5)


@pytest.mark.parametrize('bad', [0, -3])
def test_eval_every_refuses_zero_and_negative_values(digits, bad):
    with pytest.raises(ValueError, match=re.escape(f'eval_every must be a positive integer, got {bad}')):
        Trainer(TrainConfig(eval_every=bad), digits, progress=False)


def test_eval_every_refuses_a_value_of_the_wrong_type(digits):
    with pytest.raises(TypeError, match='parameter eval_every must be an integer'):
        Trainer(TrainConfig(eval_every='2'), digits, progress=False)


def test_pls_train_has_an_eval_every_option():
    args = train_parser().parse_args(['--eval-every', '20'])
    assert args.eval_every == 20
    assert 'every this many epochs' in train_parser().format_help().replace('\n', ' ').replace('  ', ' ')


def test_a_summary_keeps_the_scored_epochs_beside_their_errors(digits, tmp_path):
    cfg = TrainConfig(method='erm', epochs=5, eval_every=2, clean_train=100)
    r = run_one(cfg, tmp_path / 'runs', digits)['result']
    res = collect(tmp_path / 'runs', with_predictions=True, log=lambda m: None)
    write_summary(tmp_path / 's.json', res)
    back, _ = read_summary(tmp_path / 's.json')
    scored = [h for h in r['history'] if 'error' in h]
    assert back[0]['scored_epochs'] == [2, 4, 5]
    assert back[0]['test_errors'] == [h['error'] for h in scored]
    assert back[0]['train_clean_errors'] == [h['train_clean_error'] for h in scored]
    assert r['train_seconds'] == pytest.approx(sum(h['train_time'] for h in r['history']))


def test_the_plan_counts_only_the_scored_epochs():
    base = dict(dataset='mnist', model='small-cnn-g3', epochs=100, train_subset=1_000, clean_train=10_000)
    every, sparse = (estimate_run(TrainConfig(**base, eval_every=k), 'cpu')[0] for k in (1, 20))
    s = FALLBACK_S_PER_IMAGE['cpu']['small-cnn-g3']['1x28x28']
    eval_one = s * (10_000 + 1_000) / 3  # one scored epoch: the test split and the clean subset
    assert every - sparse == pytest.approx((100 - 5) * eval_one)


def test_the_cpu_price_of_the_small_cnn_is_the_measured_channels_last_figure():
    "The plan's seconds per image are those regime-budget's channels-last runs took (train_seconds per image)."
    runs, _ = read_summary(MEASURED / 'regime-budget.json')
    per = [r['train_seconds'] / (r['config']['epochs'] * 60_000) for r in runs if r['config']['channels_last']]
    assert len(per) == 9
    assert FALLBACK_S_PER_IMAGE['cpu']['small-cnn-g3']['1x28x28'] == pytest.approx(np.mean(per), rel=0.05)


# ## The presets


def test_the_presets_are_the_registered_runs():
    assert tuple(CURVE_SIZES) == RULES['sizes']
    for n, epochs in CURVE_SIZES.items():
        runs = preset_runs(f'curve-{n}')
        seeds = range(3, 5) if n in CURVE_COMMITTED else RULES['seeds']
        assert sorted({r.config.seed for r in runs}) == list(seeds)
        assert sorted({r.config.method for r in runs}) == ['erm', 'mixup', 'pls']
        assert {(r.config.epochs, r.config.train_subset, r.config.lr) for r in runs} == {
            (epochs, None if n == 60_000 else n, None)
        }
        assert 0.85e6 <= n * epochs <= 1e6
        assert all(40 <= len(scored_epochs(epochs, r.config.eval_every)) <= 60 or epochs < 40 for r in runs)


@pytest.mark.parametrize('n', sorted(CURVE_COMMITTED))
def test_the_new_seeds_have_the_committed_presets_recipe(n):
    "Seeds 3-4 at 10,000 and 60,000 images train what the committed seeds 0-2 trained, measurement apart."
    apart = ('seed', 'eval_every', 'clean_train', 'channels_last')
    committed, _ = read_summary(MEASURED / f'{CURVE_COMMITTED[n]}.json')
    for r in preset_runs(f'curve-{n}'):
        same = [c for c in committed if c['config']['method'] == r.config.method]
        assert same, r.config.method
        want = {k: v for k, v in same[0]['config'].items() if k not in apart}
        got = {k: v for k, v in r.config.resolved().__dict__.items() if k in want}
        assert got == want


# ## The rules


def _run(method, seed, wrong, n=400):
    labels = np.arange(n) % 10
    pred = labels.copy()
    pred[:wrong] = (labels[:wrong] + 1) % 10
    return {
        'config': {'method': method, 'seed': seed},
        'final': {'error': 100 * wrong / n},
        'pred': pred,
        'labels': labels,
    }


def _made_up(gaps):
    "ERM errs on 20 of 400 images at every seed; each other method on 20 + its gap."
    runs = [_run('erm', s, 20) for s in RULES['seeds']]
    for m, g in gaps.items():
        runs += [_run(m, s, 20 + g(s)) for s in RULES['seeds']]
    return runs


def test_a_clear_gain_is_a_finding_and_a_seed_missing_is_not_read():
    runs = _made_up({'mixup': lambda s: -12 - s % 2, 'pls': lambda s: -12 + s % 2})
    f = size_findings(runs)
    assert f[('mixup', 'erm')]['class'] == 'better' and f[('pls', 'erm')]['class'] == 'better'
    assert f[('pls', 'mixup')]['class'] == 'within noise'
    assert difference(runs[:-1], 'pls', 'erm') is None  # PLS's seed 4 missing


def test_a_noisy_gap_is_within_noise_and_never_called_lower():
    runs = _made_up({'mixup': lambda s: (-6, 5, -6, 5, -3)[s], 'pls': lambda s: 0})
    d = difference(runs, 'mixup', 'erm')
    assert d['diff'] < 0 and d['by_seed'][0] < 0 < d['by_seed'][1]
    assert d['class'] == 'within noise'
    text = plain(d, 'mixup', 'erm', 1_000)
    assert 'within noise' in text and not re.search(r'\b(lower|higher|better|worse|beats?)\b', text)


def test_the_conclusion_names_each_finding_with_its_sizes_and_only_those():
    better = {'diff': -0.5, 'by_seed': (-0.8, -0.2), 'over_images': (-0.7, -0.3), 'class': 'better'}
    noise = {'diff': -0.3, 'by_seed': (-0.9, 0.3), 'over_images': (-0.6, -0.1), 'class': 'within noise'}
    findings = {
        1_000: {('mixup', 'erm'): better, ('pls', 'erm'): noise, ('pls', 'mixup'): noise},
        2_000: {p: noise for p in COMPARISONS},
        5_000: {p: None for p in COMPARISONS},
    }
    text = conclusion(findings)
    assert sizes_where(findings, ('mixup', 'erm')) == [1_000]
    assert '(Mixup below ERM by both intervals) at 1,000 images.' in text
    assert "(PLS below ERM by both intervals) at no size." in text
    assert 'Sizes read so far: 1,000, 2,000 images' in text  # 5,000 is not read
    assert 'At 1,000, 2,000 images, PLS was not shown different from ERM (within noise).' in text
    assert conclusion({5_000: findings[5_000]}).startswith('No size has all five seeds')


def test_the_rules_were_committed_before_any_result_of_the_study():
    "The commit that registered the rules is an ancestor of every commit that added a learning-curve summary."
    if not (ROOT / '.git').exists():
        pytest.skip('not a git checkout')

    def git(*args):
        return subprocess.run(['git', *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout

    first = git('log', '--reverse', '--format=%H', '-S', '## Pre-registration', '--', 'nbs/*_curve.ipynb').split()
    assert first, 'no commit added the pre-registration'
    added = git(
        'log', '--format=%H', '--diff-filter=A', '--', 'nbs/measured/curve-*.json', 'nbs/measured/parts/curve-*'
    ).split()
    for c in added:
        assert c != first[0]
        assert subprocess.run(['git', 'merge-base', '--is-ancestor', first[0], c], cwd=ROOT).returncode == 0, c


def test_the_conclusion_reads_its_thresholds_from_the_registered_rules():
    cells = [c for c in nbformat.read(NB, 4).cells]
    prereg = next(c.source for c in cells if c.source.startswith('## Pre-registration'))
    for n in CURVE_SIZES:
        assert f'`curve-{n}`' in prereg
    assert any("'registered':" in c.source and '#| export' in c.source for c in cells)
    rendering = [
        c.source
        for c in cells
        if c.cell_type == 'code'
        and ('conclusion(' in c.source or 'plain(' in c.source)
        and '#| export' not in c.source
        and 'test_eq' not in c.source
    ]
    assert rendering, 'no cell renders the conclusion'
    for s in rendering:
        assert not re.search(r'(?<![\w.])0\.\d+', s), 'a threshold written into a rendering cell'
    assert PRESETS['curve-1000']['config']['clean_train'] == 10_000


# ## The exercises' checks reject the likely wrong answers


def _solution_checks():
    "The namespace of 18_curve_solutions after its import cell and its `check_N` cells."
    nb = nbformat.read(ROOT / 'nbs' / 'solutions' / '18_curve_solutions.ipynb', 4)
    cells = [c.source for c in nb.cells if c.cell_type == 'code']
    ns = {}
    exec(cells[0], ns)
    for s in cells[1:]:
        if re.match(r'def check_\d+\(', s):
            exec(s, ns)
    return ns


@pytest.mark.parametrize(
    'n,right,wrong',
    [
        (1, (0.4997,), (np.sqrt(3 / 5),)),  # forgetting that the t quantile falls with more seeds
        (2, (0.9, 1 - 0.95**18), (0.9, 0.05)),  # the chance of one comparison taken for that of any
        (2, (0.9, 1 - 0.95**18), (0.05, 0.05)),  # the rate taken for the count
        (3, ('within noise', None), ('better', None)),  # one interval below 0 read as a finding
    ],
)
def test_each_exercise_check_passes_the_right_answer_and_fails_a_likely_wrong_one(n, right, wrong):
    ns = _solution_checks()
    check = ns[f'check_{n}']
    if n == 3:
        d = {'diff': -0.30, 'by_seed': (-0.62, 0.02), 'over_images': (-0.45, -0.15), 'class': 'within noise'}
        sentence = ns['plain'](d, 'pls', 'erm', 3_000)
        right, wrong = (right[0], sentence), (wrong[0], sentence.replace('was not shown different from', 'beat'))
    check(*right)
    with pytest.raises(AssertionError):
        check(*wrong)


def test_every_exercise_of_the_lesson_has_a_check():
    lesson = nbformat.read(NB, 4)
    exercises = next(
        c.source for c in lesson.cells if c.source.startswith('## Exercises') or '## Exercises' in c.source
    )
    count = len(re.findall(r'^\d+\. ', exercises.split('## Exercises', 1)[1], re.M))
    assert sorted(k for k in _solution_checks() if k.startswith('check_')) == [
        f'check_{i}' for i in range(1, count + 1)
    ]
