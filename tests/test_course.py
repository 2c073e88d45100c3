"The course as a reader meets it: lessons in order, shaped as lessons, references resolving, outputs committed and clean."

import ast
import json
import re
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / 'tools'))
import course  # noqa: E402  (tools/course.py: development tooling, not part of the package)

NBS = course.NBS
PARTS = ['method', 'evidence', 'capstone', 'library']
# the lessons: the method and the main job on digits, each with exercises and solutions
TEACHING = course.LESSONS
EVIDENCE = ['16_mnist', '17_regime', '19_capstone']  # the real-MNIST results, with exercises on the committed files
RULES_ONLY = ['18_curve']  # exercises on the learning curve's registered rules (its runs are still arriving)
IN_COURSE = [n for n, track, _ in course.COURSE if track in course.COURSE_PART]


def nb(name):
    return nbformat.read(course.path_of(name), 4)


def md(name):
    return '\n'.join(c.source for c in nb(name).cells if c.cell_type == 'markdown')


def code_cells(path):
    return [c for c in nbformat.read(path, 4).cells if c.cell_type == 'code']


def test_the_course_reads_in_file_order():
    """The course first (method, evidence, capstone) in nbs/, numbered from 00 without a gap, then the library in
    nbs/library/, numbered from 50 without a gap; each listed once."""
    names = [n for n, *_ in course.COURSE]
    assert names == sorted(names)
    lessons = [n for n, t, _ in course.COURSE if t != 'library']
    library = [n for n, t, _ in course.COURSE if t == 'library']
    assert lessons == sorted(p.stem for p in NBS.glob('[0-9][0-9]_*.ipynb'))
    assert library == sorted(p.stem for p in (NBS / 'library').glob('[0-9][0-9]_*.ipynb'))
    assert [int(n[:2]) for n in lessons] == list(range(len(lessons)))
    assert [int(n[:2]) for n in library] == list(range(50, 50 + len(library)))
    tracks = [t for _, t, _ in course.COURSE]
    assert tracks == sorted(tracks, key=PARTS.index)
    assert tuple(PARTS[:3]) == course.COURSE_PART and tracks.count('capstone') == 1
    assert [n for n, t, _ in course.COURSE if t == 'capstone'][0].endswith('_capstone')
    assert [f'{i:02d}_{n.split("_", 1)[1]}' for i, n in enumerate(TEACHING)] == TEACHING


def _module_notebooks():
    out = {}
    for n, *_ in course.COURSE:
        m = re.search(r'#\|\s*default_exp (\w+)', course.path_of(n).read_text())
        if m:
            out[m.group(1)] = n
    return out


def test_no_notebook_uses_what_a_later_notebook_teaches():
    """Within the course, no notebook (or its solutions) imports a module that a later course notebook teaches; a
    course notebook may use the library's tools, which the library part documents. The library's own imports point
    back down the file order, never forward; a course module may import a library tool (`train` uses `config`) only if
    everything that tool stands on was taught before it."""
    where = _module_notebooks()
    order = [n for n, *_ in course.COURSE]
    bad = []
    for p in course.notebooks():
        if p.stem.startswith('00_game'):
            continue  # the whole game trains with the library as a tool, before any piece of it is taught
        me = order.index(p.stem.removesuffix('_solutions'))
        for c in code_cells(p):
            for m in re.findall(r'(?:from|import) pls_edu\.(\w+)', c.source):
                if m not in where:
                    bad.append((p.name, m, None))
                elif where[m] in IN_COURSE and order.index(where[m]) > me:
                    bad.append((p.name, m, where[m]))
    assert not bad, bad
    imports = course.module_imports()

    def below(d):  # every module `d` stands on, directly or not
        return set(imports[d]).union(*(below(e) for e in imports[d]))

    for m, deps in imports.items():
        for d in deps:
            if order.index(where[d]) < order.index(where[m]):
                continue
            # a course module may use a library tool only if the tool stands on what the course taught before it
            assert where[m] in IN_COURSE and where[d] not in IN_COURSE, (m, d)
            later = [e for e in below(d) if order.index(where[e]) >= order.index(where[m]) and where[e] in IN_COURSE]
            assert not later, (m, d, later)


