"The CPU paths: timing ratios, bit-for-bit repeatability, one process per instruction set, and the registered rule."

import json
from pathlib import Path

import pytest
import torch

from pls_edu.cpupaths import (
    MODES,
    fast_cpu_choice,
    in_process,
    logits_digest,
    mode_trainer,
    report_cpu_paths,
    time_modes,
)
from pls_edu.datasets import load_dataset
from pls_edu.runs import run_identity, run_one
from pls_edu.results import read_result, run_dir
from pls_edu.runspec import FAST_CPU, RunOptions, on_cpu_path
from pls_edu.train import TrainConfig

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope='module')
def digits():
    return load_dataset('digits')


def test_speed_over_eager_is_the_ratio_of_the_measured_times(digits):
    r = time_modes(digits, 'small-cnn', modes=('eager', 'channels-last'), steps=2, rounds=1)
    for m in ('erm', 'pls'):
        sec = r['s_per_step'][m]
        assert r['over_eager'][m]['eager'] == 1.0
        assert r['over_eager'][m]['channels-last'] == pytest.approx(sec['eager'] / sec['channels-last'])
        assert all(v > 0 for v in r['first_two_steps_s'][m].values())


def test_channels_last_mode_really_changes_the_layout_and_nothing_else(digits):
    eager = mode_trainer(digits, 'small-cnn', 'pls', 'eager')
    fast = mode_trainer(digits, 'small-cnn', 'pls', 'channels-last')
    w = next(p for p in fast.model.parameters() if p.dim() == 4 and p.shape[1] > 1)  # a conv with several inputs
    assert w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous()
    assert run_identity(eager.cfg) == run_identity(fast.cfg)


def test_eager_and_channels_last_repeat_bit_for_bit_and_differ_from_each_other(digits):
    a = {m: logits_digest(digits, 'small-cnn', m, steps=4) for m in ('eager', 'channels-last')}
    b = {m: logits_digest(digits, 'small-cnn', m, steps=4) for m in ('eager', 'channels-last')}
    assert a == b
    assert a['eager'] != logits_digest(digits, 'small-cnn', 'eager', steps=5)


def test_bad_names_are_refused_with_the_allowed_ones(digits):
    with pytest.raises(ValueError, match=r"unknown CPU mode 'fast'; choose one of \['eager'"):
        mode_trainer(digits, 'small-cnn', 'pls', 'fast')
    with pytest.raises(ValueError, match="unknown instruction set 'avx9'"):
        in_process('avx9', 'time', model='small-cnn')
    with pytest.raises(RuntimeError, match="unknown workload 'vgg'"):
        in_process('pinned', 'time', model='vgg')


def test_each_instruction_set_runs_in_its_own_process_with_its_capability():
    r = in_process('pinned', 'time', model='small-cnn', modes=['eager'], methods=['pls'], steps=1, rounds=1)
    assert r['1']['cpu_capability'] == 'AVX2'
    n = in_process('native', 'time', model='small-cnn', modes=['eager'], methods=['pls'], steps=1, rounds=1)
    assert n['1']['cpu_capability'] == torch.backends.cpu.get_cpu_capability()


def _result(gains, repeatable, native_s=None):
    one = {
        'over_eager': {m: {'eager': 1.0, **g} for m, g in gains.items()},
        's_per_step': {m: {mode: 0.03 for mode in MODES} for m in gains},
    }
    res = {'pinned': {'small-cnn-g3': {'1': one}, 'repeatable': repeatable}}
    if native_s is not None:
        res['native'] = {'small-cnn-g3': {'1': {'s_per_step': {m: {mode: native_s for mode in MODES} for m in gains}}}}
    return res


def test_the_rule_takes_the_slower_method_and_only_repeatable_modes():
    all_ok = {m: True for m in MODES}
    gains = {'erm': {'channels-last': 1.6, 'compiled': 1.35}, 'pls': {'channels-last': 1.2, 'compiled': 1.3}}
    c = fast_cpu_choice(_result(gains, all_ok))
    assert (c['mode'], c['goal_met']) == ('compiled', True) and c['gain'] == pytest.approx(1.3)
    c = fast_cpu_choice(_result(gains, {**all_ok, 'compiled': False}))
    assert (c['mode'], c['goal_met']) == ('channels-last', False)
    slow = {'erm': {'channels-last': 1.5}, 'pls': {'channels-last': 1.05}}
    assert fast_cpu_choice(_result(slow, all_ok))['mode'] == 'eager'


