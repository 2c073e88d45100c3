"ECE on cases known exactly, temperature scaling against known temperatures, and the errors of bad input."

import json

import pytest
import torch

from pls_edu.metrics import ece, reliability, summarize
from pls_edu.calibration import calibration_summary, calibration_table
from pls_edu.results import predictions, run_dir
from pls_edu.runs import run_one
from pls_edu.temperature import (
    CalibrationError,
    calibrate,
    ece_at_temperatures,
    fit_temperature,
    fit_temperature_grid,
    fit_temperature_lbfgs,
)
from pls_edu.diagnostics import soft_target_profile
from pls_edu.train import TrainConfig


def test_ece_known_answers():
    # all confident and right: 0; always 0.8 sure and right half the time: 0.3
    assert ece(torch.eye(3)[[0, 1, 2, 0]], torch.tensor([0, 1, 2, 0])) == pytest.approx(0)
    assert ece(torch.tensor([[0.8, 0.2]] * 10), torch.tensor([0] * 5 + [1] * 5)) == pytest.approx(0.3)
    # three bins by hand: confidences 0.95 (2 right of 2), 0.55 (1 of 2), 0.35 with 3 classes (0 of 1)
    p = torch.tensor([[0.95, 0.05, 0], [0.95, 0, 0.05], [0.55, 0.45, 0], [0.55, 0, 0.45], [0.35, 0.33, 0.32]])
    y = torch.tensor([0, 0, 0, 1, 1])
    want = (2 / 5) * abs(1 - 0.95) + (2 / 5) * abs(0.5 - 0.55) + (1 / 5) * abs(0 - 0.35)
    assert ece(p, y) == pytest.approx(want)
    r = reliability(p, y)
    assert r['count'].sum() == 5 and r['count'][14] == 2 and r['count'][8] == 2 and r['count'][5] == 1


def test_ece_matches_a_float64_loop():
    g = torch.Generator().manual_seed(3)
    p = torch.softmax(2 * torch.randn(3000, 7, generator=g), 1)
    y = torch.randint(0, 7, (3000,), generator=g)
    conf, pred = p.double().max(1)
    total = 0.0
    for m in range(15):
        inb = (conf > m / 15) & (conf <= (m + 1) / 15)
        if inb.any():
            total += inb.double().mean() * ((pred[inb] == y[inb]).double().mean() - conf[inb].mean()).abs()
    assert ece(p, y) == pytest.approx(float(total), abs=1e-12)


@pytest.mark.parametrize('T', [0.3, 1.0, 4.0])
def test_both_fits_recover_a_known_temperature(T):
    g = torch.Generator().manual_seed(1)
    z = 2 * torch.randn(30000, 10, generator=g)
    y = torch.multinomial(z.softmax(1), 1, generator=g).squeeze(1)  # calibrated at T = 1 for logits z
    for fit in (fit_temperature_lbfgs, fit_temperature_grid):
        r = fit(z * T, y)
        assert r['T'] == pytest.approx(T, rel=0.05) and r['factor'] == pytest.approx(1 / r['T'])
    assert fit_temperature_lbfgs(z * T, y)['T'] == pytest.approx(fit_temperature_grid(z * T, y)['T'], rel=0.01)


def test_calibrate_never_changes_accuracy_and_lowers_nll():
    g = torch.Generator().manual_seed(2)
    z = 2 * torch.randn(4000, 10, generator=g)
    y = torch.multinomial(z.softmax(1), 1, generator=g).squeeze(1)
    c = calibrate(z[:2000] * 0.25, y[:2000], z[2000:] * 0.25, y[2000:])  # an under-confident model
    assert c['accuracy_unchanged'] and c['before']['error'] == c['after']['error']
    assert c['T'] < 1 and c['after']['nll'] < c['before']['nll'] and c['after']['ece'] < c['before']['ece']


def test_bad_inputs():
    with pytest.raises(ValueError, match='3 predictions but 4 labels'):
        ece(torch.softmax(torch.randn(3, 2), 1), torch.tensor([0, 1, 0, 1]))
    with pytest.raises(ValueError, match='sum to 1'):
        ece(torch.tensor([[0.7, 0.7]]), torch.tensor([0]))
    with pytest.raises(ValueError, match='pass softmax outputs, not logits'):
        reliability(torch.tensor([[2.0, -1.0]]), torch.tensor([0]))
    with pytest.raises(CalibrationError, match='holdout is empty'):
        fit_temperature(torch.zeros(0, 5), torch.zeros(0, dtype=torch.long))
    sep = 5 * torch.eye(4).repeat(10, 1)
    with pytest.raises(CalibrationError, match='did not converge'):
        fit_temperature_lbfgs(sep, torch.arange(4).repeat(10))
    with pytest.raises(CalibrationError, match='edge of the search range'):
        fit_temperature_grid(sep, torch.arange(4).repeat(10))
    with pytest.raises(ValueError, match="unknown temperature fit 'newton'"):
        fit_temperature(torch.randn(5, 3), torch.zeros(5, dtype=torch.long), 'newton')
    with pytest.raises(ValueError, match='logits contain NaN'):
        summarize(torch.tensor([[float('nan'), 0.0]]), torch.tensor([0]))