@pytest.mark.parametrize('name', TEACHING)
def test_teaching_notebooks_are_shaped_as_lessons(name):
    cells = nb(name).cells
    intro = cells[1].source
    for part in ('**What you will learn**', '**Before this:**', '**Run time:**'):
        assert part in intro, (name, part)
    assert 2 <= len(re.findall(r'^> - ', intro, re.M)) <= 5
    text = md(name)
    summary = text.split('## Summary', 1)[1].split('##', 1)[0]
    assert 3 <= len(re.findall(r'^- ', summary, re.M)) <= 5, summary
    ex = text.split('## Exercises', 1)[1]
    n_ex = len(re.findall(r'^\d+\. ', ex, re.M))
    assert n_ex >= 3
    link = re.search(r'\((solutions/[\w]+\.ipynb)\)', ex).group(1)
    assert link == f'solutions/{name}_solutions.ipynb'
    answers = [c.source for c in code_cells(NBS / link)][1:]
    assert len(answers) >= n_ex
    assert all('assert' in a or 'test_' in a or re.search(r'^check_\d+\(', a, re.M) for a in answers), name


def test_enough_exercises_with_checked_solutions():
    n = sum(len(re.findall(r'^\d+\. ', md(name).split('## Exercises', 1)[1], re.M)) for name in TEACHING)
    assert n >= 45, n
    have = {p.stem.removesuffix('_solutions') for p in (NBS / 'solutions').glob('*.ipynb')}
    assert have == set(TEACHING + EVIDENCE + RULES_ONLY)


def test_the_evidence_has_exercises_on_the_committed_results():
    "At least six exercises on the evidence, each answered from `nbs/measured/` and checked against the library."
    n = 0
    for name in EVIDENCE:
        ex = md(name).split('## Exercises', 1)[1]
        n += len(re.findall(r'^\d+\. ', ex, re.M))
        assert f'(solutions/{name}_solutions.ipynb)' in ex
        src = '\n'.join(c.source for c in code_cells(NBS / 'solutions' / f'{name}_solutions.ipynb'))
        assert "Path('../measured')" in src and 'def check_' in src
    assert n >= 6, n


TRIVIAL = [
    r'assert\s+(\w+)\s*<=\s*\1\b',  # x <= x
    r'assert\s+True\b',
    r'assert\s+min\((\w+)\)\s*<=\s*\1\[',  # min(xs) <= xs[i]
    r'assert\s+\w+\s*<=\s*\w+\s*#\s*best',  # best <= final
]


def test_solutions_assert_something_a_wrong_answer_would_fail():
    "No solution asserts what cannot fail (the minimum of a list is at most its elements; the best epoch <= the last)."
    bad = []
    for p in sorted((NBS / 'solutions').glob('*.ipynb')):
        for c in code_cells(p):
            for pat in TRIVIAL:
                bad += [(p.name, m.group(0)) for m in re.finditer(pat, c.source)]
            for line in c.source.splitlines():
                m = re.match(r'\s*assert\s+0\s*<\s*(\w+)\s*<\s*1\b', line)
                if m:
                    bad.append((p.name, line.strip()))  # a sigmoid's output is always in (0, 1)
    assert not bad, bad


def test_the_papers_equations_are_written_next_to_their_code():
    want = {
        '02_smoothing': ['(1)', '(3)', '(4)', '(5)'],
        '03_midpoints': ['(6)', '(7)', '(8)', '(9)', '(10)'],
        '04_head': ['(2)', '(11)', '(12)', '(13)', '(14)'],
        '08_metrics': [r'\mathrm{ECE}'],
        '09_temperature': [r'\mathrm{softmax}(z / T)'],
    }
    for name, marks in want.items():
        for m in marks:
            assert m in md(name), (name, m)


