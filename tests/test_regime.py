"The regime study's machinery: the training subset, the clean-training diagnostic, BatchNorm recomputed, its rules."

import dataclasses
import re
import subprocess
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pls_edu.data import with_train_subset
from pls_edu.datasets import load_dataset
from pls_edu.presets import PRESETS, preset_runs
from pls_edu.regime import RULES, SETTINGS
from pls_edu.results import load_logits, read_summary, run_dir, write_summary, collect
from pls_edu.runs import run_one
from pls_edu.diagnostics import recalibrate_bn
from pls_edu.train import TrainConfig, Trainer

ROOT = Path(__file__).resolve().parent.parent
NB = ROOT / 'nbs' / '17_regime.ipynb'


def test_train_subset_is_stratified_fixed_and_the_same_for_every_method(digits):
    subsets = [
        Trainer(TrainConfig(method=m, seed=s, train_subset=200), digits, progress=False).data
        for m, s in (('erm', 0), ('mixup', 1), ('pls', 2))
    ]
    for d in subsets[1:]:
        assert torch.equal(d.x_train, subsets[0].x_train) and torch.equal(d.y_train, subsets[0].y_train)
    counts = torch.bincount(subsets[0].y_train, minlength=10).double()
    share = torch.bincount(digits.y_train, minlength=10).double() * 200 / len(digits.y_train)
    assert counts.sum() == 200 and ((counts - share).abs() < 1).all()
    assert torch.equal(subsets[0].x_test, digits.x_test)  # the test split is untouched
    # every image of the subset is one of the training images, none repeated
    flat = {bytes(x.flatten().tolist()) for x in digits.x_train}
    assert all(bytes(x.flatten().tolist()) in flat for x in subsets[0].x_train)


@pytest.mark.parametrize(
    'n,msg',
    [
        (5000, 'train_subset 5000 is not possible for digits: it must be at least its 10 classes and at most its 1347'),
        (9, 'train_subset 9 is not possible for digits: it must be at least its 10 classes'),
        (0, 'train_subset must be a positive integer or None, got 0'),
    ],
)
def test_train_subset_refuses_a_size_it_cannot_give(digits, n, msg):
    with pytest.raises(ValueError, match=re.escape(msg)):
        Trainer(TrainConfig(train_subset=n), digits, progress=False)


def test_a_subset_the_size_of_the_classes_takes_one_image_of_each(digits):
    d = with_train_subset(digits, 10)
    assert sorted(d.y_train.tolist()) == list(range(10))


@pytest.fixture(scope='module')
def tiny_run(real_root, tmp_path_factory):
    "A Mixup run on 600 real MNIST training images, 2 epochs, scoring 300 of them clean: through `run_one`, as a sweep."
    cfg = TrainConfig(
        dataset='mnist', model='small-cnn-g3', method='mixup', epochs=2, train_subset=600, clean_train=300
    )
    out = tmp_path_factory.mktemp('tiny')
    data = load_dataset('mnist', real_root)
    r = run_one(cfg, out, data)['result']
    t = Trainer(cfg, data, progress=False)  # the same run again, kept in memory
    t.fit()
    return cfg, out, data, r, t


def test_clean_training_error_and_loss_are_recomputed_independently(tiny_run):
    cfg, out, data, r, t = tiny_run
    assert [h['train_clean_error'] for h in r['history']] == [h['train_clean_error'] for h in t.history]
    # the clean images by hand: the training subset's own stratified 300, normalized as the loader does
    sub = with_train_subset(with_train_subset(data, 600), 300)
    x = (sub.x_train.double() / 255 - torch.tensor(data.mean).view(1, -1, 1, 1)) / torch.tensor(data.std).view(
        1, -1, 1, 1
    )
    t.model.eval()
    with torch.no_grad():
        z = t.model(x.float()).double()
    err = 100 * (z.argmax(1) != sub.y_train).double().mean().item()
    loss = F.cross_entropy(z, sub.y_train).item()
    last = t.history[-1]
    assert last['train_clean_error'] == pytest.approx(err, abs=1e-9)
    assert last['train_clean_loss'] == pytest.approx(loss, rel=1e-5)
    assert len(t.clean_dl.x) == 300 and t.clean_dl.pad == 0  # clean: no crop


def test_batchnorm_recalibration_is_the_clean_images_own_statistics(tiny_run):
    cfg, out, data, r, t = tiny_run
    before = {k: v.clone() for k, v in t.model.state_dict().items()}
    fixed = recalibrate_bn(t.model, t.clean_dl)
    x = torch.cat([xb for xb, _ in t.clean_dl])
    with torch.no_grad():
        a = fixed.backbone[0](x).double().transpose(0, 1).reshape(16, -1)  # the first conv's output
    bn = fixed.backbone[1]
    assert torch.allclose(bn.running_mean.double(), a.mean(1), atol=1e-6, rtol=1e-6)
    assert torch.allclose(bn.running_var.double(), a.var(1), atol=1e-6, rtol=1e-5)
    for k, v in fixed.state_dict().items():
        if 'running' not in k and 'num_batches' not in k:
            assert torch.equal(v, before[k]), k  # no weight changes
    assert all(torch.equal(v, before[k]) for k, v in t.model.state_dict().items())  # the trained model untouched
    # the run reports the recalibrated model's test error, and keeps its logits
    z, y = load_logits(run_dir(out, cfg), 'test_bn_recal')
    assert r['final']['error_bn_recal'] == pytest.approx(100 * (z.argmax(1) != y).double().mean().item())


