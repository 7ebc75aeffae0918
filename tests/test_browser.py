"""JupyterLab in a real browser: a lesson runs clean, the widget reacts, nbgrader's tools load.

Starts JupyterLab on 127.0.0.1 with a token over a copy of course/ and exercises/, and drives
Debian's headless Chromium through Selenium and chromedriver. Screenshots go to test-artifacts/.
Chromium comes from the install step (`make install` runs apt-get when it can); if it is
missing this test fails and says how to install it.
"""
from __future__ import annotations

import json
import os
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
         "jupyterlab.NeverCheckForUpdate", *(["--allow-root"] if os.geteuid() == 0 else [])],
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


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.fail("Chromium is missing: install it with `apt-get install chromium "
                    "chromium-driver` (as root `make install` does it for you), then rerun.")
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--window-size=1400,1000"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    ARTIFACTS.mkdir(exist_ok=True)
    yield driver
    driver.quit()


def _wait(driver, condition, *, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = driver.execute_script(condition)
        if value:
            return value
        time.sleep(0.5)
    driver.save_screenshot(str(ARTIFACTS / "timeout.png"))
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what} (see test-artifacts/timeout.png)")


def _open(driver, lab, path: str) -> None:
    base, token = lab
    driver.get(f"{base}/lab/tree/{path}?token={token}")
    _wait(driver, "return document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell') !== null",
          timeout=120, what=f"{path} to open")
    _wait(driver, "const s = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook-ExecutionIndicator');"
                  "return s && s.getAttribute('data-status') === 'idle';",
          timeout=120, what="the kernel to be ready")


def _run_all(driver, *, timeout: float) -> None:
    from selenium.webdriver.common.by import By

    menus = driver.find_elements(By.CSS_SELECTOR, ".lm-MenuBar-itemLabel")
    next(m for m in menus if m.text == "Run").click()
    items = driver.find_elements(By.CSS_SELECTOR, ".lm-Menu-item .lm-Menu-itemLabel")
    next(i for i in items if i.text.strip() == "Run All Cells").click()
    # Done: every code cell has a number in its prompt, none is waiting ([*]), kernel idle.
    _wait(driver, """
        const prompts = [...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell .jp-InputPrompt')];
        const status = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook-ExecutionIndicator');
        return prompts.length > 0 && prompts.every(p => /\\[\\d+\\]/.test(p.textContent))
               && status.getAttribute('data-status') === 'idle';""",
          timeout=timeout, what="all cells to run")


def _tracebacks(driver) -> list[str]:
    return driver.execute_script("""
        return [...document.querySelectorAll('.jp-OutputArea-output')]
            .map(o => o.textContent).filter(t => t.includes('Traceback (most recent call last)'));""")


def test_lesson_runs_in_jupyterlab_with_a_figure_and_no_error(lab, browser):
    _open(browser, lab, "course/00_start_here.ipynb")
    _run_all(browser, timeout=240)
    browser.save_screenshot(str(ARTIFACTS / "00_start_here.png"))
    assert _tracebacks(browser) == []
    images = browser.execute_script(
        "return document.querySelectorAll('.jp-OutputArea-output img').length")
    assert images >= 1, "no rendered figure in any output area"


def test_unfreeze_widget_updates_the_trainable_count(lab, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    _open(browser, lab, "course/05_fine_tuning.ipynb")
    _run_all(browser, timeout=400)
    assert _tracebacks(browser) == []
    count = "const b = document.querySelector('b.tlkit-trainable'); return b && b.textContent;"
    before = _wait(browser, count, timeout=60, what="the explorer widget")
    handle = browser.find_element(By.CSS_SELECTOR, ".widget-slider .noUi-handle")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", handle)
    handle.click()
    handle.send_keys(Keys.ARROW_RIGHT)
    after = _wait(browser, count.replace("return b && b.textContent;",
                                         f"return b && b.textContent !== {json.dumps(before)} && b.textContent;"),
                  timeout=60, what="the trainable count to change")
    browser.save_screenshot(str(ARTIFACTS / "05_widget.png"))
    assert int(after.replace(",", "")) > int(before.replace(",", ""))


def test_nbgrader_tools_load_on_an_exercise(lab, browser):
    _open(browser, lab, "exercises/ex01_sgd_update/ex01_sgd_update.ipynb")
    validate = _wait(browser, """
        return [...document.querySelectorAll('.jp-NotebookPanel-toolbar *')]
            .some(e => e.textContent.trim() === 'Validate');""",
                     timeout=60, what="nbgrader's Validate button")
    menus = browser.execute_script(
        "return [...document.querySelectorAll('.lm-MenuBar-itemLabel')].map(m => m.textContent)")
    browser.save_screenshot(str(ARTIFACTS / "ex01_nbgrader.png"))
    assert validate and "Nbgrader" in menus, menus