# every departure: the README's table, and a callout where it happens ------------------------------------------------


def departures():
    "The README's departures table: one row per departure, with the notebook it is called out in."
    text = (ROOT / 'README.md').read_text()
    part = text.split('## Where the course departs from the paper', 1)[1].split('\n## ', 1)[0]
    rows = [r for r in part.splitlines() if re.match(r'\| \d+ \|', r)]
    return [(r, re.findall(r'\[`(\d\d_\w+)`\]', r)) for r in rows]


def test_every_departure_is_in_the_readme_table_and_called_out_where_it_happens():
    rows = departures()
    assert len(rows) >= 14
    for row, where in rows:
        assert where, f"departure row names no notebook: {row}"
        callouts = [line for line in md(where[0]).splitlines() if line.startswith('> **Paper vs this course')]
        assert callouts, (where[0], row)
    named = ' '.join(r for r, _ in rows)
    for topic in (
        'pairing',
        'gradient',
        'no-learned',
        'pls-ud',
        'reweight',
        'pls-coeff',
        'augment',
        'schedule',
        'precision',
        'alternat',
        'final',
        'holdout',
        'temperature',
    ):
        assert topic in named, topic


def test_every_notebook_named_anywhere_exists():
    "A reference such as 10_train in a notebook or the README names a notebook of the course."
    have = {p.stem for p in course.notebooks()} | {p.stem for p in NBS.glob('*.ipynb')}
    texts = {p.name: ' '.join(c.source for c in nbformat.read(p, 4).cells) for p in course.notebooks()}
    texts['README.md'] = (ROOT / 'README.md').read_text()
    texts['data/README.md'] = (ROOT / 'data' / 'README.md').read_text()
    pat = r'(?<![\w/.-])(\d\d_[a-z][a-z0-9]*(?:_solutions)?)\b'
    bad = [(f, ref) for f, t in texts.items() for ref in set(re.findall(pat, t)) if ref not in have]
    assert not bad, bad


def test_notebook_numbers_in_prose_point_at_the_right_notebook():
    "'notebook 09' in prose is 09_temperature, and the text near it names what that notebook teaches."
    names = {n[:2]: n for n, *_ in course.COURSE}
    bad = []
    for p in course.notebooks():
        for c in nbformat.read(p, 4).cells:
            if c.cell_type != 'markdown':
                continue
            bad += [(p.name, m) for m in re.findall(r'notebooks? (\d\d)\b', c.source) if m not in names]
    assert not bad, bad


# code that fits the page, and one statement per line ---------------------------------------------------------------

SITE_WIDTH = 85  # characters of code the site shows at 1280 px without a scroll bar


def test_teaching_code_fits_the_sites_code_width():
    long = []
    for p in course.notebooks():
        if p.stem.removesuffix('_solutions') not in TEACHING:
            continue
        for i, c in enumerate(nbformat.read(p, 4).cells):
            if c.cell_type == 'code' and not re.search(r'#\|\s*hide', c.source):
                long += [(p.name, i, len(line)) for line in c.source.splitlines() if len(line) > SITE_WIDTH]
    assert not long, long


def _nbdev_all(line):
    "nbdev writes `__all__` itself, wrapped at 120 characters after its 10-character prefix."
    return line.startswith('__all__ = [') or line.startswith('           ')


def test_exported_code_is_one_statement_per_line_within_120_characters():
    bad = []
    for p in sorted((ROOT / 'pls_edu').glob('*.py')):
        if p.name.startswith('_'):
            continue
        src = p.read_text()
        lines = src.splitlines()
        bad += [(p.name, i + 1) for i, line in enumerate(lines) if len(line) > 120 and not _nbdev_all(line)]
        seen = {}
        for node in ast.walk(ast.parse(src)):
            if isinstance(node, ast.stmt):
                seen.setdefault(node.lineno, []).append(node)
                for field in ('body', 'orelse', 'finalbody'):
                    body = getattr(node, field, None) or []
                    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) or field != 'body':
                        bad += [(p.name, b.lineno, 'on its header line') for b in body if b.lineno == node.lineno]
        bad += [
            (p.name, ln, 'statements') for ln, ns in seen.items() if len([n for n in ns if not hasattr(n, 'body')]) > 1
        ]
    assert not bad, bad


