"Derangements, midpoints (eq. 6-7) and Mixup against torchvision.transforms.v2.MixUp."

import numpy as np
import pytest
import torch
from torchvision.transforms import v2

from pls_edu.midpoints import derangement, midpoint, mixup, sample_lambda
from pls_edu.smoothing import one_hot


def test_derangement_never_pairs_a_sample_with_itself():
    g = torch.Generator().manual_seed(0)
    for n in range(2, 258):
        for _ in range(3):
            p = derangement(n, g)
            assert not bool((p == torch.arange(n)).any()), n
            assert torch.equal(p.sort().values, torch.arange(n)), n  # a permutation: each sample is a partner once


def test_derangement_partner_is_uniform_over_the_others():
    g = torch.Generator().manual_seed(1)
    n, draws = 6, 30000
    counts = torch.zeros(n, n)
    for _ in range(draws):
        counts[torch.arange(n), derangement(n, g)] += 1
    off = counts[~torch.eye(n, dtype=torch.bool)] / draws
    # each of the 5 possible partners has probability 1/5; 5 sigma of a binomial proportion
    assert float((off - 0.2).abs().max()) < 5 * np.sqrt(0.2 * 0.8 / draws)


def test_batch_of_one_is_refused():
    with pytest.raises(ValueError, match='a midpoint needs two samples, but the batch has 1'):
        derangement(1)


def test_midpoint_equations():
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(9, 3, 5, 5, generator=g), torch.randint(0, 4, (9,), generator=g)
    p = derangement(9, g)
    xm, qm = midpoint(x, one_hot(y, 4), p)
    for i in range(9):
        j = int(p[i])
        assert torch.allclose(xm[i], (x[i] + x[j]) / 2)
        ref = torch.zeros(4)
        ref[y[i]] += 0.5
        ref[y[j]] += 0.5
        assert torch.allclose(qm[i], ref)
    assert torch.allclose(qm.sum(1), torch.ones(9)) and (qm >= 0).all()


@pytest.mark.parametrize('seed', [0, 1, 2, 3])
def test_mixup_matches_torchvision(seed):
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(32, 3, 8, 8, generator=g), torch.randint(0, 10, (32,), generator=g)
    torch.manual_seed(seed)
    xt, qt = v2.MixUp(alpha=1.0, num_classes=10)(x.clone(), y)
    torch.manual_seed(seed)
    lam = float(torch.distributions.Beta(torch.tensor([1.0]), torch.tensor([1.0])).sample(()))
    xo, qo = mixup(x, one_hot(y, 10), lam, torch.arange(32).roll(1))  # torchvision pairs i with i-1
    assert torch.allclose(xo, xt, atol=1e-6) and torch.allclose(qo, qt, atol=1e-6)


def test_sample_lambda_is_beta():
    rng = np.random.default_rng(0)
    lam = np.array([sample_lambda(2.0, rng) for _ in range(20000)])
    assert abs(lam.mean() - 0.5) < 0.01 and abs(lam.var() - 1 / 20) < 0.003  # Beta(2,2): var = 1/20
    assert sample_lambda(0.0, rng) == 1.0
