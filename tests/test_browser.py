"The course in a real browser (Debian's Chromium, driven by selenium): every page of the built site, and the explorers in JupyterLab."

import base64, os, shutil, socket, subprocess, sys, time, urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / 'tools'))
import course  # noqa: E402  (tools/course.py)

SITE = ROOT / '_site'
SHOTS = Path(os.environ.get('PLS_ARTIFACTS', ROOT / '_build' / 'screenshots'))
CHROMIUM, DRIVER = (
    shutil.which('chromium') or '/usr/bin/chromium',
    shutil.which('chromedriver') or '/usr/bin/chromedriver',
)

pytestmark = pytest.mark.skipif(
    not (Path(CHROMIUM).exists() and Path(DRIVER).exists()),
    reason="browser tests skipped: Debian's chromium and chromium-driver are not installed (.ci/run installs them when it runs as root)",
)


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _wait_http(url, timeout=60):
    t0 = time.time()
    while True:
        try:
            return urllib.request.urlopen(url, timeout=5).status
        except OSError:
            if time.time() - t0 > timeout:
                raise
            time.sleep(0.3)


@pytest.fixture(scope='module')
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    o = Options()
    o.binary_location = CHROMIUM
    for a in (
        '--headless=new',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-dev-shm-usage',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--window-size=1280,1000',
    ):
        o.add_argument(a)
    o.set_capability('goog:loggingPrefs', {'browser': 'ALL'})
    d = webdriver.Chrome(service=Service(DRIVER), options=o)
    d.set_page_load_timeout(60)
    yield d
    d.quit()


@pytest.fixture(scope='module')
def site():
    "The built site (built now if it is missing or older than a notebook), served on 127.0.0.1."
    newest = max(p.stat().st_mtime for p in course.notebooks())
    if not (SITE / 'index.html').exists() or (SITE / 'index.html').stat().st_mtime < newest:
        course.build_site(SITE)
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, '-m', 'http.server', str(port), '--bind', '127.0.0.1', '--directory', str(SITE)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f'http://127.0.0.1:{port}/'
        _wait_http(base + 'index.html')
        yield base
    finally:
        server.terminate()
        server.wait(10)


