"""JupyterLab in a real browser: a lesson runs clean, the live curve draws, the widget reacts, nbgrader loads.

Starts JupyterLab on 127.0.0.1 with a token over a copy of course/ and exercises/, and drives
Debian's headless Chromium through Selenium and chromedriver. Screenshots go to test-artifacts/.

Each test is independent of the others and of timing: a fresh browser, the notebook opened
alone in a workspace of its own (nothing restored from an earlier test), made the current
widget before "run all", and progress read from JupyterLab's own models (execution counts,
kernel status) rather than from what happens to be on the page.
Chromium comes from the install step (`make install` runs apt-get when it can); if it is
missing this test fails and says how to install it.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server on a throwaway copy of the course; yields (base_url, token)."""
    root = tmp_path_factory.mktemp("lab")
    for folder in ("course", "exercises"):
        shutil.copytree(ROOT / folder, root / folder)
    shutil.copy(ROOT / "nbgrader_config.py", root)
    settings = root / ".settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)
    # Render every cell (JupyterLab 4 otherwise leaves off-screen cells out of the page).
    (settings / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    token, port = secrets.token_hex(16), _free_port()
    env = dict(os.environ, JUPYTERLAB_SETTINGS_DIR=str(root / ".settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(root / ".workspaces"),
               JUPYTER_RUNTIME_DIR=str(root / ".runtime"),
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    log = open(root / "jupyterlab.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ServerApp.ip=127.0.0.1",
         f"--ServerApp.port={port}", f"--IdentityProvider.token={token}",
         f"--ServerApp.root_dir={root}", "--LabApp.news_url=", "--LabApp.check_for_updates_class="
         "jupyterlab.NeverCheckForUpdate", "--LabApp.expose_app_in_browser=True",
         *(["--allow-root"] if os.geteuid() == 0 else [])],
        cwd=root, env=env, stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
            break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                pytest.fail(f"JupyterLab did not start:\n{(root / 'jupyterlab.log').read_text()}")
            time.sleep(0.5)
    yield base, token
    server.terminate()
    server.wait(timeout=30)
    log.close()


@pytest.fixture
def browser(tmp_path):
    """A fresh headless Chromium per test: no state carried from one test to the next."""
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.fail("Chromium is missing: install it with `apt-get install chromium "
                    "chromium-driver` (as root `make install` does it for you), then rerun.")
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", f"--user-data-dir={tmp_path / 'chromium'}",
                 "--window-size=1400,1000"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    ARTIFACTS.mkdir(exist_ok=True)
    yield driver
    try:  # stop this test's kernels, so the next test starts on an idle machine
        driver.execute_script("const app = window.jupyterapp;"
                              "return app && app.serviceManager.sessions.shutdownAll();")
    finally:
        driver.quit()


def _wait(driver, condition, *, timeout: float, what: str, args=()):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = driver.execute_script(condition, *args)
        if value:
            return value
        time.sleep(0.5)
    driver.save_screenshot(str(ARTIFACTS / "timeout.png"))
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what} (see test-artifacts/timeout.png)")


# JupyterLab's own objects (window.jupyterapp, exposed by --LabApp.expose_app_in_browser), not
# the page's layout: which notebook is open, whether its kernel is idle, what its cells hold.
PANEL = """
    const app = window.jupyterapp;
    if (!app || !app.shell) return null;
    const panel = Array.from(app.shell.widgets('main'))
        .find(w => w.context && w.context.path === arguments[0]);
    if (!panel || !panel.context.isReady || !panel.sessionContext.session) return null;
    const kernel = panel.sessionContext.session.kernel;
"""


def _open(driver, lab, path: str) -> None:
    """Open ``path`` alone, in a workspace of its own (``?reset``: nothing restored)."""
    base, token = lab
    workspace = re.sub(r"\W", "-", path)
    driver.get(f"{base}/lab/workspaces/{workspace}/tree/{path}?reset&token={token}")
    _wait(driver, PANEL + "return kernel && kernel.connectionStatus === 'connected' && "
                          "kernel.status === 'idle';",
          args=(path,), timeout=180, what=f"{path} to open with an idle kernel")


def _run_all(driver, path: str, *, timeout: float) -> list[str]:
    """Run every cell of ``path`` and wait until all have run; returns the errors shown."""
    # The command is given the panel itself ("widgetId", as the cell toolbar does), not left to
    # act on whichever notebook JupyterLab holds as current: in a headless browser that depends
    # on focus events and their timing.
    started = driver.execute_script(PANEL + """
        app.commands.execute('notebook:run-all-cells', {widgetId: panel.id});
        return 'started';""", path)
    assert started == "started", f"{path} is not open"
    return _wait(driver, PANEL + """
        const cells = panel.content.widgets.filter(c => c.model.type === 'code');
        const errors = cells.flatMap(c => c.model.outputs.toJSON())
            .filter(o => o.output_type === 'error').map(o => o.ename + ': ' + o.evalue);
        const finished = cells.every(c => c.model.executionCount !== null);
        const busy = kernel.status !== 'idle' ||
            cells.some(c => c.model.executionState === 'running');
        if (busy || !(finished || errors.length)) return null;
        return {errors: errors};""", args=(path,), timeout=timeout,
                 what=f"all cells of {path} to run")["errors"]


def _in_panel(selector: str) -> str:
    return PANEL + f"return panel.node.querySelector({json.dumps(selector)});"


def test_lesson_runs_in_jupyterlab_with_a_figure_and_no_error(lab, browser):
    path = "course/00_start_here.ipynb"
    _open(browser, lab, path)
    errors = _run_all(browser, path, timeout=240)
    browser.save_screenshot(str(ARTIFACTS / "00_start_here.png"))
    assert errors == []
    images = browser.execute_script(
        PANEL + "return panel.node.querySelectorAll('.jp-OutputArea-output img').length;", path)
    assert images >= 1, "no rendered figure in any output area"


def test_fine_tuning_lesson_draws_its_live_curve_and_the_widget_updates(lab, browser):
    from selenium.webdriver.common.keys import Keys

    path = "course/05_fine_tuning.ipynb"
    _open(browser, lab, path)
    errors = _run_all(browser, path, timeout=600)
    assert errors == []
    # fine_tune(live=True): one figure, redrawn in place (display updates), the unfreeze marked.
    live = browser.execute_script(PANEL + """
        const isLive = o => o.metadata && o.metadata.tlkit && o.metadata.tlkit.live_curve;
        const cell = panel.content.widgets.find(
            c => c.model.type === 'code' && c.model.outputs.toJSON().some(isLive));
        if (!cell) return null;
        const out = cell.model.outputs.toJSON().find(isLive);
        return {epochs: out.metadata.tlkit.epochs, marks: out.metadata.tlkit.marks,
                images: cell.node.querySelectorAll('.jp-OutputArea-output img').length};""", path)
    assert live is not None, "no live training curve in lesson 05 (fine_tune(..., live=True))"
    assert live["images"] == 1 and "unfreeze" in live["marks"] and live["epochs"] > 1, live
    count = PANEL + "const b = panel.node.querySelector('b.tlkit-trainable'); return b && b.textContent;"
    before = _wait(browser, count, args=(path,), timeout=60, what="the explorer widget")
    handle = _wait(browser, _in_panel(".widget-slider .noUi-handle"), args=(path,),
                   timeout=30, what="the explorer's slider")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", handle)
    handle.click()
    handle.send_keys(Keys.ARROW_RIGHT)
    after = _wait(browser, count.replace("return b && b.textContent;",
                                         "return b && b.textContent !== arguments[1] && b.textContent;"),
                  args=(path, before), timeout=60, what="the trainable count to change")
    browser.save_screenshot(str(ARTIFACTS / "05_widget.png"))
    assert int(after.replace(",", "")) > int(before.replace(",", ""))


def test_nbgrader_tools_load_on_an_exercise(lab, browser):
    path = "exercises/ex01_sgd_update/ex01_sgd_update.ipynb"
    _open(browser, lab, path)
    validate = _wait(browser, PANEL + """
        return [...panel.node.querySelectorAll('.jp-NotebookPanel-toolbar *')]
            .some(e => e.textContent.trim() === 'Validate');""", args=(path,),
                     timeout=60, what="nbgrader's Validate button")
    menus = browser.execute_script(
        "return [...document.querySelectorAll('.lm-MenuBar-itemLabel')].map(m => m.textContent)")
    browser.save_screenshot(str(ARTIFACTS / "ex01_nbgrader.png"))
    assert validate and "Nbgrader" in menus, menus
