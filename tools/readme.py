"""The README's generated sections and the package's architecture (development only): the import floors computed from
the sources, and every section rendered from what the notebooks printed, the tests state and the measured files."""

from __future__ import annotations
import argparse, ast, html, json, re

import nbformat

import cross_cpu
from catalog import COURSE, COURSE_PART, MODULE_ORDER, NBS, PKG, ROOT, TIMES, path_of, rel

# ## The architecture: the import floors of the package


def module_imports(pkg=PKG):
    "For each module of the package, the other modules of the package it imports (from its source)."
    mods = {p.stem: p for p in pkg.glob('*.py') if not p.stem.startswith('_')}
    out = {}
    for m, p in mods.items():
        deps = set()
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                name = node.module.split('.')
                if node.level == 1 and name[0] in mods:
                    deps.add(name[0])
                elif name[0] == 'pls_edu' and len(name) > 1 and name[1] in mods:
                    deps.add(name[1])
            elif isinstance(node, ast.Import):
                for a in node.names:
                    parts = a.name.split('.')
                    if parts[0] == 'pls_edu' and len(parts) > 1 and parts[1] in mods:
                        deps.add(parts[1])
        out[m] = sorted(deps - {m})
    return out


def floors(imports=None):
    "The floor of each module: 1 for a module that imports no other, else one above the highest it imports."
    imports = imports or module_imports()
    memo = {}

    def floor(m, seen=()):
        if m in seen:
            raise ValueError(f"import cycle: {' -> '.join(seen + (m,))}")
        if m not in memo:
            memo[m] = 1 + max((floor(d, seen + (m,)) for d in imports[m]), default=0)
        return memo[m]

    return {m: floor(m) for m in imports}


def architecture_markdown():
    "The README's architecture table: floors, modules, what each holds and what it imports."
    imp = module_imports()
    fl = floors(imp)
    lines = ['| floor | module | what it holds | imports |', '|---|---|---|---|']
    for m in sorted(imp, key=lambda m: (fl[m], MODULE_ORDER.index(m) if m in MODULE_ORDER else 99)):
        doc = ast.get_docstring(ast.parse((PKG / f'{m}.py').read_text())) or ''
        # the first sentence: a period before a capital ends it, 'eq. 4' and 'Fig. 7' do not
        first = re.split(r'\.\s+(?=[A-Z`])', doc.split('\n\n')[0].replace('\n', ' '))[0].rstrip('.')
        lines.append(f"| {fl[m]} | `{m}` | {first} | {', '.join(f'`{d}`' for d in imp[m]) or '—'} |")
    return '\n'.join(lines)


# ## The README, from what the course produced


def _outputs(name, kind='stdout'):
    nb = nbformat.read(path_of(name), 4)
    out = []
    for c in nb.cells:
        for o in c.get('outputs', []):
            if kind == 'stdout' and o['output_type'] == 'stream' and o['name'] == 'stdout':
                out.append(''.join(o['text']))
            if kind == 'markdown' and 'text/markdown' in o.get('data', {}):
                d = o['data']['text/markdown']
                out.append(''.join(d) if isinstance(d, list) else d)
    return out


def _measured(name):
    p = NBS / 'measured' / name
    return json.loads(p.read_text()) if p.exists() else None


def _main_parts():
    "The main job's README parts, from notebook 15's outputs and its run time."
    table = next((t for t in _outputs('15_report') if t.startswith('method  ')), '')
    analysis = next((t for t in _outputs('15_report') if t.startswith('method         runs fitted')), '')
    findings = next((t for t in _outputs('15_report', 'markdown') if t.startswith('- **Conservative')), '')
    times = json.loads(TIMES.read_text()) if TIMES.exists() else {}
    main_s = times.get('15_report.ipynb')
    main_time = (
        f"the whole of notebook 15, which trains the same 27 runs one after another on one thread, took {main_s} s"
        if main_s
        else 'not measured yet'
    )
    return {
        'main-time': main_time,
        'main-table': '```\n' + table.strip() + '\n```',
        'main-analysis': '```\n' + analysis.strip() + '\n```',
        'main-findings': findings.strip(),
    }


def _mnist_parts():
    "The real-MNIST README parts, from notebook 16's outputs (the last list of findings is the full one)."
    if not (NBS / '16_mnist.ipynb').exists():
        return {'mnist-table': '', 'mnist-findings': ''}
    md = _outputs('16_mnist', 'markdown')
    mnist = ([''] + [t for t in md if t.startswith('- **Table 1')])[-1]
    table = next((t for t in md if t.startswith('| method | MNIST')), '')
    return {'mnist-table': table.strip(), 'mnist-findings': mnist.strip()}