def _screenshot(driver, path):
    "A full-page screenshot through the DevTools protocol, taken once the page has laid out (slow on a busy machine)."
    from selenium.webdriver.support.ui import WebDriverWait

    def laid_out(d):
        size = d.execute_cdp_cmd('Page.getLayoutMetrics', {})['cssContentSize']
        ready = d.execute_script('return document.readyState') == 'complete'
        return size if ready and size['width'] > 0 and size['height'] > 0 else False

    m = WebDriverWait(driver, 60, poll_frequency=0.5).until(laid_out, 'the page never got a width to take a picture of')
    shot = driver.execute_cdp_cmd(
        'Page.captureScreenshot',
        {
            'format': 'png',
            'captureBeyondViewport': True,
            'clip': {'x': 0, 'y': 0, 'width': m['width'], 'height': m['height'], 'scale': 1},
        },
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(base64.b64decode(shot['data']))


def _course_pages():
    pages = ['index.html'] + [f'{course.rel(n)}.html' for n, *_ in course.COURSE]
    pages += [f'solutions/{n}_solutions.html' for n, *_ in course.COURSE if course.solutions(n)]
    return pages + ['api/index.html'] + [f'api/{m}.html' for m in course.MODULE_ORDER]


def test_every_page_loads_whole_and_clean(site, browser):
    "HTTP 200 for each page and everything it loads, no broken image, no console error, nothing fetched from the network."
    problems = []
    for page in _course_pages():
        url = site + page
        assert urllib.request.urlopen(url, timeout=10).status == 200, url
        browser.get(url)
        browser.execute_script("return document.readyState")
        res = browser.execute_script("""return [...document.images].map(i => i.src)
            .concat([...document.scripts].filter(s => s.src).map(s => s.src), [...document.querySelectorAll('link[rel=stylesheet]')].map(l => l.href))""")
        for r in sorted(set(res)):
            if not r.startswith(site):
                problems.append(f"{page}: loads {r} from outside the site")
                continue
            try:
                urllib.request.urlopen(r, timeout=10)
            except OSError as e:
                problems.append(f"{page}: {r}: {e}")
        broken = browser.execute_script(
            "return [...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)"
        )
        problems += [f"{page}: image does not render: {b}" for b in broken]
        problems += [
            f"{page}: console: {e['message'][:200]}" for e in browser.get_log('browser') if e['level'] == 'SEVERE'
        ]
    assert not problems, '\n'.join(problems)


def test_teaching_code_fits_the_page_at_1280_pixels(site, browser):
    "On every lesson with exercises, no code block needs a horizontal scroll bar in a 1280-pixel-wide window."
    cut = []
    for n, _, _ in course.COURSE:
        if n not in course.LESSONS:
            continue
        for page in (f'{n}.html', f'solutions/{n}_solutions.html'):
            browser.get(site + page)
            wide = browser.execute_script(
                "return [...document.querySelectorAll('article div.cell_input pre')]"
                ".filter(p => p.scrollWidth > p.clientWidth + 1).map(p => p.textContent.split('\\n')[0].slice(0, 60))"
            )
            cut += [(page, w) for w in wide]
    assert not cut, cut


def test_equations_render_and_the_sidebar_follows_the_course(site, browser):
    COURSE = course.COURSE
    for page in ('02_smoothing.html', '04_head.html'):
        browser.get(site + page)
        sizes = browser.execute_script(
            "return [...document.querySelectorAll('article math')].map(m => m.getBoundingClientRect().width)"
        )
        assert len(sizes) >= 3 and min(sizes) > 0, (page, sizes)  # MathML, drawn by the browser itself
        assert (
            browser.execute_script(
                "return document.querySelectorAll('script[src*=mathjax], script[src*=MathJax]').length"
            )
            == 0
        )
    browser.get(site + 'index.html')
    links = browser.execute_script(
        "return [...document.querySelectorAll('nav.bd-docs-nav a.reference.internal')].map(a => a.getAttribute('href'))"
    )
    order = [h.split('#')[0].rsplit('/', 1)[-1].removesuffix('.html') for h in links]
    want = [n for n, *_ in COURSE]
    assert [o for o in order if o in want] == want, order
    captions = browser.execute_script(
        "return [...document.querySelectorAll('nav.bd-docs-nav p.caption')].map(p => p.textContent.trim())"
    )
    parts = course.COURSE_PART + ('library',)
    assert captions[: len(parts)] == [course.TRACKS[t] for t in parts], captions
    _screenshot(browser, SHOTS / 'home.png')
    browser.get(site + '04_head.html')
    _screenshot(browser, SHOTS / '04_head.png')
    assert (SHOTS / 'home.png').stat().st_size > 10_000 and (SHOTS / '04_head.png').stat().st_size > 50_000


def test_explorers_in_jupyterlab(browser, tmp_path):
    "JupyterLab on 127.0.0.1 with a token: run 14_explore, move a slider in the page, and see the figure redrawn."
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait
    from selenium.common.exceptions import TimeoutException

    shutil.copy(ROOT / 'nbs' / '14_explore.ipynb', tmp_path / '14_explore.ipynb')
    port, token = _free_port(), 'pls-browser-test'
    env = {
        **os.environ,
        'OMP_NUM_THREADS': '1',
        'TQDM_DISABLE': '1',
        'JUPYTER_CONFIG_DIR': str(tmp_path / 'cfg'),
        'JUPYTER_RUNTIME_DIR': str(tmp_path / 'rt'),
    }
    with open(tmp_path / 'lab.log', 'w') as log:  # the server keeps its own copy of the file
        lab = subprocess.Popen(
            [
                sys.executable,
                '-m',
                'jupyterlab',
                '--no-browser',
                '--allow-root',
                f'--ServerApp.port={port}',
                '--ServerApp.ip=127.0.0.1',
                f'--IdentityProvider.token={token}',
                f'--ServerApp.root_dir={tmp_path}',
            ],
            env=env,
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_http(f'http://127.0.0.1:{port}/api/status?token={token}', timeout=90)
        browser.get(f'http://127.0.0.1:{port}/lab/tree/14_explore.ipynb?token={token}')
        wait = WebDriverWait(browser, 120)
        wait.until(lambda d: d.execute_script("return document.querySelectorAll('.jp-Notebook .jp-Cell').length") > 5)
        wait.until(
            lambda d: (
                'idle'
                in (
                    d.execute_script(
                        "return (document.querySelector('.jp-Notebook-ExecutionIndicator') || {}).getAttribute ? "
                        "document.querySelector('.jp-Notebook-ExecutionIndicator').getAttribute('data-status') : 'idle'"
                    )
                    or 'idle'
                )
            )
        )

        def run_all():
            return [
                browser.find_element(
                    By.XPATH, "//div[contains(@class,'lm-MenuBar-itemLabel') and text()='Run']"
                ).click(),
                browser.find_element(
                    By.XPATH, "//div[contains(@class,'lm-Menu-itemLabel') and text()='Run All Cells']"
                ).click(),
            ]

        started = (
            "return [...document.querySelectorAll('.jp-InputPrompt')].some(p => /\\[(\\*|\\d+)\\]/.test(p.textContent))"
        )
        run_all()
        try:  # seen once in CI: a click made before the kernel was connected ran nothing (no cell got a prompt number)
            WebDriverWait(browser, 60).until(lambda d: d.execute_script(started))
        except TimeoutException:
            run_all()
        wait.until(
            lambda d: (
                d.execute_script("return document.querySelectorAll('.widget-interact .widget-output img').length") >= 3
            )
        )
        # the figure's <img> is replaced whenever the widget redraws, so its src is read in the page, in one step
        # (a handle to the old element would go stale between finding it and reading it)
        src = "var i = document.querySelector('.widget-interact .widget-output img'); return i ? i.src : null"
        before = wait.until(lambda d: d.execute_script(src))
        interact = browser.find_elements(By.CSS_SELECTOR, '.widget-interact')[0]
        handle = interact.find_element(By.CSS_SELECTOR, '.noUi-handle')
        browser.execute_script("arguments[0].scrollIntoView({block: 'center'}); arguments[0].focus();", handle)
        for _ in range(4):
            handle.send_keys(Keys.ARROW_RIGHT)
        WebDriverWait(browser, 60).until(lambda d: d.execute_script(src) not in (None, before))
        errors = browser.execute_script(
            "return document.querySelectorAll('.jp-OutputArea-output[data-mime-type=\"application/vnd.jupyter.error\"]').length"
        )
        assert errors == 0, (tmp_path / 'lab.log').read_text()[-2000:]
        _screenshot(browser, SHOTS / 'jupyterlab_14_explore.png')
    finally:
        os.killpg(lab.pid, 15)
        try:
            lab.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(lab.pid, 9)
            lab.wait()


def test_next_links_walk_the_course_from_its_first_page_to_the_capstone(site, browser):
    "A student who follows 'next' from the first page reads every course notebook in order and reaches the capstone."
    course_pages = [n for n, t, _ in course.COURSE if t in course.COURSE_PART]
    seen = []
    browser.get(site + f'{course_pages[0]}.html')
    for _ in range(len(course_pages) + 1):
        seen.append(browser.current_url.split('#')[0].rsplit('/', 1)[-1].removesuffix('.html'))
        if seen[-1] == course_pages[-1]:
            break
        nxt = browser.execute_script("const a = document.querySelector('a.right-next'); return a && a.href")
        assert nxt, f"{seen[-1]} has no next link"
        browser.get(nxt)
    assert seen == course_pages, seen
    prev = browser.execute_script("const a = document.querySelector('a.left-prev'); return a && a.href")
    assert prev and prev.split('#')[0].endswith(f'{course_pages[-2]}.html'), prev
