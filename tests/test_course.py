"The course as a reader meets it: lessons shaped as lessons, every reference resolving, committed outputs present, small and clean."
import json, re
from pathlib import Path

import nbformat
import pytest

from pls_edu.course import COURSE, NBS, ROOT, notebooks, solutions, leaks, output_bytes, comparable

TEACHING = ['00_data', '01_smoothing', '02_midpoints', '03_head', '04_methods', '07_metrics', '08_train', '11_compare',
            '14_calibration', '15_ood', '16_explore']


def nb(name): return nbformat.read(NBS/f'{name}.ipynb', 4)
def md(name): return '\n'.join(c.source for c in nb(name).cells if c.cell_type == 'markdown')


@pytest.mark.parametrize('name', TEACHING)
def test_teaching_notebooks_are_shaped_as_lessons(name):
    cells = nb(name).cells
    intro = cells[1].source
    assert '**What you will learn**' in intro and '**Before this:**' in intro and '**Run time:**' in intro, intro
    assert 2 <= len(re.findall(r'^> - ', intro, re.M)) <= 4
    text = md(name)
    summary = text.split('## Summary', 1)[1].split('##', 1)[0]
    assert 3 <= len(re.findall(r'^- ', summary, re.M)) <= 5, summary
    ex = text.split('## Exercises', 1)[1]
    assert len(re.findall(r'^\d+\. ', ex, re.M)) >= 3
    link = re.search(r'\((solutions/[\w]+\.ipynb)\)', ex).group(1)
    assert link == f'solutions/{name}_solutions.ipynb' and (NBS/link).exists()
    sol = nbformat.read(NBS/link, 4)
    answers = [c.source for c in sol.cells if c.cell_type == 'code'][1:]
    assert len(answers) >= len(re.findall(r'^\d+\. ', ex, re.M)) and all('assert' in a for a in answers), name


def test_thirty_exercises_with_checked_solutions():
    n = sum(len(re.findall(r'^\d+\. ', md(name).split('## Exercises', 1)[1], re.M)) for name in TEACHING)
    assert n >= 30, n
    assert {p.stem.removesuffix('_solutions') for p in (NBS/'solutions').glob('*.ipynb')} == set(TEACHING)


def test_the_papers_equations_are_written_next_to_their_code():
    want = {'01_smoothing': ['(1)', '(3)', '(4)', '(5)'], '02_midpoints': ['(6)', '(7)', '(8)', '(9)', '(10)'],
            '03_head': ['(11)', '(12)', '(13)', '(14)'], '07_metrics': [r'\mathrm{ECE}'], '14_calibration': [r'\mathrm{softmax}(z / T)']}
    for name, marks in want.items():
        maths = ' '.join(re.findall(r'\$\$(.+?)\$\$', md(name), re.S)) + ' ' + md(name)
        for m in marks: assert m in maths, (name, m)


def test_every_departure_from_the_paper_is_called_out_where_it_happens():
    where = {'08_train': ['learning-rate schedule', 'precision', 'alternation', 'which error'], '04_methods': ['how batches alternate', 'predicting the smoothing coefficient'],
             '14_calibration': ['which temperature, when', 'multiply or divide'], '11_compare': ['a 20% holdout']}
    for name, topics in where.items():
        calls = [l for l in md(name).splitlines() if l.startswith('> **Paper vs this course')]
        for t in topics: assert any(t in c for c in calls), (name, t, calls)


def test_every_notebook_named_anywhere_exists():
    "A reference such as 09_datasets in a notebook or the README names a notebook of the course (the stale 10_datasets is gone)."
    have = {p.stem for p in notebooks()} | {p.stem for p in NBS.glob('*.ipynb')}
    texts = {str(p.relative_to(ROOT)): ' '.join(c.source for c in nbformat.read(p, 4).cells) for p in notebooks()}
    texts['README.md'] = (ROOT/'README.md').read_text()
    texts['data/README.md'] = (ROOT/'data'/'README.md').read_text()
    bad = [(f, ref) for f, t in texts.items() for ref in set(re.findall(r'(?<![\w/.-])(\d\d_[a-z][a-z0-9]*(?:_solutions)?)\b', t)) if ref not in have]
    assert not bad, bad
    assert '10_datasets' not in texts['nbs/00_data.ipynb']


