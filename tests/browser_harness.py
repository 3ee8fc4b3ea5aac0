"""JupyterLab and headless Chromium for the browser tests (``test_browser*.py``): finding the browser, starting
a server of its own, opening a notebook and running its cells. The fixtures ``chromium`` and ``jupyterlab`` in
``conftest.py`` are built from these."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import pytest

REPO = Path(__file__).resolve().parent.parent
OUTPUT_DIR = REPO / "test-output"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
TIMEOUT_MS = 60_000
KERNEL_IDLE = """() => {
    const widget = window.jupyterapp && window.jupyterapp.shell.currentWidget;
    const context = widget && widget.sessionContext;
    const kernel = context && context.isReady && context.session && context.session.kernel;
    return Boolean(kernel && kernel.status === "idle");
}"""


def skip_or_fail(message: str) -> NoReturn:
    if os.environ.get("NBSESSIONS_REQUIRE_BROWSER") == "1":
        pytest.fail(message + " (required here: NBSESSIONS_REQUIRE_BROWSER=1)")
    pytest.skip(message)


def chromium_path() -> str:
    """The browser to drive, or skip (fail under ``NBSESSIONS_REQUIRE_BROWSER=1``) with how to get one."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        skip_or_fail("the playwright package is missing: pip install -e '.[dev]' to run the browser test")
    for candidate in (os.environ.get("NBSESSIONS_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                      shutil.which("chromium-browser")):
        if candidate and Path(candidate).exists():
            return candidate
    skip_or_fail("Chromium not found: install it (Debian/Ubuntu: `apt-get install chromium`) or point "
                 "NBSESSIONS_CHROMIUM at a Chromium binary to run the browser test")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def notebook(cells: list[str]) -> dict:
    """A notebook with ``kernelspec`` metadata, so JupyterLab starts the kernel without asking which one."""
    def cell(source: str) -> dict:
        return {"cell_type": "code", "id": uuid.uuid4().hex[:8], "metadata": {}, "execution_count": None,
                "outputs": [], "source": source}

    return {"nbformat": 4, "nbformat_minor": 5, "cells": [cell(s) for s in cells],
            "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                         "language_info": {"name": "python"}}}


def isolated_env(root: Path) -> dict[str, str]:
    """Config, data, runtime and IPython dirs of our own: no user settings, workspaces or startup files."""
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "NBSESSIONS_MODEL", "OPENAI_BASE_URL")}
    for name, sub in (("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_DATA_DIR", "data"),
                      ("JUPYTER_RUNTIME_DIR", "runtime"), ("IPYTHONDIR", "ipython")):
        env[name] = str(root / sub)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    # The news toast would cover the notebook on first start: "Never fetch news", no update check.
    settings = root / "config" / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    # Every cell stays in the page: with windowing, cells scrolled out of view leave the DOM and cannot be checked.
    notebook_settings = settings.parent / "notebook-extension"
    notebook_settings.mkdir()
    (notebook_settings / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    return env


def wait_until_ready(url: str, proc: subprocess.Popen, log: Path, timeout: float = 60.0) -> None:
    """Poll the server's REST API until it answers; fail early, with its log, if it exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"JupyterLab exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.1)  # polling interval between two requests
    pytest.fail(f"JupyterLab did not answer {url} within {timeout:.0f} s:\n{log.read_text()[-3000:]}")


@contextmanager
def jupyterlab_server(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A JupyterLab server on 127.0.0.1 with a random port and token, serving a fresh temp dir; stopped after."""
    root = tmp_path / "notebooks"
    root.mkdir()
    env = isolated_env(tmp_path)
    port, token = free_port(), uuid.uuid4().hex
    log = tmp_path / "jupyterlab.log"
    command = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
               "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
               "--LabApp.expose_app_in_browser=True",
               "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
               "--ServerApp.terminals_enabled=False"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # containers and CI often run as root
        command.append("--allow-root")
    with open(log, "wb") as log_file:
        proc = subprocess.Popen(command, env=env, cwd=root, stdout=log_file, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(f"{base}/api/status?token={token}", proc, log)
        yield {"base": base, "token": token, "root": root, "log": log}
    finally:
        request = urllib.request.Request(f"{base}/api/shutdown?token={token}", method="POST")
        try:
            urllib.request.urlopen(request, timeout=5).close()  # also shuts down the kernels it started
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def lab_with_extension(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """``jupyterlab_server`` with this checkout's front end: the built ``nbsessions/labextension`` linked into its
    data dir (ahead of any installed copy), and the server extension enabled in its config dir (both private)."""
    built = REPO / "nbsessions" / "labextension"
    if not (built / "package.json").exists():
        skip_or_fail("the front end is not built: run `npm ci && npm run build:prod` in js/ (or pip install -e .)")
    labextensions = tmp_path / "data" / "labextensions"
    labextensions.mkdir(parents=True)
    (labextensions / "nbsessions").symlink_to(built, target_is_directory=True)
    server_config = tmp_path / "config" / "jupyter_server_config.d"
    server_config.mkdir(parents=True)
    (server_config / "nbsessions.json").write_text(json.dumps(
        {"ServerApp": {"jpserver_extensions": {"nbsessions.server": True}}}))
    with jupyterlab_server(tmp_path) as lab:
        yield lab


@contextmanager
def running_notebook(jupyterlab: dict, chromium: str, name: str, cells: list[str], *, height: int = 1400,
                     dialogs: list[str] | None = None) -> Iterator[Any]:
    """Write ``cells`` as ``NAME.ipynb``, open it in headless Chromium and run all its cells; yields the page.

    Browser dialogs are dismissed and recorded in ``dialogs`` (a test asserts there were none)."""
    from playwright.sync_api import expect, sync_playwright

    (jupyterlab["root"] / f"{name}.ipynb").write_text(json.dumps(notebook(cells)))
    OUTPUT_DIR.mkdir(exist_ok=True)
    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": height})
            page.set_default_timeout(TIMEOUT_MS)
            if dialogs is not None:
                page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
            page.goto(f"{jupyterlab['base']}/lab/tree/{name}.ipynb?token={jupyterlab['token']}")
            page.wait_for_function(KERNEL_IDLE)
            page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
            yield page
        finally:
            browser.close()


def update_screenshot(shot: str, docs_name: str) -> None:
    """Copy ``test-output/SHOT`` to ``docs/DOCS_NAME`` (a README picture), only under
    ``NBSESSIONS_UPDATE_SCREENSHOT=1``: the pictures in docs/ are tracked, an ordinary test run leaves them alone."""
    if os.environ.get("NBSESSIONS_UPDATE_SCREENSHOT") == "1":
        (REPO / "docs").mkdir(exist_ok=True)
        shutil.copyfile(OUTPUT_DIR / shot, REPO / "docs" / docs_name)
