"Every method's targets against the formulas of the paper / the issue, on random tensors; alternation; gradients."

import numpy as np
import pytest
import torch
import torch.nn as nn

from pls_edu.methods import (
    METHODS,
    PAPER_METHODS,
    ABLATIONS,
    Draws,
    get_method,
    method_batch,
    method_loss,
    uses_midpoints,
)
from pls_edu.midpoints import derangement, sample_lambda
from pls_edu.head import PLSNet, SmoothingHead, smoothing_cap
from pls_edu.smoothing import soft_cross_entropy

K = 5


class Fixed(nn.Module):
    "Zero logits, and a smoothing output we choose (u rows, or coefficients c)."

    def __init__(self, s):
        super().__init__()
        self.s = s
        self.inputs = []

    def forward(self, x):
        self.inputs.append(x)
        return torch.zeros(len(x), K)

    def forward_smooth(self, x):
        self.inputs.append(x)
        return torch.zeros(len(x), K), self.s


def reference(name, y, pair, lam, u, c):
    "q' written from the method's definition, with explicit loops."
    n = len(y)
    q = torch.zeros(n, K)
    for i in range(n):
        if pair is None:
            q[i, y[i]] = 1
        elif name.startswith('mixup'):
            q[i, y[i]] += lam
            q[i, y[pair[i]]] += 1 - lam
        else:
            q[i, y[i]] += 0.5
            q[i, y[pair[i]]] += 0.5
    table = {
        'erm': q,
        'mixup': q,
        'pls-no-learned': q,
        'pls': 0.5 * q + 0.5 * u,
        'pls-no-original': 0.5 * q + 0.5 * u,
        'pls-coeff': (1 - c[:, None]) * q + c[:, None] / K,
    }
    for a in ('0.1', '0.2', '0.3'):
        for prefix in ('uls-', 'mixup-uls-', 'pls-ud-'):
            table[prefix + a] = (1 - float(a)) * q + float(a) / K
    for i in range(1, 10):
        table[f'pls-w{i / 10}'] = (1 - i / 10) * q + (i / 10) * u
    return table[name]


@pytest.mark.parametrize('name', list(METHODS))
@pytest.mark.parametrize('step', [0, 1])
def test_targets_follow_the_formulas(name, step):
    m = get_method(name)
    g0 = torch.Generator().manual_seed(10 + step)
    x, y = torch.randn(8, 3, generator=g0), torch.randint(0, K, (8,), generator=g0)
    u = torch.softmax(torch.randn(8, K, generator=g0), 1)
    c = torch.rand(8, generator=g0)
    model = Fixed(c if m.smooth == 'coeff' else u)
    g, rng = torch.Generator().manual_seed(3), np.random.default_rng(4)
    b = method_batch(m, model, x, y, K, step, draws=Draws(g, rng))
    q = b.targets
    # replay the same random draws to know the pairing
    g, rng = torch.Generator().manual_seed(3), np.random.default_rng(4)
    pair, lam = None, None
    if m.pairs == 'mixup':
        lam = sample_lambda(1.0, rng)
        pair = torch.randperm(8, generator=g)
    elif uses_midpoints(m, step):
        pair = derangement(8, g)
    ref = reference(name, y, pair, lam, u, c)
    assert torch.allclose(q, ref, atol=1e-6), name
    assert (b.partner is None) == (pair is None) and (
        pair is None or torch.equal(b.partner, pair)
    )  # the Batch names its partners
    assert (q >= 0).all() and torch.allclose(q.sum(1), torch.ones(8), atol=1e-6)
    # the model saw midpoints exactly when the method uses them on this step
    x_seen = model.inputs[0]
    if pair is None:
        assert torch.equal(x_seen, x)
    elif lam is None:
        assert torch.allclose(x_seen, (x + x[pair]) / 2)
    else:
        assert torch.allclose(x_seen, lam * x + (1 - lam) * x[pair], atol=1e-6)


