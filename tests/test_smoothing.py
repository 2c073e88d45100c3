"Label smoothing against PyTorch's own label_smoothing and against eq. 4-5 recomputed in float64."

import pytest
import torch
import torch.nn.functional as F

from pls_edu.smoothing import one_hot, uniform_smooth, uls_targets, soft_cross_entropy, check_targets


@pytest.mark.parametrize('a', [0.0, 0.05, 0.1, 0.2, 0.3, 0.9])
@pytest.mark.parametrize('K', [2, 10, 100])
def test_uls_loss_matches_torch_label_smoothing(a, K):
    g = torch.Generator().manual_seed(K)
    logits = 4 * torch.randn(257, K, generator=g)
    y = torch.randint(0, K, (257,), generator=g)
    ours = soft_cross_entropy(logits, uls_targets(y, K, a))
    ref = F.cross_entropy(logits, y, label_smoothing=a)
    assert torch.allclose(ours, ref, atol=1e-5), (ours, ref)


@pytest.mark.parametrize('a', [0.1, 0.2, 0.3])
def test_uls_equals_eq5_in_float64(a):
    g = torch.Generator().manual_seed(1)
    K = 10
    logits, y = torch.randn(64, K, generator=g, dtype=torch.float64), torch.randint(0, K, (64,), generator=g)
    # eq. 5 term by term: (1 - a) H(q, p) + a H(u, p), with p = softmax(z) written out by hand
    p = torch.exp(logits) / torch.exp(logits).sum(1, keepdim=True)
    h_q = -torch.log(p[torch.arange(64), y])
    h_u = -(torch.log(p) / K).sum(1)
    ref = ((1 - a) * h_q + a * h_u).mean()
    ours = soft_cross_entropy(logits, uls_targets(y, K, a, torch.float64))
    assert abs(float(ours) - float(ref)) < 1e-12
    # and eq. 4 entry by entry
    q = uls_targets(y, K, a, torch.float64)
    for i in range(5):
        for k in range(K):
            assert abs(float(q[i, k]) - ((1 - a) * (k == int(y[i])) + a / K)) < 1e-15


def test_targets_are_distributions():
    g = torch.Generator().manual_seed(2)
    for K in (2, 7, 100):
        y = torch.randint(0, K, (50,), generator=g)
        for a in (0, 0.1, 0.5, 1):
            q = uls_targets(y, K, a)
            assert (q >= 0).all() and torch.allclose(q.sum(1), torch.ones(50))


def test_bad_inputs_named():
    with pytest.raises(ValueError, match='label 10 is out of range for 10 classes'):
        one_hot(torch.tensor([0, 10]), 10)
    with pytest.raises(ValueError, match='label -2'):
        one_hot(torch.tensor([-2]), 10)
    with pytest.raises(ValueError, match='1-d integer'):
        one_hot(torch.tensor([0.5]), 10)
    with pytest.raises(ValueError, match=r'smoothing weight must be in \[0, 1\], got -0.1'):
        uniform_smooth(torch.eye(3), -0.1)
    with pytest.raises(ValueError, match=r'logits \(4, 3\) and targets \(4, 5\)'):
        soft_cross_entropy(torch.zeros(4, 3), torch.zeros(4, 5))
    with pytest.raises(ValueError, match='sum to 1'):
        check_targets(torch.tensor([[0.5, 0.6]]))
    with pytest.raises(ValueError, match='negative'):
        check_targets(torch.tensor([[1.5, -0.5]]))