def test_calibration_table_of_run_folders(tmp_path, digits):
    with pytest.raises(FileNotFoundError, match='the run did not finish, or .* is not a run folder'):
        predictions(tmp_path)
    c0 = TrainConfig(method='pls', epochs=2)
    run_one(c0, tmp_path, digits)
    c1 = TrainConfig(method='pls', epochs=3, holdout=0.2)
    r = run_one(c1, tmp_path / 'b', digits)['result']
    rows = calibration_table([predictions(run_dir(tmp_path, c0)), predictions(run_dir(tmp_path / 'b', c1))])
    assert rows[0]['T'] is None
    assert 'no holdout' in rows[0]['note']
    assert rows[1]['ece_before'] == pytest.approx(r['final']['ece'])
    assert rows[1]['T'] < 1  # PLS: under-confident
    h = r['history'][-1]
    assert h['temperature'] == pytest.approx(rows[1]['T'], rel=1e-3)
    assert h['ece_ts_refit'] == pytest.approx(rows[1]['ece_after'], abs=1e-6)
    s = calibration_summary(rows)
    assert (s[0]['runs'], s[0]['fitted']) == (2, 1)
    assert s[0]['T'] == pytest.approx(rows[1]['T'])  # the mean over fitted runs only


def test_soft_target_profiles(digits):
    from pls_edu.train import train
    from pls_edu.head import smoothing_cap

    t = train(TrainConfig(method='pls', epochs=2), digits)
    p = soft_target_profile('pls', t.model, digits)
    assert p['pairs'] and len(p['gold']) == 2 and len(p['others']) == 5
    assert max(p['gold']) <= 0.25 + 0.5 * smoothing_cap(10) + 1e-6 and min(p['gold']) >= 0.25
    assert sum(p['gold']) + 8 * min(p['others']) <= 1 + 1e-6
    u = soft_target_profile('uls-0.2', t.model, digits)
    assert not u['pairs'] and u['gold'] == [pytest.approx(0.82)] and u['others'][0] == pytest.approx(0.02)
    n = soft_target_profile('pls-no-learned', t.model, digits)
    assert n['gold'] == [pytest.approx(0.5), pytest.approx(0.5)] and n['others'][0] == 0


def test_ece_at_temperatures_matches_one_softmax_per_temperature():
    g = torch.Generator().manual_seed(1)
    z = 3 * torch.randn(500, 10, generator=g)
    y = torch.randint(0, 10, (500,), generator=g)
    Ts = [0.05, 0.3, 1.0, 2.5, 40.0]
    for T, e in zip(Ts, ece_at_temperatures(z, y, Ts), strict=True):
        assert e == pytest.approx(ece((z.double() / T).softmax(1), y), abs=1e-12)


def test_both_temperature_readings_of_fig6(tmp_path, digits):
    "Refit per epoch (course) and one fixed temperature from the final model (paper), recorded for every epoch."
    for mode in ('refit', 'fixed'):
        c = TrainConfig(method='pls', epochs=3, holdout=0.2, ts_mode=mode)
        r = run_one(c, tmp_path / mode, digits)['result']
        h, f = r['history'], r['final']
        assert r['config']['ts_mode'] == mode and f['ece_ts'] == f[f'ece_ts_{mode}']
        assert all(e['ece_ts_refit'] is not None and e['ece_ts_fixed'] is not None for e in h)
        assert 'ece_grid' not in h[0]  # the grid stays in the checkpoint, not the result
        # the fixed curve is the ECE at the grid temperature nearest to the final fit, at every epoch
        assert f['T_fixed_grid'] == pytest.approx(f['T'], rel=0.026)
        assert h[-1]['temperature'] == pytest.approx(f['T'])
    # the two configs differ only in what they report: the same training, the same per-epoch errors
    a, b = (
        json.loads(
            (
                run_dir(tmp_path / m, TrainConfig(method='pls', epochs=3, holdout=0.2, ts_mode=m)) / 'result.json'
            ).read_text()
        )
        for m in ('refit', 'fixed')
    )
    assert [e['error'] for e in a['history']] == [e['error'] for e in b['history']]
    assert [e['ece_ts_fixed'] for e in a['history']] == [e['ece_ts_fixed'] for e in b['history']]