def test_trainer_methods_are_patched_not_assigned():
    src = (ROOT / 'pls_edu' / 'train.py').read_text()
    assert not re.search(r'^Trainer\.\w+ = ', src, re.M)
    assert src.count('@patch') >= 5
    from pls_edu import train

    for name in train.__all__:
        obj = getattr(train, name)
        assert not (callable(obj) and getattr(obj, '__qualname__', '').startswith('Trainer.')), name


# the architecture --------------------------------------------------------------------------------------------------


def test_the_package_has_at_most_seven_floors_and_file_helpers_come_from_files():
    floors = course.floors()
    assert max(floors.values()) <= 7, floors
    helpers = set(__import__('pls_edu.files', fromlist=['__all__']).__all__)
    for p in sorted((ROOT / 'pls_edu').glob('*.py')):
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module != 'files':
                names = {a.name for a in node.names}
                assert not names & helpers, (p.name, node.module, names & helpers)
    assert '<!-- course:architecture -->' in (ROOT / 'README.md').read_text()


def test_each_module_is_described_by_a_whole_sentence():
    # a sentence cut at 'eq.' or 'Fig.' leaves an open parenthesis, as the README once showed
    rows = course.architecture_markdown().splitlines()[2:]
    assert len(rows) == len(course.module_imports())
    for row in rows:
        what = row.split(' | ')[2]
        assert what.count('(') == what.count(')') and len(what) > 30, row


def test_the_committed_run_notebook_is_the_generated_one():
    from pls_edu.runnotebook import run_notebook

    fresh = [c.source for c in run_notebook().cells]
    assert [c.source for c in nb('63_run').cells] == fresh


# the committed outputs ---------------------------------------------------------------------------------------------


def outputs(name):
    return [o for c in nb(name).cells for o in c.get('outputs', [])]


def images(name):
    return sum('image/png' in o.get('data', {}) for o in outputs(name))


@pytest.mark.parametrize('root', ['/work/pls_edu', '/tmp/ci', '/home/ann/pls_edu'])
def test_leaks_names_each_path_once_wherever_the_clone_is(monkeypatch, root):
    monkeypatch.setattr(course, 'ROOT', Path(root))
    c = nbformat.v4.new_code_cell('')
    text = f'wrote {root}/x and /tmp/y, by /home/bob\n'
    c.outputs = [nbformat.v4.new_output('stream', name='stdout', text=text)]
    found = course.leaks(nbformat.v4.new_notebook(cells=[c]))
    assert found == [f'cell 0: {root}', 'cell 0: /tmp/y,', 'cell 0: /home/bob'], found


def test_every_notebook_is_committed_with_its_outputs_small_and_clean():
    total = 0
    for p in course.notebooks():
        n = nbformat.read(p, 4)
        cells = [c for c in n.cells if c.cell_type == 'code']
        assert any(c.get('outputs') for c in cells), f"{p.name} has no outputs: run tools/course.py execute"
        assert not course.leaks(n), (p.name, course.leaks(n))
        assert all(c.get('execution_count') is None for c in cells), f"{p.name}: run nbdev_clean"
        assert not [o for c in cells for o in c.get('outputs', []) if o['output_type'] == 'error'], p.name
        total += course.output_bytes(n)
    assert total < 5e6, f"{total / 1e6:.2f} MB of outputs"


