"""Every run option is documented once, as the comment at its field (`TrainConfig`, `RunSpec`, `RunOptions`), and
`pls-train`, `pls-sweep`, `pls-compare` and the README's table of options show that text; moving the help to the
fields left every command line's parsed values as they were."""

import argparse, ast, dataclasses, inspect, io, re, sys, tokenize
from pathlib import Path

import pytest

from pls_edu import compare, runspec, sweepcli, traincli
from pls_edu.config import TrainConfig, field_docs
from pls_edu.runspec import RUN_FIELDS, RunOptions, RunSpec, option_help, run_docs

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / 'tools'))
import readme  # noqa: E402  (tools/readme.py: the README's generated sections)

STATED = re.compile(r'\s*\(default: .*\)$')
NEGATED = {'no_progress': 'progress', 'eager_cpu': 'fast_cpu'}  # options that turn a field off
NOT_FIELDS = {('pls-compare', 'workers')}  # runs side by side, not TrainConfig.workers (DataLoader processes)


def _commands():
    "The three run commands' parsers, by name ('pls-sweep run', ...)."
    return {(f'{cmd} {sub}' if sub else cmd): q for cmd, sub, q in readme.option_parsers()}


def _what(name):
    "The text a field's comment gives its options: the comment less what it says a default of None means."
    return STATED.sub('', run_docs()[name])


def _copies(doc, text):
    "Whether `text` writes out help text `doc` (a text of three words or fewer only where it is the whole text)."
    doc, text = ' '.join(doc.split()), ' '.join(text.split())
    return text == doc or (len(doc.split()) > 3 and doc in text)


# one source: the comment at each field --------------------------------------------------------------------------


def test_every_run_field_has_its_help_at_the_field():
    for cls in RUN_FIELDS:
        docs = field_docs(cls)
        assert list(docs) == [f.name for f in dataclasses.fields(cls)], cls
        assert [k for k, v in docs.items() if not v] == [], f'{cls.__name__}: write a comment at each of these fields'
    names = [f.name for cls in RUN_FIELDS for f in dataclasses.fields(cls)]
    assert len(names) == len(set(names)) == len(run_docs())  # one help per name across the three classes
    assert len(set(run_docs().values())) == len(run_docs())  # and no two fields with the same help


def test_a_field_added_without_help_fails(monkeypatch):
    "A new field with no comment is found by the check above, and its option refuses to be built without help."
    src = inspect.getsource(TrainConfig) + '    warmup: int = 0\n'
    assert [k for k, v in field_docs(src).items() if not v] == ['warmup']
    docs = {**run_docs(), 'warmup': None}
    monkeypatch.setattr(runspec, 'run_docs', lambda: docs)
    with pytest.raises(ValueError, match="run field 'warmup' has no help: write it as a comment at the field"):
        runspec.add_option(argparse.ArgumentParser(), 'warmup', type=int, default=0)


def test_field_docs_reads_what_fastcore_docments_reads():
    "Our dozen lines against nbdev's docments (fastcore joins a comment's lines with a newline, we with a space)."
    from fastcore.docments import docments

    for cls in RUN_FIELDS:
        theirs = {k: v and ' '.join(v.split()) for k, v in docments(cls).items() if k != 'return'}
        assert field_docs(cls) == theirs, cls


def test_a_none_default_is_said_in_words():
    "A field left at None says what None means: the recipe's values, or its comment's own `(default: ...)`."
    for name in (f.name for cls in RUN_FIELDS for f in dataclasses.fields(cls)):
        if name != 'config':  # the TrainConfig itself, never an option
            assert 'default: None' not in option_help(name), name
    assert option_help('epochs').endswith('(default: the recipe: cpu 20, paper 400)')
    assert option_help('threads') == "CPU threads per run (default: torch's choice)"
    with pytest.raises(ValueError, match="end its comment with what that means"):
        option_help('seed', None)


# the command lines show it ------------------------------------------------------------------------------------------

SAMPLE = {  # command -> fields whose help `--help` must show exactly as written at the field
    'pls-train': ['pairing', 'lr', 'eval_every', 'precision', 'ood', 'lease_s', 'ckpt_every', 'fast_cpu', 'progress'],
    'pls-sweep run': ['epochs', 'out', 'data_root', 'threads', 'engine', 'native_cpu', 'fast_cpu', 'progress'],
    'pls-sweep status': ['lease_s'],
    'pls-sweep run-index': ['device'],
    'pls-compare': ['dataset', 'epochs', 'holdout', 'native_cpu', 'progress'],
}


