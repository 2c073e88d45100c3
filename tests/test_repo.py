"The repository's own promises: settings, environment, README commands and CI agree with each other."

import ast, configparser, re, shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def settings():
    c = configparser.ConfigParser(delimiters=['='])
    c.read(ROOT / 'settings.ini')
    return c['DEFAULT']


def test_settings_pins_and_nbdev_options():
    s = settings()
    dev = shlex.split(s['dev_requirements'])
    assert 'nbdev==2.4.14' in dev and 'fastcore>=1.12.3,<2' in dev and 'execnb<0.2' in dev
    assert s['tst_flags'].split() == ['notest', 'slow', 'gpu']
    assert (
        s['allowed_cell_metadata_keys'].strip() == 'tags'
    )  # keeps papermill's "parameters" tag and our "volatile" tag
    assert s['clear_all'].strip() == 'False'  # nbdev_clean keeps the committed outputs
    for pkg in ('torch', 'torchvision', 'matplotlib', 'papermill', 'ipywidgets'):
        assert any(r.split('>')[0].split('=')[0].split('<')[0] == pkg for r in shlex.split(s['requirements'])), pkg
    assert 'jupyterlab' in dev


def test_environment_yml_is_true_to_settings():
    env = (ROOT / 'environment.yml').read_text()
    py = re.search(r'-\s*python\s*=\s*([\d.]+)', env).group(1)
    assert py == settings()['min_python']
    assert re.search(r'-\s*pip\s*$', env, re.M) and '-e .[dev]' in env  # everything else comes from settings.ini


def test_readme_starts_with_the_two_commands_and_ci_runs_the_test_one():
    readme = (ROOT / 'README.md').read_text()
    blocks = re.findall(r'```(?:bash|sh)?\n(.*?)```', readme, re.S)
    first_screen = readme[:2500]
    assert blocks[0].strip() in first_screen and blocks[1].strip() in first_screen
    assert 'pls-compare' in blocks[0] and 'pip install' in blocks[0]
    assert blocks[1].strip() == '.ci/run'
    ci = (ROOT / '.ci' / 'run').read_text()
    steps = (
        'pip install',
        'nbdev_clean',
        'nbdev_export',
        'tools/fmt.py --check',
        '-m ruff check',
        'pls-data mnist',
        'pip wheel',
        'venv/bin/pls-compare',
        'venv/bin/pls-train',
        'venv/bin/pls-sweep run cpu-tiny',
        'tools/course.py check',
        'tools/course.py site',
        '-m pytest -q -ra -n 2 --dist loadfile',
    )
    for step in steps:
        assert step in ci, step
    assert ci.index('pls-data mnist') < ci.index('-m pytest')  # the real-MNIST tests find the data fetched


def test_every_exported_module_has_one_notebook():
    paths = sorted((ROOT / 'nbs').glob('[0-9]*.ipynb')) + sorted((ROOT / 'nbs' / 'library').glob('[0-9]*.ipynb'))
    nbs = [p.name for p in paths]
    mods = {p.stem for p in (ROOT / 'pls_edu').glob('*.py')} - {'__init__', '_modidx'}
    exported = []
    for p in paths:
        m = re.search(r'default_exp (\w+)', p.read_text())
        if m:
            exported.append(m.group(1))
    assert sorted(exported) == sorted(mods) and len(set(exported)) == len(exported)
    numbers = [n.split('_')[0] for n in nbs]
    assert len(set(numbers)) == len(numbers), 'two notebooks share a number'