def test_every_figure_a_notebook_draws_is_shown():
    "A cell that makes a matplotlib figure shows it as an image output (no figure is drawn and left unseen)."
    hidden = []
    for p in course.notebooks():
        for i, c in enumerate(code_cells(p)):
            draws = re.search(r'plt\.subplots\(|plt\.figure\(|\bplot_\w+\(', c.source)
            shown = any('image/png' in o.get('data', {}) for o in c.get('outputs', []))
            if draws and not course.skipped(c) and not re.search(r'^\s*def ', c.source, re.M) and not shown:
                hidden.append((p.name, i))
    assert not hidden, hidden


def test_what_a_reader_must_see_without_running_anything():
    assert images('03_midpoints') >= 1
    assert images('04_head') >= 1
    assert images('08_metrics') >= 1
    assert images('10_train') >= 1  # learning curves
    assert images('12_calibration') >= 4
    assert images('13_ood') >= 1
    assert images('15_report') >= 2  # learning curves, winning-softmax histograms
    widgets = [o for o in outputs('14_explore') if 'application/vnd.jupyter.widget-view+json' in o.get('data', {})]
    assert len(widgets) == 3  # each explorer as a widget
    assert images('14_explore') >= 3  # and as a static picture
    text = ' '.join(
        ''.join(o.get('text', '')) + ''.join(o.get('data', {}).get('text/plain', '')) for o in outputs('15_report')
    )
    assert 'vs ERM: by seed (95% CI)' in text
    assert 'over test images (95% CI)' in text


def test_readme_shows_what_the_notebooks_printed():
    "The README's generated sections are the files' own (python tools/course.py readme)."
    assert course.update_readme(write=False) == [], 'run python tools/course.py readme and commit README.md'
    table = course.readme_sections()['main-table']
    assert table.startswith('```\nmethod ')
    assert len(table.splitlines()) == 2 + 2 + 9  # fences, head and rule, nine methods


def test_comparison_ignores_only_what_may_vary():
    c = nbformat.v4.new_code_cell('x')
    png = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAAC'
    c.outputs = [
        nbformat.v4.new_output('stream', name='stdout', text='a = 1.5\n'),
        nbformat.v4.new_output('stream', name='stdout', text='b\n'),
        nbformat.v4.new_output('display_data', data={'text/plain': '<Figure at 0x7f00aa>', 'image/png': png}),
    ]
    assert course.comparable(c) == [('stream:stdout', 'a = 1.5\nb'), ('text/plain', '<Figure>'), ('image/png', (1, 2))]
    assert course.comparable(c, mask_numbers=True)[0] == ('stream:stdout', 'a = #\nb')


def test_a_failing_cell_is_named_with_its_line(tmp_path, monkeypatch):
    import nbrun  # tools/nbrun.py, where notebooks are executed

    p = tmp_path / 'broken.ipynb'
    n = nbformat.v4.new_notebook()
    n.cells = [nbformat.v4.new_markdown_cell('# t'), nbformat.v4.new_code_cell('x = 1\ny = 2\nassert x == y, "differ"')]
    nbformat.write(n, p)
    monkeypatch.setattr(nbrun, 'NBS', tmp_path)
    with pytest.raises(course.CellFailed) as e:
        course.execute_notebook(p)
    msg = str(e.value)
    assert msg.startswith('broken.ipynb cell 1 (id ')
    assert 'line 3: assert x == y, "differ" -> AssertionError: differ' in msg


def _tiny_site(src):
    "The site's sources cut to the home page, one lesson and the glossary it links to: a build in seconds."
    course.site_sources(src)
    for p in list(src.rglob('*.ipynb')) + list((src / 'api').glob('*.md')):
        if p.name not in ('01_data.ipynb', '01_data_solutions.ipynb'):
            p.unlink()
    glossary = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell('# Notation and glossary')])
    nbformat.write(glossary, src / '19_capstone.ipynb')  # the page every notebook links to
    game = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell('# The whole game')])
    nbformat.write(game, src / '00_game.ipynb')  # the lesson before the data lesson, which links to it
    datasets = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell('# Datasets')])
    (src / 'library').mkdir(exist_ok=True)
    nbformat.write(datasets, src / 'library' / '54_datasets.ipynb')  # the library page the data lesson links to
    pages = '00_game\n01_data\nsolutions/01_data_solutions\nlibrary/54_datasets\n19_capstone'
    (src / 'index.md').write_text(f'# pls_edu\n\n```{{toctree}}\n:hidden:\n{pages}\n```\n')
    return src


