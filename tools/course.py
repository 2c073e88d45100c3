"""The course's own tools (development only, not part of the `pls_edu` package): execute every notebook with pinned
threads and instruction sets, check in CI that the committed outputs are still what the code produces, render the
course as a static site that works offline, and keep the README's generated sections and the architecture map true.

    python tools/course.py execute [NOTEBOOK ...]   run notebooks and commit their outputs into them
    python tools/course.py check [NOTEBOOK ...]     re-run notebooks and compare with the committed outputs
    python tools/course.py site [--out DIR]         build the static site into _site/
    python tools/course.py readme                   rewrite the README's generated sections
    python tools/course.py floors                   print the import floors of the package
"""

from __future__ import annotations
import argparse, json, os, re, struct, sys, time
from base64 import b64decode
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the other tools

from catalog import (  # noqa: F401  (the course's names, re-exported for the tests and notebook 75)
    COURSE,
    COURSE_PART,
    FINGERPRINT,
    LESSONS,
    MODULE_ORDER,
    NBS,
    PKG,
    ROOT,
    TIMES,
    TRACKS,
    in_library,
    path_of,
    rel,
    notebooks,
    solutions,
)
from nbrun import CellFailed, execute_notebook, fingerprint, kernel_env, skip_flags, skipped  # noqa: F401
from readme import architecture_markdown, floors, module_imports, readme_sections, update_readme  # noqa: F401
from sitebuild import build_site, for_site, home_markdown, setup, site_sources  # noqa: F401


def _clean(paths):
    from nbdev.clean import nbdev_clean

    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        for p in paths:
            nbdev_clean(fname=str(p))
    finally:
        os.chdir(cwd)


def regenerate_run_notebook():
    "Write nbs/library/63_run.ipynb afresh from the library's generator (keeping nothing else)."
    from pls_edu.runnotebook import write_run_notebook

    write_run_notebook(NBS / 'library' / '63_run.ipynb')


def execute(paths=None, workers=2, log=print):
    "Execute `paths` (default: the whole course) and commit their outputs into the notebooks; returns the seconds."
    paths = [Path(p) for p in (paths or notebooks())]
    if any(p.name == '63_run.ipynb' for p in paths):
        regenerate_run_notebook()

    def one(p):
        nb, s = execute_notebook(p)
        nbformat.write(nb, p)
        log(f"executed {p.relative_to(NBS)} in {s:.0f} s")
        return p, s

    with ThreadPoolExecutor(workers) as ex:
        done = dict(ex.map(one, paths))
    _clean(paths)
    times = json.loads(TIMES.read_text()) if TIMES.exists() else {}
    times.update({str(p.relative_to(NBS)): round(s) for p, s in done.items()})
    known = {str(p.relative_to(NBS)) for p in notebooks()}
    TIMES.write_text(json.dumps({k: v for k, v in sorted(times.items()) if k in known}, indent=1) + '\n')
    return done


# ## Comparing outputs

_HEX = re.compile(r' at 0x[0-9a-fA-F]+')
_NUM = re.compile(r'[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?')


def png_size(b64):
    "Width and height of a base64 PNG (from its IHDR chunk)."
    head = b64decode(b64[:64] if isinstance(b64, str) else ''.join(b64)[:64])
    return struct.unpack('>II', head[16:24])


def comparable(cell, mask_numbers=False):
    "The parts of a cell's outputs that must repeat: texts, and the sizes of its images."
    out = []

    def norm(s):
        s = _HEX.sub('', s)
        return _NUM.sub('#', s) if mask_numbers else s

    for o in cell.get('outputs', []):
        if o['output_type'] == 'stream':
            text = ''.join(o['text']) if isinstance(o['text'], list) else o['text']
            if out and out[-1][0] == f"stream:{o['name']}":
                out[-1] = (out[-1][0], out[-1][1] + norm(text))
            else:
                out.append((f"stream:{o['name']}", norm(text)))
        elif o['output_type'] in ('execute_result', 'display_data'):
            d = o.get('data', {})
            for k in ('text/markdown', 'text/plain'):
                if k in d:
                    out.append((k, norm(''.join(d[k]) if isinstance(d[k], list) else d[k])))
            if 'image/png' in d:
                out.append(('image/png', png_size(d['image/png'])))
        elif o['output_type'] == 'error':
            out.append(('error', o.get('ename')))
    return [(k, v.rstrip() if isinstance(v, str) else v) for k, v in out]


def differences(committed, fresh, name, mask_numbers=False):
    "One line per cell whose comparable outputs differ between two versions of notebook `name`."
    out = []
    for i, (a, b) in enumerate(zip(committed.cells, fresh.cells, strict=True)):
        if a.cell_type != 'code' or 'volatile' in a.get('metadata', {}).get('tags', []):
            continue
        ca, cb = comparable(a, mask_numbers), comparable(b, mask_numbers)
        if ca != cb:
            first = next(
                (f"{x!r} -> {y!r}" for x, y in zip(ca, cb, strict=False) if x != y),
                f"{len(ca)} outputs committed, {len(cb)} now",
            )
            out.append(f"{name} cell {i} (id {a.get('id')}): outputs differ: {first[:400]}")
    if len(committed.cells) != len(fresh.cells):
        out.append(f"{name}: {len(committed.cells)} cells committed, {len(fresh.cells)} now")
    return out


# ## Outputs that must never be committed