def test_numbers_in_the_readmes_prose_are_the_codes():
    "Every number the README states in prose (outside its generated sections) is computed here from the code."
    import inspect
    import math

    from pls_edu.data import load_digits_data
    from pls_edu.gpucheck import LEARN_EPOCHS, LEARN_MAX_ERROR, gpu_check
    from pls_edu.lock import DEFAULT_LEASE_S
    from pls_edu.preflight import FALLBACK_S_PER_IMAGE
    from pls_edu.presets import PRESETS
    from pls_edu.slurm import task_time, write_sbatch
    from pls_edu.train import RECIPES

    text = (ROOT / 'README.md').read_text()
    d = load_digits_data()
    n_train, n_test = len(d.x_train), len(d.x_test)
    assert f'{n_train + n_test:,} real 8x8 digits: {n_train:,} training images' in text
    assert f'{n_test} test images' in text
    assert f'one mistake is {100 / n_test:.2f} points' in text
    assert f'a 2% error is about {100 * math.sqrt(0.02 * 0.98 / n_test):.2f} points' in text
    assert f"{RECIPES['cpu']['epochs']} epochs of the `cpu` recipe" in text
    assert f"for {PRESETS['cpu-mnist']['epochs']} epochs of the `cpu`" in text
    cifar_epoch = {m: 50000 * FALLBACK_S_PER_IMAGE['gpu'][m]['3x32x32'] for m in ('preact-resnet18', 'resnet50')}
    assert f"about {cifar_epoch['preact-resnet18']:.0f} s per CIFAR epoch" in text
    assert f"and {cifar_epoch['resnet50']:.0f} s for\n  ResNet-50" in text
    tt = inspect.signature(task_time).parameters
    assert f"(x{tt['margin'].default} plus {tt['extra_s'].default // 60} minutes)" in text
    sb = inspect.signature(write_sbatch).parameters
    assert f"the array to {sb['max_parallel'].default} tasks at once" in text
    assert f"--signal=B:USR1@{sb['signal_s'].default}" in text
    assert f"(default {DEFAULT_LEASE_S:.0f}, `PLS_LEASE_S`)" in text
    assert f"--budget-s` (default {inspect.signature(gpu_check).parameters['budget_s'].default:.0f} s)" in text
    assert f"{LEARN_EPOCHS} epochs on `digits` compiled" in text
    assert f"under {LEARN_MAX_ERROR:.0f}% test error" in text
    paper = RECIPES['paper']
    assert f"batch {paper['batch_size']}, SGD lr {paper['lr']}, momentum {paper['momentum']}" in text
    assert f"{paper['epochs']} epochs, and the reference code's" in text


def test_the_readmes_library_example_runs(tmp_path, monkeypatch):
    "The README's first Python example, as written, with one epoch instead of twenty, in an empty folder."
    text = (ROOT / 'README.md').read_text().split('## Using the library', 1)[1]
    code = re.search(r'```python\n(.*?)```', text, re.S).group(1)
    assert code.count('epochs=20') == 2
    monkeypatch.chdir(tmp_path)
    scope = {}
    exec(compile(code.replace('epochs=20', 'epochs=1'), 'README.md', 'exec'), scope)
    assert scope['record']['ood'].shape == (2000, 10)  # the run scored the photograph patches
    assert (tmp_path / 'results' / 'x' / 'digits_small-cnn_pls_s0' / 'result.json').exists()


def _stray_strings(source):
    "(line, text) of every string statement that is not the first statement of its module, class or function."
    import ast

    out = []
    for node in ast.walk(ast.parse(source)):
        for st in getattr(node, 'body', [])[1:] if isinstance(getattr(node, 'body', None), list) else []:
            if isinstance(st, ast.Expr) and isinstance(st.value, ast.Constant) and isinstance(st.value.value, str):
                out.append((st.lineno, st.value.value))
    return out


def test_no_docstring_is_cut_short_by_a_stray_string():
    "A string statement after a docstring is a docstring's second half that Python threw away (two did so)."
    assert _stray_strings('def f():\n    "First half,"\n    " second half."\n') == [(3, ' second half.')]
    assert _stray_strings('def f():\n    "Whole."\n    return 1\n') == []
    bad = {
        p.name: _stray_strings(p.read_text())
        for p in [*(ROOT / 'pls_edu').glob('*.py'), *(ROOT / 'tools').glob('*.py')]
    }
    assert not {k: v for k, v in bad.items() if v}


def test_the_tools_import_one_another_without_a_cycle_and_stay_short():
    "tools/: no module imports one that imports it back, directly or not, and none is over 400 lines."
    tools = Path(__file__).resolve().parent.parent / 'tools'
    names = {p.stem for p in tools.glob('*.py')}
    deps = {}
    for p in tools.glob('*.py'):
        tree = ast.parse(p.read_text())
        found = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module)
        deps[p.stem] = sorted(found & names - {p.stem})
        assert len(p.read_text().splitlines()) <= 400, p.name

    def reaches(a, b, seen=()):
        return any(d == b or (d not in seen and reaches(d, b, seen + (d,))) for d in deps[a])

    assert not [m for m in deps if reaches(m, m)], deps
    assert deps['catalog'] == [] and 'course' not in {d for ds in deps.values() for d in ds}, deps


def _function_lengths(paths):
    out = {}
    for p in paths:
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                out[f'{p.stem}.{node.name}'] = max(
                    out.get(f'{p.stem}.{node.name}', 0), node.end_lineno - node.lineno + 1
                )
    return out


def test_no_module_over_400_lines_and_no_function_over_40():
    "The package and tools/ stay small enough to hold in mind: no module over 400 lines, no function over 40."
    paths = [p for p in [*(ROOT / 'pls_edu').glob('*.py'), *(ROOT / 'tools').glob('*.py')] if p.name != '_modidx.py']
    assert not [(p.name, n) for p in paths if (n := len(p.read_text().splitlines())) > 400]
    assert not {k: n for k, n in _function_lengths(paths).items() if n > 40}
