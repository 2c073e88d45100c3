"""Format the repository with ruff (development only), or check that it is formatted: the lessons, their solutions and
the capstone at 85 columns (the course site's code width), everything else at ruff.toml's 120.

    python tools/fmt.py            format in place, then re-export the library from the notebooks
    python tools/fmt.py --check    exit 1, naming the files, if formatting would change anything
"""

from __future__ import annotations
import subprocess, sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from catalog import COURSE, LESSONS, ROOT, path_of, solutions  # noqa: E402

SITE_WIDTH = 85


def narrow():
    "The notebooks formatted at the site's width: every lesson, every solution, the capstone."
    names = LESSONS + [n for n, t, _ in COURSE if t == 'capstone']
    return [path_of(n) for n in names] + [s for n, *_ in COURSE if (s := solutions(n))]


def ruff(args, files=()):
    "Run ruff format with `args` on `files` (or the whole repository); its exit code."
    cmd = [sys.executable, '-m', 'ruff', 'format', *args, *[str(f.relative_to(ROOT)) for f in files]]
    return subprocess.run(cmd, cwd=ROOT).returncode


def main(argv=None):
    check = '--check' in (argv if argv is not None else sys.argv[1:])
    mode = ['--check'] if check else []
    thin = narrow()
    wide = ruff(mode + ['--exclude', ','.join(str(p.relative_to(ROOT)) for p in thin)])
    slim = ruff(mode + ['--line-length', str(SITE_WIDTH)], thin)
    if not check:
        subprocess.run([str(Path(sys.executable).parent / 'nbdev_export')], cwd=ROOT, check=True)
    if check and (wide or slim):
        raise SystemExit('fmt: some files are not formatted; run python tools/fmt.py and commit')


if __name__ == '__main__':
    main()
