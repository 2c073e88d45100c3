"Out-of-distribution scores against scikit-learn's ROC code, foreign image sources, and scoring finished runs."
import numpy as np
import pytest
import torch

from pls_edu.ood import auroc, fpr_at_tpr, natural_patches, ood_images, ood_logits, ood_scores
from pls_edu.runs import run_one, run_dir
from pls_edu.train import TrainConfig


@pytest.mark.parametrize('seed', range(4))
def test_auroc_and_fpr_against_sklearn(seed):
    from sklearn.metrics import roc_auc_score, roc_curve
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, 30, 700) / 30, rng.integers(0, 25, 400) / 30        # many ties
    y, s = np.r_[np.ones(700), np.zeros(400)], np.r_[a, b]
    assert auroc(a, b) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    fpr, tpr, _ = roc_curve(y, s)
    assert fpr_at_tpr(a, b) == pytest.approx(fpr[np.searchsorted(tpr, 0.95)])


def test_hand_made_cases():
    assert auroc([3, 4], [1, 2]) == 1 and auroc([1, 2], [3, 4]) == 0 and auroc([1, 1], [1]) == 0.5
    # 20 in-distribution scores 0.05..1.0: the 95% threshold is the 19th highest, 0.10
    assert fpr_at_tpr(np.arange(1, 21) / 20, [0.05, 0.1, 0.5, 0.09]) == 0.5
    with pytest.raises(ValueError, match='need scores on both sides'): fpr_at_tpr([0.5], [])


def test_patches_are_real_and_shaped():
    p = natural_patches(3, (32, 32), n=20)
    assert p.shape == (20, 3, 32, 32) and p.dtype == torch.uint8 and p.float().std() > 10
    assert torch.equal(p, natural_patches(3, (32, 32), n=20))                 # seeded
    with pytest.raises(ValueError, match="OOD source 'mnist5k' has 1x28x28 images but the model takes 1x8x8"):
        ood_images('mnist5k', 1, (8, 8))


def test_scoring_a_finished_run(tmp_path, digits):
    c = TrainConfig(method='pls', epochs=3, holdout=0.2)
    run_one(c, tmp_path, digits, progress=False)
    d = run_dir(tmp_path, c)
    z = ood_logits(d, 'patches')
    assert z.shape == (2000, 10) and (d/'ood_patches.npz').exists()
    assert torch.equal(ood_logits(d, 'patches'), z)                            # from the cache
    s = ood_scores(d, 'patches')
    assert 0 <= s['raw']['auroc'] <= 1 and s['ts'] is not None and s['ts']['T'] < 1
    si, so = s['raw']['in'], s['raw']['out']
    assert s['raw']['auroc'] == pytest.approx(auroc(si, so)) and len(si) == len(digits.y_test)
