"The explorers draw without a front end, and their widgets redraw when a value is set from code."

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt
import pytest
import torch

from pls_edu.explore import (
    show_smoothing,
    smoothing_explorer,
    show_pair,
    pair_explorer,
    show_temperature,
    temperature_explorer,
)
from pls_edu.results import load_logits, load_run_model, run_dir
from pls_edu.runs import run_one
from pls_edu.train import TrainConfig


def test_smoothing_explorer():
    fig = show_smoothing(0.3, 0.5)
    gold = [b.get_height() for b in fig.axes[0].patches][3]
    assert gold == pytest.approx(0.7 + 0.03)
    w = smoothing_explorer()
    w.children[0].value = 0.2
    assert 'ULS-0.2' in w.result.axes[0].get_title()
    plt.close('all')


def test_pair_and_temperature_explorers(tmp_path, digits):
    c = TrainConfig(method='pls', epochs=2, holdout=0.2)
    run_one(c, tmp_path, digits)
    model, _ = load_run_model(run_dir(tmp_path, c))
    fig = show_pair(3, 4, model, digits)
    bars = fig.axes[3].patches  # q, u, q' bars: q' = (q + u) / 2 entry by entry
    K = digits.num_classes
    q, u, qp = [[b.get_height() for b in bars[i * K : (i + 1) * K]] for i in range(3)]
    assert qp == pytest.approx([(a + b) / 2 for a, b in zip(q, u, strict=True)], abs=1e-6)
    w = pair_explorer(model, digits)
    w.children[0].value = 10
    assert w.result.axes[0].get_title() == f'x_i: label {int(digits.y_train[10])}'
    t = temperature_explorer(*load_logits(run_dir(tmp_path, c)), T=0.5)
    t.children[0].value = 2.0
    assert 'T = 2' in t.result.axes[0].get_title()
    fig = show_temperature(torch.randn(50, 3), torch.randint(0, 3, (50,)), 0.5)
    assert 'ECE' in fig.axes[0].get_title()
    plt.close('all')
