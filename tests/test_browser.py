"""Real-browser test: `streamlit run app.py` in a subprocess, every page in headless Chromium.

Uses the Debian Chromium at /usr/bin/chromium through Playwright's Python package (never
`playwright install`). Screenshots go to a temporary folder; with SAR_SAVE_SCREENSHOTS=1 the
final set is copied to docs/img/app_<page>.png.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from playwright import sync_api

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]

# url path, query (small settings so the runs stay quick), button that produces results, text that
# shows the results are there
PAGES = {
    "home": ("", "", None, "Demo models"),  # a subheader: only there once the results are
    "train": ("train", "?epochs=8&trials=10", "Train", "Remove"),
    "train_rho": (
        "train",
        "?mode=%CF%81+sweep+%28SAR%29&rhos=0.05%2C0.5%2C2%2C5&epochs=10&trials=20",
        "Train",
        "Remove",
    ),
    "landscape": ("landscape", "?steps1=31&steps2=15", "Compute", "Along a real fault"),
    "bit_flips": ("bit_flips", "?trials=10&points=5", "Play", "Download CSV"),
    "bit_anatomy": ("bit_anatomy", "", None, "Typical weight change per bit position"),
    "robustness": (
        "robustness",
        "?trials=10&heat_flips=5",
        "Run report",
        "Sharpness against robustness",
    ),
}


if not Path(CHROMIUM).exists():  # fail loudly: CI must run this test, never skip it
    raise RuntimeError(f"{CHROMIUM} not found: install it with `apt-get install -y chromium`")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A streamlit server on a free port; always terminated."""
    port = _free_port()
    log = tmp_path_factory.mktemp("server") / "streamlit.log"
    env = {**os.environ, "SAR_TORCH_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        "app.py",
        "--server.headless",
        "true",
        "--server.port",
        str(port),
        "--server.address",
        "127.0.0.1",
        "--browser.gatherUsageStats",
        "false",
        "--server.fileWatcherType",
        "none",
    ]
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT, env=env)
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.time() + 90
            while True:
                try:
                    with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                        if r.read().strip() == b"ok":
                            break
                except OSError:
                    pass
                if proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError(f"streamlit did not start:\n{log.read_text()[-3000:]}")
                time.sleep(0.5)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


@pytest.fixture(scope="module")
def browser():
    """Headless Debian Chromium."""
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    """Screenshot folder; copied to docs/img when SAR_SAVE_SCREENSHOTS=1."""
    d = tmp_path_factory.mktemp("screenshots")
    yield d
    if os.environ.get("SAR_SAVE_SCREENSHOTS") == "1":
        out = ROOT / "docs" / "img"
        out.mkdir(parents=True, exist_ok=True)
        for f in d.glob("app_*.png"):
            shutil.copy(f, out / f.name)


def wait_idle(page, timeout: float = 120.0) -> None:
    """Wait until the script run is over: stApp's script state stays 'notRunning' for 1 s."""
    page.wait_for_selector('[data-testid="stApp"]', timeout=timeout * 1000)
    deadline = time.time() + timeout
    quiet_since = None
    while time.time() < deadline:
        state = page.get_attribute('[data-testid="stApp"]', "data-test-script-state")
        if state != "notRunning":
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.time()
        elif time.time() - quiet_since > 1.0:
            return
        time.sleep(0.2)
    raise AssertionError("the page kept running")


def click(page, name: str) -> None:
    """Click the visible button called ``name`` (replaced buttons linger hidden in the DOM)."""
    page.get_by_role("button", name=name, exact=True).filter(visible=True).first.click()


def assert_clean(page, name: str) -> None:
    """No exception box and no error alert on the page."""
    assert page.locator('[data-testid="stException"]').count() == 0, f"{name}: exception shown"
    errors = page.locator('[data-testid="stAlertContentError"]')
    assert errors.count() == 0, f"{name}: error shown: {errors.first.inner_text()}"
    assert "Traceback" not in page.content()


def full_screenshot(page, path: Path) -> None:
    """Screenshot of the whole page: the viewport grows to the height of Streamlit's main area."""
    h = page.evaluate(
        "() => { const m = document.querySelector('[data-testid=stMain]');"
        " return m ? m.scrollHeight : document.body.scrollHeight; }"
    )
    page.set_viewport_size({"width": 1400, "height": int(min(max(h + 40, 1000), 9000))})
    page.wait_for_timeout(1000)  # plotly redraws on resize
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size({"width": 1400, "height": 1000})


def open_page(page, url: str, path: str, query: str = "") -> None:
    page.goto(f"{url}/{path}{query}")
    wait_idle(page)


def test_first_visit_to_a_page_url_shows_the_app_menu(server, browser):
    # Runs first on a fresh server: a folder named pages/ made Streamlit send its automatic
    # file-name menu ("app", "bit flips", ...) to the first session, and it never updated.
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(f"{server}/robustness", wait_until="domcontentloaded")
        nav = page.locator('[data-testid="stSidebarNav"]')
        nav.get_by_text("Robustness report").wait_for(timeout=60_000)
        page.wait_for_timeout(1500)
        labels = nav.inner_text().split("\n")
        assert "Bit flips (live)" in labels and "app" not in labels, labels
    finally:
        context.close()


def test_every_page_renders_and_runs(server, browser, shots):
    """Each page opens without errors, its main button produces results, screenshots saved."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    try:
        for name, (path, query, button, marker) in PAGES.items():
            open_page(page, server, path, query)
            assert_clean(page, name)
            if button is not None:
                click(page, button)
                page.wait_for_timeout(500)
                wait_idle(page, timeout=180)
            page.get_by_text(marker, exact=True).first.wait_for(timeout=30_000)
            assert_clean(page, name)
            page.wait_for_timeout(800)  # let plotly finish drawing
            full_screenshot(page, shots / f"app_{name}.png")
    finally:
        context.close()


def test_stop_interrupts_training(server, browser):
    """Stop during a long training run ends it quickly and keeps the page usable."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    try:
        open_page(page, server, "train", f"?epochs={300}&methods=SAR")
        click(page, "Train")
        page.get_by_text("Training curves (same data, seed and initial weights)").first.wait_for(
            timeout=60_000
        )
        t0 = time.time()
        click(page, "Stop")
        page.get_by_text("Training was stopped").wait_for(timeout=30_000)
        assert time.time() - t0 < 30
        wait_idle(page)
        assert_clean(page, "train after stop")
    finally:
        context.close()


def test_two_sessions_are_isolated(server, browser):
    """A model trained in one browser session never appears in another one."""
    a = browser.new_context(viewport={"width": 1400, "height": 1000})
    b = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        pa, pb = a.new_page(), b.new_page()
        open_page(pa, server, "train", "?epochs=3&trials=3&methods=SGD")
        open_page(pb, server, "train", "?epochs=3&trials=3&methods=Adam")
        click(pa, "Train")
        click(pb, "Train")
        pa.wait_for_timeout(500)
        wait_idle(pa, timeout=120)
        wait_idle(pb, timeout=120)
        pa.get_by_text("my digits MLP · SGD").filter(visible=True).first.wait_for(timeout=30_000)
        pb.get_by_text("my digits MLP · Adam").filter(visible=True).first.wait_for(timeout=30_000)
        assert pa.get_by_text("my digits MLP · Adam").count() == 0  # hidden table cells count too
        assert pb.get_by_text("my digits MLP · SGD").count() == 0
        assert_clean(pa, "session A")
        assert_clean(pb, "session B")
    finally:
        a.close()
        b.close()
