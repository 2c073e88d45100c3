"What ruff does not check: keyword-only switches, whole docstring code spans, the course kept apart from the lab."

import ast, json, re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / 'pls_edu'


def _modules():
    "Each module of the package (nbdev's `_modidx` and the package's `__init__` left out) and its syntax tree."
    return {p.stem: ast.parse(p.read_text()) for p in sorted(PKG.glob('*.py')) if not p.stem.startswith('_')}


def _functions(tree, prefix=''):
    "Every function and method defined in `tree`, with its qualified name (nested functions included)."
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield f'{prefix}{node.name}', node
            yield from _functions(node, f'{prefix}{node.name}.<locals>.')
        elif isinstance(node, ast.ClassDef):
            yield from _functions(node, f'{prefix}{node.name}.')
        else:
            yield from _functions(node, prefix)


# keyword-only switches -------------------------------------------------------------------------------------------


def _positional_switches(fn):
    "The parameters of `fn` that default to True or False and can still be passed by position."
    pos = fn.args.posonlyargs + fn.args.args
    with_default = pos[len(pos) - len(fn.args.defaults) :]
    return [
        a.arg
        for a, d in zip(with_default, fn.args.defaults, strict=True)
        if isinstance(d, ast.Constant) and isinstance(d.value, bool)
    ]


def test_switches_are_keyword_only():
    """A parameter that defaults to True or False comes after `*`, so a call reads `train(cfg, data, progress=False)`:
    every function and method of a module or of its classes (not those local to a function, which may have to keep
    another library's signature, as runbook's kernel manager overrides jupyter_client's `_async_shutdown_kernel`)."""
    bad = [
        f"pls_edu/{m}.py:{fn.lineno} {name}({', '.join(args)})"
        for m, tree in _modules().items()
        for name, fn in _functions(tree)
        if '<locals>' not in name and (args := _positional_switches(fn))
    ]
    assert not bad, 'boolean parameters that can be passed by position (put them after `*`):\n' + '\n'.join(bad)


def test_the_rule_sees_a_positional_switch():
    tree = ast.parse('class C:\n    def f(self, x, fast=True, *, log=False): ...\ndef g(a, *, b=False, c=True): ...')
    found = {name: _positional_switches(fn) for name, fn in _functions(tree)}
    assert found == {'C.f': ['fast'], 'g': []}


# docstrings ------------------------------------------------------------------------------------------------------


def test_docstring_code_spans_open_and_close_on_one_line():
    "A `code span` broken across two lines of a docstring shows as stray backticks in the docs and in `help()`."
    bad = []
    for m, tree in _modules().items():
        for node in [tree, *(n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef)))]:
            doc = ast.get_docstring(node, clean=False) or ''
            bad += [
                (f'{m}.py', getattr(node, 'name', '(module)'), line.strip())
                for line in doc.splitlines()
                if line.count('`') % 2 and not line.strip().startswith('```')
            ]
    assert not bad, bad


# the course and the lab ------------------------------------------------------------------------------------------

# The teaching modules (exported by the course's notebooks nbs/NN_*.ipynb) import a library ("lab") module (exported by
# nbs/library/*.ipynb) only where the course says so. What is imported today, each with where the course documents it:
ALLOWED_LAB_IMPORTS = {
    # notebook 10 builds the trainer on `TrainConfig`, `patch` and the optimizer and schedule of a recipe, and sends the
    # reader to notebook 50 for them ("Notebook 50 is the reference"); `pls_edu.train` re-exports TrainConfig and the
    # recipe tables for the callers that import them from there
    ('train', 'config'),
    # notebook 10 calls the measurements of notebook 51 after each epoch and at the end of a run (clean training error,
    # BatchNorm recalibration, temperatures), naming them as plain functions of notebook 51 in its sections 5 and 9
    ('train', 'diagnostics'),
    # notebook 10's loop uses the trainer's parts of notebook 76 (loaders, autocast, the NaN guard, pauses, exact
    # resumption, the progress and stop callbacks) and links to it where it introduces its tools
    ('train', 'trainparts'),
}


def _exported(pattern):
    "The modules named by `#| default_exp` in the notebooks matching `pattern`."
    out = set()
    for p in sorted((ROOT / 'nbs').glob(pattern)):
        for c in json.loads(p.read_text())['cells']:
            src = ''.join(c['source']) if c['cell_type'] == 'code' else ''
            out |= set(re.findall(r'^#\|\s*default_exp\s+(\S+)', src, re.M))
    return out


def _package_imports(tree, modules):
    "The modules of the package that `tree` imports, in any of the forms an import can take."
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            parts = (node.module or '').split('.') if node.module else []
            if node.level == 0 and parts[:1] != ['pls_edu']:
                continue
            parts = parts[1:] if node.level == 0 else parts
            if parts:
                out.add(parts[0])  # from .x import y, from pls_edu.x import y
            else:
                out |= {a.name for a in node.names}  # from . import x, from pls_edu import x
        elif isinstance(node, ast.Import):
            out |= {a.name.split('.')[1] for a in node.names if a.name.startswith('pls_edu.')}
    return out & modules


def test_every_module_is_either_taught_or_lab():
    teaching, lab = _exported('[0-9][0-9]_*.ipynb'), _exported('library/*.ipynb')
    assert not teaching & lab, teaching & lab
    assert teaching | lab == set(_modules()), (teaching | lab) ^ set(_modules())
    assert {'data', 'head', 'train', 'curve'} <= teaching and {'config', 'diagnostics', 'runs', 'sweepcli'} <= lab


def test_teaching_modules_import_lab_modules_only_where_the_course_says_so():
    teaching, lab = _exported('[0-9][0-9]_*.ipynb'), _exported('library/*.ipynb')
    mods = _modules()
    used = {(m, d) for m in teaching for d in _package_imports(mods[m], set(mods)) if d in lab}
    assert not used - ALLOWED_LAB_IMPORTS, (
        'a teaching module imports a library module that ALLOWED_LAB_IMPORTS does not list '
        f'(move the code, or list it with where the course documents it): {sorted(used - ALLOWED_LAB_IMPORTS)}'
    )
    assert not ALLOWED_LAB_IMPORTS - used, f'listed but no longer imported: {sorted(ALLOWED_LAB_IMPORTS - used)}'


def test_the_import_reader_sees_every_form_of_import():
    src = (
        'from .a import x\nfrom pls_edu.b import y\nfrom . import c\nfrom pls_edu import d\nimport pls_edu.e\nimport os'
    )
    assert _package_imports(ast.parse(src), set('abcdefg')) == set('abcde')