@pytest.mark.parametrize('command', sorted(SAMPLE))
def test_help_shows_the_text_written_at_the_field(command, monkeypatch):
    monkeypatch.setenv('COLUMNS', '1000')  # one line per option, so the text is compared as it is written
    text = _commands()[command].format_help()
    for name in SAMPLE[command]:
        assert _what(name) in text, (command, name)


@pytest.mark.parametrize('command', ['pls-train', 'pls-sweep run', 'pls-sweep slurm', 'pls-compare'])
def test_every_option_that_sets_a_field_takes_its_help_from_the_field(command):
    "An option named for a field (or turning one off) is made by `add_option`, and its help begins with the comment."
    names = set(run_docs())
    for a in _commands()[command]._actions:
        field = NEGATED.get(a.dest, a.dest)
        if field in names and (command, a.dest) not in NOT_FIELDS:
            assert getattr(a, 'field', None) == field, (command, a.dest)
            start = ('without ' if a.dest in NEGATED else '') + _what(field)
            assert a.help.replace('%%', '%').startswith(start), (command, a.dest, a.help)


def test_every_field_of_train_config_is_a_pls_train_option():
    helps = {a.dest: a.help for a in traincli.train_parser()._actions}
    for f in dataclasses.fields(TrainConfig):
        assert helps[f.name] == option_help(f.name), f.name


# written once -----------------------------------------------------------------------------------------------------


def _texts(path):
    "Every comment (a block of comment lines as one text) and every string (an f-string as one) of a source file."
    src = path.read_text()
    out, block, last = [], [], None
    for t in tokenize.generate_tokens(io.StringIO(src).readline):
        if t.type != tokenize.COMMENT:
            continue
        alone = t.line.strip().startswith('#')
        if alone and last == t.start[0] - 1 and block:
            block.append(t.string.lstrip('#').strip())
        else:
            out.append(' '.join(block)) if block else None
            block = [t.string.lstrip('#').strip()]
        last = t.start[0] if alone else None
    out += [' '.join(block)] if block else []
    tree = ast.parse(src)
    parts = {id(v) for n in ast.walk(tree) if isinstance(n, ast.JoinedStr) for v in n.values}
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):  # an f-string is one text, its values as {}
            out.append(''.join(v.value if isinstance(v, ast.Constant) else '{}' for v in node.values))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in parts:
            out.append(node.value)
    return out


def _package():
    return [p for p in sorted((ROOT / 'pls_edu').glob('*.py')) if p.name != '_modidx.py']


def test_each_field_help_is_written_once_in_the_package():
    texts = [(p.name, t) for p in _package() for t in _texts(p)]
    for name, doc in run_docs().items():
        where = [f for f, t in texts if _copies(doc, t)]
        assert len(where) == 1, (name, doc, where)


def _help_literals():
    "Every help text written in an `add_argument` or `add_parser` call of the package: (file, line, text)."
    out = []
    for p in _package():
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, 'attr', '') in ('add_argument', 'add_parser'):
                for k in node.keywords:
                    if k.arg == 'help' and isinstance(k.value, ast.Constant):
                        out.append((p.name, node.lineno, k.value.value))
                    elif k.arg == 'help' and isinstance(k.value, ast.JoinedStr):
                        parts = [v.value if isinstance(v, ast.Constant) else '{}' for v in k.value.values]
                        out.append((p.name, node.lineno, ''.join(parts)))
    return out


def test_no_help_text_is_written_twice():
    "No two option calls write the same help, and none writes out a field's help (add_option makes those)."
    lits = _help_literals()
    assert len(lits) > 40
    seen = {}
    for f, line, text in lits:
        assert text not in seen, f'{f}:{line} repeats the help of {seen[text]}: {text!r}'
        seen[text] = f'{f}:{line}'
        copied = [n for n, doc in run_docs().items() if _copies(_what(n), text)]
        assert not copied, f'{f}:{line} writes out the help of {copied}: use add_option'