def leaks(nb):
    "Texts in a notebook's outputs that name this machine: absolute paths of the clone, temporary or home folders."
    pats = [re.escape(str(ROOT)), r'/tmp/\S+', r'\btmp[a-z0-9_]{8}\b', r'/home/\w+', r'/root/', r'pytest-of-']
    # one pattern of alternatives, the clone first: a clone under /tmp or /home is one leak, not two
    pat = re.compile('|'.join(f'(?:{p})' for p in pats))
    found = []
    for i, c in enumerate(nb.cells):
        for o in c.get('outputs', []):
            texts = [o.get('text', '')] + [v for k, v in o.get('data', {}).items() if k.startswith('text/')]
            for t in texts:
                t = ''.join(t) if isinstance(t, list) else t
                found += [f"cell {i}: {m.group(0)[:80]}" for m in pat.finditer(t)]
    return found


def output_bytes(nb):
    "Bytes of all outputs of a notebook, as committed (JSON)."
    return sum(len(json.dumps(c.get('outputs', []))) for c in nb.cells)


def check(paths=None, workers=2, log=print):
    "Re-execute `paths` (default: the whole course) and compare with the committed outputs; returns the problems."
    paths = [Path(p) for p in (paths or notebooks())]
    fp = fingerprint()
    want = json.loads(FINGERPRINT.read_text())['fingerprint'] if FINGERPRINT.exists() else None
    mask = want is not None and fp != want
    if mask:
        log(
            f"NOTE: this machine's numeric fingerprint ({fp}) differs from the one the outputs were made on ({want}): "
            "numbers are masked in the comparison below; text, structure and figures are still compared"
        )

    def one(p):
        t0 = time.perf_counter()
        name = str(p.relative_to(NBS))
        try:
            fresh, _ = execute_notebook(p)
        except CellFailed as e:
            return [f"{name}: does not run: {e}"]
        except Exception as e:
            return [f"{name}: does not run: {type(e).__name__}: {str(e).strip()[:300]}"]
        committed = nbformat.read(p, 4)
        probs = differences(committed, fresh, name, mask)
        probs += [f"{name} {x}: names this machine" for x in leaks(committed)]
        log(
            f"checked {name} in {time.perf_counter() - t0:.0f} s: "
            + ('ok' if not probs else f"{len(probs)} problem(s)")
        )
        return probs

    with ThreadPoolExecutor(workers) as ex:
        found = [x for probs in ex.map(one, paths) for x in probs]
    total = sum(output_bytes(nbformat.read(p, 4)) for p in paths)
    log(f"committed outputs: {total / 1e6:.2f} MB in {len(paths)} notebooks")
    return found


def record_fingerprint():
    "Record this machine's fingerprint beside the outputs just made."
    FINGERPRINT.write_text(
        json.dumps({'fingerprint': fingerprint(), 'made': time.strftime('%Y-%m-%d')}, indent=1) + '\n'
    )


# ## The command line


def _paths(names):
    if not names:
        return None
    out = []
    for n in names:
        p = Path(n)
        cands = [p, NBS / n, NBS / f'{n}.ipynb', NBS / 'library' / f'{n}.ipynb', NBS / 'solutions' / f'{n}.ipynb']
        hit = next((c for c in cands if c.exists() and c.suffix == '.ipynb'), None)
        if hit is None:
            raise SystemExit(f"course: no notebook {n!r}; valid: {', '.join(q.stem for q in notebooks())}")
        out.append(hit.resolve())
    return out


def main(argv=None):
    "`python tools/course.py execute | check | site | readme | floors`."
    p = argparse.ArgumentParser(prog='tools/course.py', description='Execute, check and render the course notebooks.')
    sub = p.add_subparsers(dest='cmd', required=True)
    e = sub.add_parser('execute', help='run notebooks and commit their outputs into them')
    e.add_argument('notebooks', nargs='*', help='notebooks to run (default: all, in course order)')
    e.add_argument('--workers', type=int, default=2, help='notebooks at a time (default: 2)')
    c = sub.add_parser('check', help='re-run notebooks and compare with the committed outputs')
    c.add_argument('notebooks', nargs='*', help='notebooks to check (default: all)')
    c.add_argument('--workers', type=int, default=2, help='notebooks at a time (default: 2)')
    s = sub.add_parser('site', help='build the static site into _site/')
    s.add_argument('--out', default=None, help='where to write the site (default: _site/)')
    sub.add_parser('readme', help="rewrite the README's generated parts from the notebooks, tests and sources")
    sub.add_parser('floors', help='print the import floors of the package')
    a = p.parse_args(argv)
    if a.cmd == 'execute':
        t0 = time.perf_counter()
        execute(_paths(a.notebooks), a.workers)
        if not a.notebooks:
            record_fingerprint()
        print(f"executed in {time.perf_counter() - t0:.0f} s; review and commit the notebooks")
    elif a.cmd == 'check':
        t0 = time.perf_counter()
        probs = check(_paths(a.notebooks), a.workers)
        for x in probs:
            print(f"STALE: {x}")
        verdict = 'committed outputs are fresh' if not probs else f"{len(probs)} problem(s); run execute and commit"
        print(f"checked in {time.perf_counter() - t0:.0f} s: {verdict}")
        if probs:
            sys.exit(1)
    elif a.cmd == 'site':
        build_site(a.out)
    elif a.cmd == 'readme':
        stale = update_readme()
        print(f"README.md: {', '.join(stale)} rewritten" if stale else 'README.md: up to date')
    elif a.cmd == 'floors':
        imp = module_imports()
        for m, f in sorted(floors(imp).items(), key=lambda kv: (kv[1], kv[0])):
            print(f"{f}  {m:12s} {', '.join(imp[m])}")


if __name__ == '__main__':
    main()
