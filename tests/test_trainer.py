"The trainer's loop reads in one screen, every measurement is a callback, and callbacks do not change what is trained."

import ast
import inspect

import torch

from pls_edu import train as train_module
from pls_edu.train import Callback, Scores, Trainer, TrainConfig, default_callbacks, train


def _lines(f):
    "Lines of a function's body, docstring excluded."
    node = ast.parse(inspect.getsource(f).strip()).body[0]
    body = node.body[1:] if isinstance(node.body[0], ast.Expr) else node.body
    return body[-1].end_lineno - body[0].lineno + 1


def test_the_loop_and_the_step_each_read_in_about_twenty_lines():
    for f in (Trainer.fit, Trainer.train_epoch, Trainer.train_step):
        assert _lines(f) <= 25, (f.__name__, _lines(f))


def test_the_loop_names_no_measurement():
    "fit and train_epoch know events, not diagnostics: no clean subset, temperature, BatchNorm or checkpoint in them."
    src = inspect.getsource(Trainer.fit) + inspect.getsource(Trainer.train_epoch)
    for word in ('clean_', 'holdout', 'temperature', 'bn_', 'checkpoint', 'tqdm', 'STOP'):
        assert word not in src, word


def test_default_callbacks_follow_the_config():
    def names(cfg):
        return sorted(type(cb).__name__ for cb in default_callbacks(cfg))

    assert names(TrainConfig()) == ['Progress', 'Scores', 'StopOnRequest']
    assert names(TrainConfig(holdout=0.2, clean_train=100)) == [
        'CleanTrain',
        'HoldoutTemperature',
        'Progress',
        'Scores',
        'StopOnRequest',
    ]


def test_measurements_do_not_change_what_is_trained(digits):
    "The same run with every measurement on, and with the test scores alone: the same weights and test logits."
    cfg = TrainConfig(method='pls', epochs=2, holdout=0.2, clean_train=200)
    full = train(cfg, digits, progress=False)
    bare = Trainer(cfg, digits, cbs=[Scores()])
    bare.fit()
    assert torch.equal(full.logits, bare.logits)
    for a, b in zip(full.model.state_dict().values(), bare.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert 'temperature' in full.history[-1] and 'temperature' not in bare.history[-1]


def test_callbacks_see_the_events_in_order(digits):
    seen = []

    class Record(Callback):
        order = -1

        def before_fit(self, t):
            seen.append('before_fit')

        def after_epoch(self, t):
            seen.append(f"after_epoch {t.epoch} {'error' in t.history[-1]}")

        def after_fit(self, t):
            seen.append('after_fit')

        def cleanup(self, t):
            seen.append('cleanup')

    t = Trainer(TrainConfig(epochs=2), digits, cbs=[Scores(), Record()])
    t.fit()
    # order -1 runs before Scores (order 0), so the epoch's row has no error yet when Record sees it
    assert seen == ['before_fit', 'after_epoch 1 False', 'after_epoch 2 False', 'after_fit', 'cleanup']
    assert 'error' in t.history[-1]


def test_the_module_keeps_the_names_callers_import():
    for name in ('TrainConfig', 'Trainer', 'train', 'STOP', 'Interrupted', 'RECIPES', 'CPU_REPRO_ENV', 'SCHEDULES'):
        assert hasattr(train_module, name), name