def test_the_parsers_help_comes_from_one_place():
    """Across the three commands, one help text comes from one field, or from one option (one helper adds it to each
    pls-sweep subcommand that has it), never from two."""
    by_text = {}
    for q in _commands().values():
        for a in q._actions:
            if a.help and not isinstance(a, (argparse._HelpAction, argparse._SubParsersAction)):
                by_text.setdefault(a.help, set()).add(getattr(a, 'field', None) or f'option {a.dest}')
    shared = {t: s for t, s in by_text.items() if len(s) > 1}
    assert not shared, shared  # the same text never comes from two fields, or from a field and a hand-written help


def test_an_option_of_several_sweep_subcommands_has_one_help():
    "An option that several pls-sweep subcommands take says the same everywhere: one helper adds it."
    by_dest = {}
    for command, q in _commands().items():
        if command.startswith('pls-sweep '):
            for a in q._actions:
                by_dest.setdefault(a.dest, set()).add(a.help)
    differ = {d: h for d, h in by_dest.items() if len(h) > 1}
    assert set(differ) == {'devices'}, differ  # check names the devices it checks, run those it runs on


def test_the_readme_table_shows_each_field_help_and_copies_none_elsewhere():
    table = readme.readme_sections()['options']
    text = (ROOT / 'README.md').read_text()
    outside = re.sub(r'<!-- course:(\S+) -->\n.*?<!-- /course:\1 -->', '', text, flags=re.S)
    fields = {a.field for q in _commands().values() for a in q._actions if hasattr(a, 'field')}
    for name in fields:
        assert f'| `{name}` | ' in table and _what(name).replace('<', '&lt;') in table, name
        assert not _copies(_what(name), outside), name  # the table is the README's one copy
    assert table in text


# the command lines parse as before ----------------------------------------------------------------------------------

