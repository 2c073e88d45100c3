"The repository's own promises: settings, environment, README commands and CI agree with each other."
import configparser, re, shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def settings():
    c = configparser.ConfigParser(delimiters=['=']); c.read(ROOT/'settings.ini')
    return c['DEFAULT']


def test_settings_pins_and_nbdev_options():
    s = settings()
    dev = shlex.split(s['dev_requirements'])
    assert 'nbdev==2.4.14' in dev and 'fastcore>=1.12.3,<2' in dev and 'execnb<0.2' in dev
    assert s['tst_flags'].split() == ['notest', 'slow', 'gpu']
    assert s['allowed_cell_metadata_keys'].strip() == 'tags'      # keeps papermill's "parameters" tag and our "volatile" tag
    assert s['clear_all'].strip() == 'False'                       # nbdev_clean keeps the committed outputs
    for pkg in ('torch', 'torchvision', 'matplotlib', 'papermill', 'ipywidgets'):
        assert any(r.split('>')[0].split('=')[0].split('<')[0] == pkg for r in shlex.split(s['requirements'])), pkg
    assert 'jupyterlab' in dev


def test_environment_yml_is_true_to_settings():
    env = (ROOT/'environment.yml').read_text()
    py = re.search(r'-\s*python\s*=\s*([\d.]+)', env).group(1)
    assert py == settings()['min_python']
    assert re.search(r'-\s*pip\s*$', env, re.M) and '-e .[dev]' in env    # everything else comes from settings.ini


def test_readme_starts_with_the_two_commands_and_ci_runs_the_test_one():
    readme = (ROOT/'README.md').read_text()
    blocks = re.findall(r'```(?:bash|sh)?\n(.*?)```', readme, re.S)
    first_screen = readme[:2500]
    assert blocks[0].strip() in first_screen and blocks[1].strip() in first_screen
    assert 'pls-compare' in blocks[0] and 'pip install' in blocks[0]
    assert blocks[1].strip() == '.ci/run'
    ci = (ROOT/'.ci'/'run').read_text()
    for step in ('pip install', 'nbdev_clean', 'nbdev_export', 'pls-course check', 'pls-course site', 'pytest'):
        assert step in ci, step


def test_every_exported_module_has_one_notebook():
    nbs = sorted(p.name for p in (ROOT/'nbs').glob('[0-9]*.ipynb'))
    mods = {p.stem for p in (ROOT/'pls_edu').glob('*.py')} - {'__init__', '_modidx'}
    exported = []
    for nb in nbs:
        m = re.search(r'default_exp (\w+)', (ROOT/'nbs'/nb).read_text())
        if m: exported.append(m.group(1))
    assert sorted(exported) == sorted(mods) and len(set(exported)) == len(exported)
    numbers = [n.split('_')[0] for n in nbs]
    assert len(set(numbers)) == len(numbers), 'two notebooks share a number'
