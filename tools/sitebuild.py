"""The course as a static site (development only): Sphinx with myst-nb, equations as MathML at build time, the course
map as the home page, the two parts in the sidebar, the API from the docstrings; every warning is an error."""

from __future__ import annotations
import json, re, shutil, time
from pathlib import Path

import nbformat

from catalog import COURSE, COURSE_PART, MODULE_ORDER, NBS, ROOT, TIMES, TRACKS, notebooks, path_of, rel, solutions

# ## The site


def _mathml(latex, block):
    from latex2mathml.converter import convert

    return convert(latex.strip(), display='block' if block else 'inline')


def _visit_math(self, node):
    from docutils import nodes

    self.body.append(_mathml(node.astext(), False))
    raise nodes.SkipNode


def _visit_displaymath(self, node):
    from docutils import nodes

    for part in re.split(r'\n\s*\n', node.astext()):
        if part.strip():
            self.body.append(f'<div class="math-display">{_mathml(part, True)}</div>')
    raise nodes.SkipNode


def setup(app):
    "Sphinx extension: render math as MathML at build time."
    app.add_html_math_renderer('mathml', (_visit_math, None), (_visit_displaymath, None))
    return {'parallel_read_safe': True, 'parallel_write_safe': True}


def api_markdown(module):
    "A markdown page of `pls_edu.<module>`: its docstring, then each exported name with its signature and docstring."
    import importlib, inspect

    m = importlib.import_module(f'pls_edu.{module}')
    nbname = next((n for n, *_ in COURSE if path_of(n).read_text().count(f'default_exp {module}') == 1), None)
    lines = [
        f'# `pls_edu.{module}`',
        '',
        (m.__doc__ or '').strip(),
        '',
        f'Built in [{nbname}](../{rel(nbname)}.ipynb).' if nbname else '',
        '',
    ]
    for name in getattr(m, '__all__', []):
        obj = getattr(m, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            try:
                sig = str(inspect.signature(obj))
            except (TypeError, ValueError):
                sig = '()'
            lines += [f'## `{name}{sig if len(sig) < 140 else "(...)"}`', '', (inspect.getdoc(obj) or '').strip(), '']
        else:
            lines += [f'## `{name}`', '', f'A constant: `{type(obj).__name__}`.', '']
    return '\n'.join(lines)


def _title(p):
    return nbformat.read(p, 4).cells[0].source.splitlines()[0].lstrip('# ').strip()


def readme_commands():
    "The two commands at the top of the README."
    return re.findall(r'```bash\n(.*?)```', (ROOT / 'README.md').read_text(), re.S)[:2]


def _track_table(track, times):
    "The home page's table of one part of the course: each notebook, what it teaches, its run time."
    out = [f'## {TRACKS[track]}', '', '| notebook | what it teaches | run time |', '|---|---|---|']
    for n, tr, what in COURSE:
        if tr != track:
            continue
        sol = f' ([solutions](solutions/{n}_solutions.ipynb))' if solutions(n) else ''
        t = times.get(f'{rel(n)}.ipynb')
        out.append(
            f'| [{_title(path_of(n))}]({rel(n)}.ipynb) `{n}` | {what}{sol} | {f"{t} s" if t is not None else "—"} |'
        )
    return out + ['']


def home_markdown():
    "The site's home page: the course map."
    times = json.loads(TIMES.read_text()) if TIMES.exists() else {}
    cmd = readme_commands()
    out = [
        '# pls_edu: Midpoint Regularization, taught and reproduced',
        '',
        "A course in notebooks on *Midpoint Regularization: from High Uncertainty Training to Conservative "
        "Classification* (Hongyu Guo): pairwise label smoothing (PLS), built from label smoothing to midpoints to the "
        "learned smoothing head, then training, calibration, out-of-distribution analyses and the main job, and then "
        "the machinery that reproduces the paper's tables at full scale. Every page shows its outputs as executed; "
        "nothing needs to run.",
        '',
        'Run the main job on the embedded data (Python 3.11 and pip):',
        '',
        '```bash',
        cmd[0].strip(),
        '```',
        '',
        'Run the whole test suite:',
        '',
        '```bash',
        cmd[1].strip(),
        '```',
        '',
    ]
    for track in COURSE_PART + ('library',):
        out += _track_table(track, times)
    out += [
        'Run times are those of the last `python tools/course.py execute` on two CPU cores, one thread per notebook.',
        '',
        'The [API](api/index.md) lists every exported function with its docstring.',
        '',
    ]
    return '\n'.join(out)


CONF = """
import sys
sys.path.insert(0, {root!r})
sys.path.insert(0, {tools!r})
project = 'pls_edu'
author = 'pls_edu developers'
extensions = ['myst_nb', 'sitebuild']
html_theme = 'sphinx_book_theme'
html_title = 'pls_edu: Midpoint Regularization'
html_math_renderer = 'mathml'
html_theme_options = {{'show_toc_level': 2, 'home_page_in_toc': True}}
html_context = {{'default_mode': 'light'}}
html_favicon = 'favicon.png'
html_static_path = ['_static']
html_css_files = ['code.css']
nb_execution_mode = 'off'
nb_ipywidgets_js = {{}}
nb_mime_priority_overrides = [('html', 'application/vnd.jupyter.widget-view+json', None)]
myst_enable_extensions = ['dollarmath', 'amsmath']
myst_heading_anchors = 3
exclude_patterns = ['_build']
suppress_warnings = ['mystnb.unknown_mime_type']
"""


# The article beside both sidebars is 672 px wide at 1280 px: at the theme's 14 px an 85-character code line needs a
# scroll bar, at 12 px it fits with a margin (tests/test_browser.py measures it).
CODE_CSS = """
div.cell_input pre, div.cell_output pre { font-size: 12px; }
"""


def for_site(src, dst):
    "Copy notebook `src` to `dst` as the site shows it: `#|` directives dropped, hidden and `default_exp` cells removed."
    nb = nbformat.read(src, 4)
    Path(dst).parent.mkdir(parents=True, exist_ok=True)  # the library's notebooks have a folder of their own
    for c in nb.cells:
        if c.cell_type != 'code':
            continue
        lines = c.source.splitlines()
        directives = ' '.join(line for line in lines if line.startswith('#|'))
        if re.search(r'#\|\s*(hide|default_exp)\b', directives) or 'nbdev_export' + '()' in c.source:
            c.metadata.setdefault('tags', []).append('remove-cell')
        c.source = '\n'.join(line for line in lines if not line.startswith('#|'))
    nbformat.write(nb, dst)


def _toctree(caption, entries):
    return ['```{toctree}', f':caption: {caption}', ':hidden:', ':maxdepth: 1', ''] + entries + ['```', '']


def site_sources(src):
    "Write the site's sources into `src`: config, home page, notebooks, solutions, images and API pages."
    src = Path(src)
    if src.exists():
        shutil.rmtree(src)
    (src / 'api').mkdir(parents=True)
    (src / 'solutions').mkdir()
    (src / 'conf.py').write_text(CONF.format(root=str(ROOT), tools=str(ROOT / 'tools')))
    import matplotlib.pyplot as plt

    (src / '_static').mkdir()
    (src / '_static' / 'code.css').write_text(CODE_CSS)
    plt.imsave(src / 'favicon.png', [[0.2, 0.6], [0.6, 0.2]], cmap='viridis')  # so that no page asks for /favicon.ico
    for p in notebooks():
        for_site(p, src / p.relative_to(NBS))
    if (NBS / 'images').exists():
        shutil.copytree(NBS / 'images', src / 'images')
    home = home_markdown().split('\n')
    for track in COURSE_PART + ('library',):
        home += _toctree(TRACKS[track], [rel(n) for n, tr, _ in COURSE if tr == track])
    home += _toctree(TRACKS['solutions'], [f'solutions/{n}_solutions' for n, *_ in COURSE if solutions(n)])
    home += _toctree('API', ['api/index'])
    (src / 'index.md').write_text('\n'.join(home))
    api = ['# API', '', 'Every module of `pls_edu`, in the order the course builds it.', '']
    (src / 'api' / 'index.md').write_text('\n'.join(api + _toctree('Modules', MODULE_ORDER)[:-1] + ['']))
    for m in MODULE_ORDER:
        (src / 'api' / f'{m}.md').write_text(api_markdown(m))
    return src


def build_site(out=None, src=None, log=print, write_sources=True):
    "Build the site into `out` (default `_site/`) from sources it writes into `src`, warnings as errors; the seconds."
    from sphinx.cmd.build import build_main

    out, src = Path(out or ROOT / '_site'), Path(src or ROOT / '_build' / 'site-src')
    html = src.parent / 'site-html'  # myst-nb writes a folder beside the html one: build inside _build
    t0 = time.perf_counter()
    if write_sources:
        site_sources(src)
    if html.exists():
        shutil.rmtree(html)
    code = build_main(
        ['-b', 'html', '-W', '--keep-going', '-q', '-d', str(src.parent / 'doctrees'), str(src), str(html)]
    )
    if code:
        raise RuntimeError("the site build failed (warnings are errors here); see the messages above")
    if out.exists():
        shutil.rmtree(out)
    shutil.move(str(html), str(out))
    s = time.perf_counter() - t0
    log(f"site built into {out} in {s:.0f} s")
    return s
