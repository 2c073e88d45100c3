"Every command line says what each option does, lists the allowed values of each choice, and never says 'default: None'."

import argparse

import pytest

from pls_edu import bench, compare, sweepcli, fetch, gpucheck, traincli


def _parsers():
    "Every parser and sub-parser of the package's command lines, by name."
    out = {'pls-train': traincli.train_parser(), 'pls-data': fetch.data_parser(), 'pls-compare': compare.parser()}
    sweep = sweepcli.parser()
    out['pls-sweep'] = sweep
    for a in sweep._actions:
        if isinstance(a, argparse._SubParsersAction):
            out.update({f'pls-sweep {n}': p for n, p in a.choices.items()})
    for name, mod in (('pls-bench', bench), ('pls-gpu-check', gpucheck)):
        captured = {}

        def grab(self, *args, _orig=argparse.ArgumentParser.parse_args, _c=captured, **kw):
            _c['p'] = self
            raise SystemExit(0)

        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(argparse.ArgumentParser, 'parse_args', grab)
            with pytest.raises(SystemExit):
                mod.main([])
        out[name] = captured['p']
    return out


PARSERS = _parsers()


@pytest.mark.parametrize('name', sorted(PARSERS))
def test_every_option_is_explained(name):
    p = PARSERS[name]
    text = p.format_help()
    assert 'default: None' not in text, name
    for a in p._actions:
        if isinstance(a, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        assert a.help and len(a.help) > 8, (name, a.dest)
        values = a.choices
        if values and not isinstance(values, dict):
            helped = (
                a.help % {'choices': ', '.join(map(str, values)), 'default': a.default} if '%(' in a.help else a.help
            )
            listed = all(str(v) in helped for v in values) or a.metavar is None  # argparse prints {a,b} without metavar
            assert listed, (name, a.dest, a.help)


def test_free_text_choices_name_their_values():
    "Options whose value is a name (a dataset, model, method, recipe, schedule) list the names in their help."
    from pls_edu.datasets import ALL_DATASETS
    from pls_edu.methods import METHODS
    from pls_edu.models import MODELS
    from pls_edu.train import RECIPES, SCHEDULES

    helps = {a.dest: a.help for a in PARSERS['pls-train']._actions}
    for dest, names in (
        ('dataset', ALL_DATASETS),
        ('model', MODELS),
        ('method', METHODS),
        ('recipe', RECIPES),
        ('schedule', SCHEDULES),
    ):
        assert all(n in helps[dest] for n in names), dest