def test_the_course_map_lists_every_notebook_once():
    assert sorted(n for n, *_ in COURSE) == sorted(p.stem for p in NBS.glob('[0-9][0-9]_*.ipynb'))


# the committed outputs -------------------------------------------------------------------------------------------

def outputs(name):
    return [o for c in nb(name).cells for o in c.get('outputs', [])]


def images(name): return sum('image/png' in o.get('data', {}) for o in outputs(name))


def test_every_notebook_is_committed_with_its_outputs_small_and_clean():
    total = 0
    for p in notebooks():
        n = nbformat.read(p, 4)
        assert any(c.get('outputs') for c in n.cells if c.cell_type == 'code'), f"{p.name} has no outputs: run pls-course execute"
        assert not leaks(n), (p.name, leaks(n))
        assert all(c.get('execution_count') is None for c in n.cells if c.cell_type == 'code'), f"{p.name}: run nbdev_clean"
        assert not [o for c in n.cells for o in c.get('outputs', []) if o['output_type'] == 'error'], p.name
        total += output_bytes(n)
    assert total < 4e6, f"{total / 1e6:.2f} MB of outputs"


def test_what_a_reader_must_see_without_running_anything():
    assert images('02_midpoints') >= 1 and images('03_head') >= 2 and images('07_metrics') >= 1
    assert images('14_calibration') >= 4 and images('15_ood') >= 1 and images('11_compare') >= 2
    widgets = [o for o in outputs('16_explore') if 'application/vnd.jupyter.widget-view+json' in o.get('data', {})]
    assert len(widgets) == 3 and images('16_explore') >= 3          # each explorer as a widget and as a static picture
    text = ' '.join(''.join(o.get('text', '')) + ''.join(o.get('data', {}).get('text/plain', '')) for o in outputs('11_compare'))
    assert '| method | seeds | error (%) | vs ERM (95% CI) |' in text and 'pls' in text


def test_readme_shows_what_the_notebooks_printed():
    "The README's table of the main job, its analysis, the course map and the fault table are the files' own (pls-course readme)."
    from pls_edu.course import update_readme, readme_sections
    assert update_readme(write=False) == [], 'run pls-course readme and commit README.md'
    table = readme_sections()['main-table']
    assert table.startswith('| method | seeds | error (%) | vs ERM (95% CI) |') and len(table.splitlines()) == 11


def test_comparison_ignores_only_what_may_vary():
    c = nbformat.v4.new_code_cell('x')
    c.outputs = [nbformat.v4.new_output('stream', name='stdout', text='a = 1.5\n'), nbformat.v4.new_output('stream', name='stdout', text='b\n'),
                 nbformat.v4.new_output('display_data', data={'text/plain': '<Figure at 0x7f00aa>', 'image/png': 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAAC'})]
    assert comparable(c) == [('stream:stdout', 'a = 1.5\nb'), ('text/plain', '<Figure>'), ('image/png', (1, 2))]
    assert comparable(c, mask_numbers=True)[0] == ('stream:stdout', 'a = #\nb')


def test_the_site_build_fails_on_a_broken_link_or_image(tmp_path):
    "Warnings are errors: a link to a notebook that does not exist, or a missing image, stops the build."
    from pls_edu.course import site_sources, build_site
    for bad in ('[the next lesson](99_nowhere.ipynb)', '![a figure](images/nowhere.png)'):
        src = site_sources(tmp_path/'src')
        n = nbformat.read(src/'00_data.ipynb', 4)
        n.cells.append(nbformat.v4.new_markdown_cell(f'See {bad}.'))
        nbformat.write(n, src/'00_data.ipynb')
        with pytest.raises(RuntimeError, match='the site build failed'):
            build_site(tmp_path/'site', src, log=lambda s: None, write_sources=False)