def test_the_site_build_fails_on_a_broken_link_or_image(tmp_path):
    "Warnings are errors: the cut-down site builds, and a link to a missing notebook or a missing image stops it."
    quiet = dict(log=lambda s: None, write_sources=False)
    src = _tiny_site(tmp_path / 'ok')
    course.build_site(tmp_path / 'site-ok', src, **quiet)
    assert (tmp_path / 'site-ok' / '01_data.html').exists()
    for i, bad in enumerate(('[the next lesson](99_nowhere.ipynb)', '![a figure](images/nowhere.png)')):
        src = _tiny_site(tmp_path / f'bad{i}')
        n = nbformat.read(src / '01_data.ipynb', 4)
        n.cells.append(nbformat.v4.new_markdown_cell(f'See {bad}.'))
        nbformat.write(n, src / '01_data.ipynb')
        with pytest.raises(RuntimeError, match='the site build failed'):
            course.build_site(tmp_path / f'site{i}', src, **quiet)


def test_measured_summaries_are_small_and_complete():
    "The committed MNIST summaries hold every run of both presets with its 10,000 packed test predictions."
    from pls_edu.presets import preset_runs
    from pls_edu.results import read_summary

    files = {p.name: p for p in (NBS / 'measured').glob('*.json')}
    for name in ('cpu-mnist', 'cpu-mnist-ablations'):
        res, meta = read_summary(files[f'{name}.json'])
        want = {(r.config.method, r.config.seed) for r in preset_runs(name)}
        assert {(r['config']['method'], r['config']['seed']) for r in res} == want
        assert all(len(r['pred']) == 10000 for r in res)
        for r in res:  # the packed predictions are the ones each run scored
            assert 100 * (r['pred'] != r['labels']).mean() == pytest.approx(r['final']['error'], abs=1e-9), r['config']
        assert files[f'{name}.json'].stat().st_size < 400e3
        assert json.loads(files[f'{name}.json'].read_text())['preset'] == name


def _seconds_said(phrase):
    "The range of seconds a run-time phrase allows."
    words = {'a': 1, 'one': 1, 'two': 2, 'three': 3, 'four': 4, 'five': 5}
    if phrase.startswith('a few seconds'):
        return 0, 20
    m = re.match(r'about (\w+) (second|minute)s?', phrase)
    n = words.get(m.group(1)) or int(m.group(1))
    s = n * (60 if m.group(2) == 'minute' else 1)
    return s / 2, s * 2


@pytest.mark.parametrize('name', TEACHING)
def test_run_times_in_prose_are_the_measured_ones(name):
    "Each lesson's 'Run time' agrees (within a factor of two) with its last measured execution."
    times = json.loads(course.TIMES.read_text())
    said = re.search(r'\*\*Run time:\*\* ([^.;(]+)', nb(name).cells[1].source).group(1).strip()
    lo, hi = _seconds_said(said)
    assert lo <= times[f'{name}.ipynb'] <= hi, (name, said, times[f'{name}.ipynb'])


DRAW = re.compile(
    r'\btorch\.(?:rand|randn|randint|randperm|rand_like|randn_like|randint_like|bernoulli|multinomial|normal)\('
    r'|\.(?:uniform_|normal_|random_|bernoulli_|exponential_)\('
    r'|\bnp\.random\.(?!seed\b|default_rng\b)\w+\('
)
# the global generators only: a seeded `torch.Generator()` or `default_rng(0)` seeds nothing but itself
SEED = re.compile(r'\btorch\.manual_seed\(|\bnp\.random\.seed\(')


