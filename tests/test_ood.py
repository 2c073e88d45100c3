"Out-of-distribution scores against scikit-learn's ROC code, foreign image sources, and scoring finished runs."

import numpy as np
import pytest
import torch

from pls_edu.ood import auroc, fpr_at_tpr, model_logits, natural_patches, ood_scores, ood_summary, ood_table
from pls_edu.results import load_run_model, predictions, run_dir
from pls_edu.runs import ood_images, run_one
from pls_edu.runspec import RunSpec
from pls_edu.train import TrainConfig


@pytest.mark.parametrize('seed', range(4))
def test_auroc_and_fpr_against_sklearn(seed):
    from sklearn.metrics import roc_auc_score, roc_curve

    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, 30, 700) / 30, rng.integers(0, 25, 400) / 30  # many ties
    y, s = np.r_[np.ones(700), np.zeros(400)], np.r_[a, b]
    assert auroc(a, b) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    fpr, tpr, _ = roc_curve(y, s)
    assert fpr_at_tpr(a, b) == pytest.approx(fpr[np.searchsorted(tpr, 0.95)])


def test_hand_made_cases():
    assert auroc([3, 4], [1, 2]) == 1
    assert auroc([1, 2], [3, 4]) == 0
    assert auroc([1, 1], [1]) == 0.5
    # 20 in-distribution scores 0.05..1.0: the 95% threshold is the 19th highest, 0.10
    assert fpr_at_tpr(np.arange(1, 21) / 20, [0.05, 0.1, 0.5, 0.09]) == 0.5
    with pytest.raises(ValueError, match='need scores on both sides'):
        fpr_at_tpr([0.5], [])


def test_patches_are_real_and_shaped():
    p = natural_patches(3, (32, 32), n=20)
    assert p.shape == (20, 3, 32, 32) and p.dtype == torch.uint8 and p.float().std() > 10
    assert torch.equal(p, natural_patches(3, (32, 32), n=20))  # seeded
    with pytest.raises(ValueError, match="OOD source 'mnist5k' has 1x28x28 images but the model takes 1x8x8"):
        ood_images('mnist5k', 1, (8, 8))


def test_scoring_a_finished_run(tmp_path, digits):
    c = TrainConfig(method='pls', epochs=3, holdout=0.2)
    run_one(RunSpec(c, ood='patches'), tmp_path, digits)
    d = run_dir(tmp_path, c)
    rec = predictions(d)
    assert rec['ood_source'] == 'patches'
    assert rec['ood'].shape == (2000, 10)
    # the saved logits are the finished model's on the same images
    model, r = load_run_model(d)
    again = model_logits(model, natural_patches(1, (8, 8)), r['data']['mean'], r['data']['std'])
    assert torch.allclose(again, rec['ood'], atol=1e-5)
    s = ood_scores(rec['test'][0], rec['ood'], temperature=0.5)
    assert 0 <= s['raw']['auroc'] <= 1
    assert s['ts']['T'] == 0.5
    si, so = s['raw']['in'], s['raw']['out']
    assert s['raw']['auroc'] == pytest.approx(auroc(si, so))
    assert len(si) == len(digits.y_test)
    # a temperature below 1 sharpens every softmax: both means rise
    assert s['ts']['mean_in'] > s['raw']['mean_in']
    assert s['ts']['mean_out'] > s['raw']['mean_out']
    rows = ood_table([{**rec, 'T': 0.5}, rec])
    assert rows[0]['auroc_ts'] == pytest.approx(s['ts']['auroc'])
    assert rows[1]['auroc_ts'] is None
    summary = ood_summary(rows)
    assert summary[0]['auroc'] == pytest.approx(s['raw']['auroc'])