def test_the_rule_moves_to_the_native_set_only_at_ten_percent():
    gains = {m: {'channels-last': 1.5} for m in ('erm', 'pls')}
    ok = {m: True for m in MODES}
    assert fast_cpu_choice(_result(gains, ok, native_s=0.03 / 1.12))['isa'] == 'native'
    assert fast_cpu_choice(_result(gains, ok, native_s=0.03 / 1.05))['isa'] == 'pinned'


def test_the_sweeps_fast_path_is_what_the_rule_chose_on_the_committed_bench():
    bench = json.loads((ROOT / 'nbs' / 'measured' / 'bench.json').read_text())
    c = fast_cpu_choice(bench['cpu_paths'])
    assert bench['cpu_paths']['choice'] == c
    assert MODES[c['mode']] == FAST_CPU
    assert bench['cpu_paths']['pinned']['repeatable'][c['mode']]
    assert any(c['mode'] in line and 'rule' in line for line in report_cpu_paths(bench['cpu_paths']))


def test_on_cpu_path_fills_only_open_fields_on_a_cpu():
    assert on_cpu_path(TrainConfig()).channels_last is FAST_CPU.get('channels_last')
    assert on_cpu_path(TrainConfig(), fast=False) == TrainConfig()
    assert on_cpu_path(TrainConfig(channels_last=False)).channels_last is False
    assert on_cpu_path(TrainConfig(device='cuda')) == TrainConfig(device='cuda')


def test_a_run_on_the_fast_path_records_it_and_keeps_its_identity(tmp_path, digits):
    cfg = TrainConfig(method='pls', epochs=1, seed=3)
    run_one(cfg, RunOptions(out=str(tmp_path / 'fast'), fast_cpu=True), data=digits)
    run_one(cfg, RunOptions(out=str(tmp_path / 'eager')), data=digits)
    fast = read_result(run_dir(tmp_path / 'fast', cfg) / 'result.json')
    eager = read_result(run_dir(tmp_path / 'eager', cfg) / 'result.json')
    assert fast['config']['channels_last'] is True and eager['config']['channels_last'] is False
    assert run_identity(fast['config']) == run_identity(eager['config'])
    assert run_dir(tmp_path / 'fast', cfg).name == run_dir(tmp_path / 'eager', cfg).name


def test_the_command_lines_take_the_fast_path_unless_told_eager():
    from pls_edu.sweepcli import _options, parser

    a = parser().parse_args(['run', 'cpu-table1'])
    assert _options(a, 'x').fast_cpu is True
    a = parser().parse_args(['run', 'cpu-table1', '--eager-cpu'])
    assert _options(a, 'x').fast_cpu is False


def test_a_fast_path_run_stopped_mid_epoch_resumes_to_the_same_digits(digits):
    from pls_edu.train import Interrupted, Trainer, train

    cfg = on_cpu_path(TrainConfig(method='pls', epochs=3, alternation='random'))
    assert cfg.channels_last is True
    ref = train(cfg, digits, progress=False)
    a = Trainer(cfg, digits, progress=False)
    per = len(a.train_dl)

    def ask_to_stop(module, inputs):  # during step 2 of epoch 2
        if module.training and a.step == per + 1:
            a.stop_requested = True

    hook = a.model.backbone.register_forward_pre_hook(ask_to_stop)
    with pytest.raises(Interrupted):
        a.fit()
    hook.remove()
    b = Trainer(cfg, digits, progress=False)
    b.load_state_dict(a.state_dict())
    b.fit()
    assert [h['nll'] for h in b.history] == [h['nll'] for h in ref.history]
    assert torch.equal(b.logits, ref.logits)


def test_each_instruction_set_gets_its_own_compile_cache_and_a_users_choice_stands(monkeypatch):
    import os

    from pls_edu.config import CPU_REPRO_ENV, compile_cache_dir, use_compile_cache

    assert compile_cache_dir(CPU_REPRO_ENV) != compile_cache_dir({})
    default = os.path.dirname(compile_cache_dir())
    for before in (None, default):  # unset, or torch's own default: replaced by this set's folder
        if before is None:
            monkeypatch.delenv('TORCHINDUCTOR_CACHE_DIR', raising=False)
        else:
            monkeypatch.setenv('TORCHINDUCTOR_CACHE_DIR', before)
        for k, v in CPU_REPRO_ENV.items():
            monkeypatch.setenv(k, v)
        use_compile_cache()
        assert os.environ['TORCHINDUCTOR_CACHE_DIR'] == compile_cache_dir(CPU_REPRO_ENV)
    monkeypatch.setenv('TORCHINDUCTOR_CACHE_DIR', '/somewhere/mine')
    use_compile_cache()
    assert os.environ['TORCHINDUCTOR_CACHE_DIR'] == '/somewhere/mine'