TRAIN = {  # `pls-train` with no options, recorded from the parser as it was before the help moved to the fields
    'dataset': 'digits', 'model': 'small-cnn', 'method': 'erm', 'seed': 0, 'recipe': 'cpu', 'epochs': None,
    'batch_size': None, 'lr': None, 'momentum': None, 'weight_decay': None, 'schedule': None, 'alternation': 'strict',
    'pairing': 'derangement', 'augment': True, 'holdout': 0.0, 'train_subset': None, 'clean_train': 0,
    'ts_mode': None, 'device': 'cpu', 'precision': None, 'channels_last': None, 'compile': False,
    'detach_head': False, 'loader': 'device', 'workers': 0, 'eval_batch_size': 1000, 'eval_every': 1, 'ood': '',
    'out': 'results/runs', 'data_root': 'data', 'download': False, 'threads': None, 'eager_cpu': False,
    'ckpt_every': 0, 'lease_s': None, 'no_progress': False,
}  # fmt: skip
NARROW = {'out': None, 'datasets': None, 'models': None, 'methods': None, 'seeds': None, 'epochs': None}
RUN_OPTS = {
    'data_root': 'data', 'threads': None, 'ckpt_every': 1, 'engine': 'papermill', 'lease_s': None,
    'native_cpu': False, 'eager_cpu': False, 'skip_check': False,
}  # fmt: skip
COMPARE = {
    'dataset': 'digits', 'methods': ['paper'], 'seeds': [0, 1, 2], 'epochs': None, 'out': None, 'workers': None,
    'holdout': 0.2, 'no_progress': False, 'no_analysis': False, 'readme_figure': None, 'native_cpu': False,
}  # fmt: skip
SLURM = {
    'partition': None, 'cpus': None, 'gpus_per_task': None, 'gpu_request': 'gres', 'mem': None, 'time': None,
    'timings': None, 'max_parallel': 16, 'signal_s': 120, 'submit': False,
}  # fmt: skip
BEFORE = [  # (command, its arguments, what they parsed to before)
    ('pls-train', '', TRAIN),
    (
        'pls-train',
        '--recipe paper --device cuda --compile --channels-last --precision bf16 --train-subset 100 --holdout 0.1 '
        '--ood patches --out x --data-root d --download --threads 2 --eager-cpu --ckpt-every 5 --lease-s 60 '
        '--no-progress',
        {
            **TRAIN, 'recipe': 'paper', 'device': 'cuda', 'compile': True, 'channels_last': True, 'precision': 'bf16',
            'train_subset': 100, 'holdout': 0.1, 'ood': 'patches', 'out': 'x', 'data_root': 'd', 'download': True,
            'threads': 2, 'eager_cpu': True, 'ckpt_every': 5, 'lease_s': 60.0, 'no_progress': True,
        },
    ),
    (
        'pls-train',
        '--no-channels-last --no-augment --eval-every 20 --clean-train 100 --workers 2 --lr 0.1',
        {**TRAIN, 'channels_last': False, 'augment': False, 'eval_every': 20, 'clean_train': 100, 'workers': 2,
         'lr': 0.1},
    ),
    ('pls-sweep', 'check table1',
     {'cmd': 'check', 'preset': 'table1', **NARROW, 'except_in': [], 'data_root': 'data', 'devices': None}),
    ('pls-sweep', 'run cpu-table1',
     {'cmd': 'run', 'preset': 'cpu-table1', **NARROW, 'except_in': [], 'devices': None, **RUN_OPTS,
      'no_progress': False}),
    (
        'pls-sweep',
        'run cpu-table1 --eager-cpu --threads 1 --devices cpu cpu --engine process --ckpt-every 3 --lease-s 10 '
        '--native-cpu --no-progress --epochs 2 --seeds 0 1 --methods erm --except-in a.json --skip-check --out o '
        '--data-root d',
        {
            'cmd': 'run', 'preset': 'cpu-table1', **NARROW, 'out': 'o', 'methods': ['erm'], 'seeds': [0, 1],
            'epochs': 2, 'except_in': ['a.json'], 'devices': ['cpu', 'cpu'], 'data_root': 'd', 'threads': 1,
            'ckpt_every': 3, 'engine': 'process', 'lease_s': 10.0, 'native_cpu': True, 'eager_cpu': True,
            'skip_check': True, 'no_progress': True,
        },
    ),
    ('pls-sweep', 'slurm table1 --partition gpu --submit',
     {'cmd': 'slurm', 'preset': 'table1', **NARROW, 'except_in': [], **RUN_OPTS, **SLURM, 'partition': 'gpu',
      'submit': True}),
    ('pls-sweep', 'run-index m.json 3 --device cuda:1',
     {'cmd': 'run-index', 'manifest': 'm.json', 'index': 3, 'device': 'cuda:1'}),
    ('pls-sweep', 'status table1 --lease-s 30',
     {'cmd': 'status', 'preset': 'table1', **NARROW, 'except_in': [], 'lease_s': 30.0}),
    ('pls-sweep', 'merge table1 a.json b.json --to x.json',
     {'cmd': 'merge', 'preset': 'table1', 'parts': ['a.json', 'b.json'], 'to': 'x.json'}),
    ('pls-compare', '', COMPARE),
    (
        'pls-compare',
        '--dataset mnist5k --methods erm pls --seeds 0 --epochs 2 --out o --workers 2 --holdout 0.1 --no-progress '
        '--no-analysis --readme-figure f.png --native-cpu',
        {
            'dataset': 'mnist5k', 'methods': ['erm', 'pls'], 'seeds': [0], 'epochs': 2, 'out': 'o', 'workers': 2,
            'holdout': 0.1, 'no_progress': True, 'no_analysis': True, 'readme_figure': 'f.png', 'native_cpu': True,
        },
    ),
]  # fmt: skip
PARSER = {'pls-train': traincli.train_parser, 'pls-sweep': sweepcli.parser, 'pls-compare': compare.parser}


@pytest.mark.parametrize('command,argv,before', BEFORE, ids=[f'{c} {a[:40]}' for c, a, _ in BEFORE])
def test_parsed_values_are_what_they_were(command, argv, before):
    assert vars(PARSER[command]().parse_args(argv.split())) == before


def test_run_options_defaults_match_the_fields():
    "The options that keep a field's own default: pls-sweep's run options and pls-train's config options."
    assert RunOptions().ckpt_every == RUN_OPTS['ckpt_every'] and RunOptions().engine == RUN_OPTS['engine']
    assert RunSpec(TrainConfig()).ood == TRAIN['ood']
    assert {f.name: f.default for f in dataclasses.fields(TrainConfig)} == {
        k: v for k, v in TRAIN.items() if k in {f.name for f in dataclasses.fields(TrainConfig)}
    }