def call_args(src, start):
    "The text of a call's arguments, from just after its opening parenthesis to the one that closes it."
    depth = 1
    for i in range(start, len(src)):
        depth += {'(': 1, ')': -1}.get(src[i], 0)
        if depth == 0:
            return src[start:i]
    return src[start:]


def first_unseeded_draw(sources):
    "The first random draw in code cells `sources` that no earlier seed fixes, as 'code cell N: text', or None."
    seeded = False
    for i, src in enumerate(sources):
        marks = [(m.start(), 'seed') for m in SEED.finditer(src)]
        draws = DRAW.finditer(src)
        marks += [(m.start(), 'draw') for m in draws if 'generator=' not in call_args(src, m.end())]
        for pos, kind in sorted(marks):
            if kind == 'seed':
                seeded = True
            elif not seeded:
                return f"code cell {i}: {src[pos : pos + 40]!r}"
    return None


def test_first_unseeded_draw_finds_what_it_should():
    def book(*cells):
        return first_unseeded_draw(cells)

    assert book("x = torch.randn(3)") is not None
    assert book("torch.manual_seed(0)\nx = torch.randn(3)") is None
    assert book("x = torch.randn(3)\ntorch.manual_seed(0)") is not None
    assert book("np.random.seed(0)", "x = np.random.normal(size=3)") is None
    assert book("g = np.random.default_rng(0)", "x = np.random.normal(size=3)") is not None
    assert book("g = torch.Generator().manual_seed(0)\nx = torch.randn(3)") is not None
    assert book("print('one of: derangement, randperm')") is None
    assert book("i = torch.randperm(n, generator=g)") is None  # the caller seeds its own generator
    assert book("i = torch.randperm(f(n), device=d)") is not None


def test_every_notebook_seeds_before_it_draws_random_numbers():
    """A notebook's checks run on numbers drawn at random; unseeded, a tight check fails on a few draws in a hundred
    (the gradient identity of exercise 3 in 01's solutions failed on 54 of 2,000 seeds, and failed CI once), and a
    reader could not reproduce what the committed outputs show."""
    paths = sorted(NBS.glob('*.ipynb')) + sorted((NBS / 'solutions').glob('*.ipynb'))
    bad = {p.name: d for p in paths if (d := first_unseeded_draw([c.source for c in code_cells(p)]))}
    assert not bad, bad


def test_library_tools_are_introduced_with_a_link():
    "A course notebook that imports a library module links to the library notebook that documents it."
    lib = {}
    for p in sorted((NBS / 'library').glob('*.ipynb')):
        m = re.search(r'default_exp (\w+)', p.read_text())
        if m:
            lib[m.group(1)] = p.stem
    bad = []
    for p in sorted(NBS.glob('[0-9][0-9]_*.ipynb')):
        nb = nbformat.read(p, 4)
        md = '\n'.join(c.source for c in nb.cells if c.cell_type == 'markdown')
        code = '\n'.join(c.source for c in nb.cells if c.cell_type == 'code')
        used = set(re.findall(r'(?:from|import) pls_edu\.(\w+)', code)) | set(
            re.findall(r'from pls_edu import (\w+)', code)
        )
        bad += [(p.stem, m) for m in sorted(used & set(lib)) if f'(library/{lib[m]}.ipynb)' not in md]
    assert not bad, bad


def _size(p):
    cells = nbformat.read(p, 4).cells
    return len(cells), sum(len(c.source.splitlines()) for c in cells if c.cell_type == 'code')


def test_each_course_notebook_holds_at_most_40_cells_and_250_lines_of_code():
    "One idea per lesson (issue 32): every course notebook within 40 cells and 250 lines of code, blank lines counted."
    sizes = {n: _size(course.path_of(n)) for n in IN_COURSE}
    over = {n: s for n, s in sizes.items() if s[0] > 40 or s[1] > 250}
    assert not over, f'over 40 cells or 250 lines of code (cells, lines): {over}'