def _curve_part():
    "The learning curve's README part: notebook 18's rendered conclusion, and its figure once it has drawn one."
    md = _outputs('18_curve', 'markdown')
    text = next((t for t in md if t.startswith(('Sizes read so far', 'No size has'))), '(not executed yet)')
    drawn = any(t.startswith('![the learning curve]') for t in md)
    return text.strip() + ('\n\n![the learning curve](nbs/images/curve.png)' if drawn else '')


def option_parsers():
    "Every parser of the three run commands: (command, subcommand or '', parser)."
    from pls_edu import sweepcli, compare, traincli

    subs = next(a for a in sweepcli.parser()._actions if isinstance(a, argparse._SubParsersAction)).choices
    return [
        ('pls-train', '', traincli.train_parser()),
        *(('pls-sweep', n, q) for n, q in subs.items()),
        ('pls-compare', '', compare.parser()),
    ]


def options_markdown():
    """The README's table of run options: each run field a command line sets, its help (the comment at the field, and
    its allowed values) and, for each command, its option with that option's default."""
    from pls_edu.runspec import option_help, run_docs

    found = {}  # field -> command -> (option, default) -> subcommands
    for cmd, sub, q in option_parsers():
        for a in q._actions:
            if hasattr(a, 'field'):
                stated = re.search(r'\(default: (.*)\)$', a.help.replace('%%', '%'))
                off = a.help.replace('%%', '%') == option_help(a.field, negated=True)  # the option turns it off
                opts = ' / '.join(f'`{o}`' for o in a.option_strings) + (' (turns it off)' if off else '')
                key = (opts, stated and stated.group(1))
                found.setdefault(a.field, {}).setdefault(cmd, {}).setdefault(key, []).append(sub)

    def cell(by):
        out = []
        for (opt, default), subs in by.items():
            where = f" ({', '.join(subs)})" if any(subs) else ''
            out.append(opt + (f', default {html.escape(default, quote=False)}' if default else '') + where)
        return '; '.join(out)

    cmds = ('pls-train', 'pls-sweep', 'pls-compare')
    lines = ['| field | what it sets | ' + ' | '.join(cmds) + ' |', '|---|---|---|---|---|']
    for name in run_docs():
        if name in found:
            what = html.escape(option_help(name, switch=True), quote=False)
            lines.append(f"| `{name}` | {what} | " + ' | '.join(cell(found[name].get(c, {})) for c in cmds) + ' |')
    return '\n'.join(lines)


def readme_sections():
    "The generated parts of the README, by marker name."
    from pls_edu.bench import report

    def rows(tracks):
        return '\n'.join(f"| [`{n}`](nbs/{rel(n)}.ipynb) | {what} |" for n, tr, what in COURSE if tr in tracks)

    doc = (ROOT / 'tests' / 'test_faults.py').read_text().split('"""')[1]
    faults = '\n'.join(line for line in doc.splitlines() if line.startswith('|'))
    verdict = next(
        (t for t in _outputs('17_regime', 'markdown') if t.startswith(('**In plain words', '**Verdict'))),
        '(not executed yet)',
    )
    cpus = cross_cpu.markdown() if cross_cpu.OUT.exists() else '(not measured yet: python tools/cross_cpu.py)'
    bench = _measured('bench.json')
    bench_text = ('```\n' + '\n'.join(report(bench)) + '\n```') if bench else '(not measured yet: pls-bench --json)'
    return {
        **_main_parts(),
        'cross-cpu': cpus,
        **_mnist_parts(),
        'regime': verdict.strip() + '\n\n![the regime study](nbs/images/regime.png)',
        'curve': _curve_part(),
        'course': rows(COURSE_PART),
        'library': rows(('library',)),
        'faults': faults,
        'architecture': architecture_markdown(),
        'bench': bench_text,
        'options': options_markdown(),
    }


def update_readme(write=True):
    "Rewrite the README's generated parts; returns the names of the parts that were out of date."
    path = ROOT / 'README.md'
    text = path.read_text()
    stale = []
    for name, body in readme_sections().items():
        pat = re.compile(rf'<!-- course:{name} -->\n(.*?)<!-- /course:{name} -->', re.S)
        m = pat.search(text)
        if m is None:
            raise ValueError(f"README.md has no <!-- course:{name} --> section")
        if m.group(1) != body + '\n':
            stale.append(name)
            text = text[: m.start(1)] + body + '\n' + text[m.end(1) :]
    if write and stale:
        path.write_text(text)
    return stale