def test_a_summary_keeps_the_diagnostics(tiny_run, tmp_path):
    cfg, out, data, r, t = tiny_run
    res = collect(out, with_predictions=True, log=lambda m: None)
    write_summary(tmp_path / 's.json', res)
    back, _ = read_summary(tmp_path / 's.json')
    assert back[0]['train_clean_errors'] == [h['train_clean_error'] for h in r['history']]
    assert back[0]['train_clean_losses'] == [h['train_clean_loss'] for h in r['history']]
    assert np.array_equal(back[0]['pred_bn_recal'], res[0]['pred_bn_recal'])
    assert back[0]['id'] == run_dir(out, cfg).name


def test_every_study_preset_is_one_of_the_registered_runs():
    "The presets the pre-registration names exist, with the diagnostics on and the registered seeds."
    cells = [c.source for c in nbformat.read(NB, 4).cells]
    prereg = next(s for s in cells if s.startswith('## Pre-registration'))
    for name in ('regime-data', 'regime-readings', 'regime-lr', 'regime-capacity', 'regime-budget'):
        assert f'`{name}`' in prereg
        runs = preset_runs(name)
        assert all(r.config.clean_train == 10_000 and r.config.dataset == 'mnist' for r in runs)
    assert {r.config.seed for r in preset_runs('regime-data')} == set(RULES['seeds'])
    assert {r.config.lr for r in preset_runs('regime-lr')} == set(RULES['lr_grid'])
    assert all(p in PRESETS for s, p in SETTINGS.items() if s != 'lr-own')


def _git(*args):
    return subprocess.run(['git', *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout


def test_the_rules_were_committed_before_any_result_of_the_study():
    "The commit that registered the rules is an ancestor of every commit that added a study result."
    if not (ROOT / '.git').exists():
        pytest.skip('not a git checkout')
    first = _git(
        'log',
        '--reverse',
        '--format=%H',
        '-S',
        '## Pre-registration',
        '--',
        'nbs/16_regime.ipynb',
        'nbs/17_regime.ipynb',
        'nbs/34_regime.ipynb',
    ).split()
    assert first, 'no commit added the pre-registration'
    added = _git('log', '--format=%H', '--diff-filter=A', '--', 'nbs/measured/regime-*.json').split()
    for c in added:
        assert subprocess.run(['git', 'merge-base', '--is-ancestor', first[0], c], cwd=ROOT).returncode == 0, c
        assert c != first[0]


def test_the_verdict_reads_its_thresholds_from_the_registered_rules():
    "The verdict cells call the registered rules and write no threshold of their own."
    cells = [c for c in nbformat.read(NB, 4).cells if c.cell_type == 'code']
    verdict = [
        c.source
        for c in cells
        if 'study_verdict(' in c.source and '#| export' not in c.source and 'test_eq' not in c.source
    ]
    assert verdict, 'no cell renders the verdict'
    for s in verdict:
        assert 'setting_verdict(' in s or 'verdicts' in s
        assert not re.search(r'(?<![\w.])0\.\d+', s), 'a threshold written into the verdict cell'
    body = '\n'.join(c.source for c in cells)
    assert 'classify(' in body and 'RULES' in body


def _pilot_best():
    "Each method's best rate (`best_rate`) in the committed regime-lr pilot, on its 6,000 validation images."
    from pls_edu.regime import best_rate

    pilot, _ = read_summary(ROOT / 'nbs' / 'measured' / 'regime-lr.json')
    val = {m: {} for m in ('erm', 'mixup', 'pls')}
    for r in pilot:
        val[r['config']['method']][r['config']['lr']] = r['holdout_errors'][-1]
    return {m: best_rate(v, 6000)['best'] for m, v in val.items()}


def test_the_own_rate_preset_runs_each_method_at_the_best_rate_of_the_committed_pilot():
    "regime-lr-own's rates are not copied by hand: each is best_rate of its method in nbs/measured/regime-lr.json."
    runs = preset_runs('regime-lr-own')
    assert sorted({r.config.seed for r in runs}) == [0, 1, 2] and {r.config.epochs for r in runs} == {15}
    for m, best in _pilot_best().items():
        assert {r.config.lr for r in runs if r.config.method == m} == {best}, m


def test_the_edge_pilot_extends_the_grid_for_exactly_the_methods_whose_best_rate_sat_at_its_top():
    "regime-lr-edge is regime-lr's recipe one rate higher, for the methods at the grid's top edge in the committed pilot."
    top = max(RULES['lr_grid'])
    at_top = {m for m, best in _pilot_best().items() if best == top}
    edge = preset_runs('regime-lr-edge')
    assert {r.config.method for r in edge} == at_top
    assert all(r.config.lr > top for r in edge)
    grid = {(r.config.method, r.config.lr): r.config for r in preset_runs('regime-lr')}
    for r in edge:
        same = dataclasses.replace(r.config, lr=top)
        assert same == grid[r.config.method, top], r.config