def test_alternation_alternates():
    pls, no_orig = get_method('pls'), get_method('pls-no-original')
    assert [uses_midpoints(pls, s) for s in range(10)] == [s % 2 == 1 for s in range(10)]
    assert all(uses_midpoints(no_orig, s) for s in range(10))
    for name in PAPER_METHODS:
        if name != 'pls':
            assert not any(uses_midpoints(get_method(name), s) for s in range(4))


def test_registry():
    assert PAPER_METHODS == [
        'erm',
        'uls-0.1',
        'uls-0.2',
        'uls-0.3',
        'mixup',
        'mixup-uls-0.1',
        'mixup-uls-0.2',
        'mixup-uls-0.3',
        'pls',
    ]
    ablations = ['pls-no-learned', 'pls-no-original', 'pls-ud-0.1', 'pls-ud-0.2', 'pls-ud-0.3', 'pls-coeff']
    assert ablations + [f'pls-w0.{i}' for i in range(1, 10)] == ABLATIONS
    with pytest.raises(ValueError) as e:
        get_method('PLS')
    for n in ('erm', 'pls-coeff', 'pls-w0.9', 'mixup-uls-0.3'):
        assert n in str(e.value)
    assert (
        get_method('pls').head_out(10) == 10
        and get_method('pls-coeff').head_out(10) == 1
        and get_method('erm').head_out(10) is None
    )


def _net(detach=False):
    torch.manual_seed(0)
    return PLSNet(nn.Sequential(nn.Linear(6, 16), nn.Tanh()), 16, K, head_out=K, detach=detach)


def test_gradient_reaches_W_t_and_matches_eq14_in_float64():
    net = _net().double()
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(12, 6, generator=g, dtype=torch.float64), torch.randint(0, K, (12,), generator=g)
    loss = method_loss(method_batch(get_method('pls'), net, x, y, K, step=0, draws=Draws(g)))
    loss.backward()
    gw = net.smoother.linear.weight.grad.clone()
    assert gw.abs().sum() > 0
    # eq. 14 by hand: u from W_t, 0.5 H(q, p) + 0.5 H(u, p); its gradient w.r.t. W_t must be the same
    net.zero_grad()
    S = net.backbone(x)
    u = torch.softmax(torch.sigmoid(S @ net.smoother.linear.weight.T + net.smoother.linear.bias), 1)
    logp = torch.log_softmax(S @ net.classifier.weight.T + net.classifier.bias, 1)
    q = torch.eye(K, dtype=torch.float64)[y]
    (0.5 * -(q * logp).sum(1) + 0.5 * -(u * logp).sum(1)).mean().backward()
    assert torch.allclose(net.smoother.linear.weight.grad, gw, atol=1e-12)


def test_detach_switch_stops_only_the_backbone_u_path():
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(12, 6, generator=g), torch.randint(0, K, (12,), generator=g)
    grads = {}
    for detach in (False, True):
        net = _net(detach)
        method_loss(method_batch(get_method('pls'), net, x, y, K, step=0, draws=Draws(g))).backward()
        grads[detach] = (net.smoother.linear.weight.grad.clone(), net.backbone[0].weight.grad.clone())
    assert torch.allclose(grads[False][0], grads[True][0])  # W_t learns either way
    assert not torch.allclose(grads[False][1], grads[True][1])  # the backbone loses the u path
    # with detach, the backbone gradient is the one of a constant target (u treated as data)
    net = _net()
    logits, u = net.forward_smooth(x)
    soft_cross_entropy(logits, 0.5 * torch.eye(K)[y] + 0.5 * u.detach()).backward()
    assert torch.allclose(net.backbone[0].weight.grad, grads[True][1], atol=1e-6)


def test_smoothing_output_is_capped():
    for Kc in (3, 10, 100):
        h = SmoothingHead(4, Kc)
        with torch.no_grad():
            h.linear.weight.normal_(0, 50)
        with torch.no_grad():
            assert float(h(torch.randn(500, 4)).max()) <= smoothing_cap(Kc) + 1e-6
