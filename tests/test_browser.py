"""The panel in a real JupyterLab, in headless Chromium: what a user sees, and that a hostile reply stays inert.

Needs Chromium (Debian's ``/usr/bin/chromium``, or ``NBSESSIONS_CHROMIUM=/path``): without it the test is
skipped, unless ``NBSESSIONS_REQUIRE_BROWSER=1`` (set by ``.ci/run``) makes that a failure.

Screenshots go to ``test-output/``; ``NBSESSIONS_UPDATE_SCREENSHOT=1`` also copies the panel's to
``docs/panel.png`` (the README's picture), so an ordinary test run leaves tracked files alone.
"""

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

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parent.parent
OUTPUT_DIR = REPO / "test-output"
README_IMAGE = REPO / "docs" / "panel.png"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
XSS_PROMPT = ('Summarise the quarterly report. <img src=x onerror="window.__xss=1"> '
              "<script>window.__xss=2</script> [details](javascript:window.__xss=3)")
XSS_TITLE = 'Q3 <img src=x onerror="window.__xss=4"><script>window.__xss=5</script>'
# Run in the kernel after the panel is shown: a variant of the newest "report" run, then a run that pauses on
# a tool needing approval, whose arguments carry a payload.
HUMAN_IN_THE_LOOP = f"""\
import json
from nbsessions import FunctionModel, tool
from nbsessions.llm.base import ToolCall
from nbsessions.tools import make_tool

@tool(requires_confirmation=True)
def publish(title: str) -> str:
    \"\"\"Publish the report summary.\"\"\"
    return "published " + title

def publisher(messages, tools):
    return ToolCall("call_1", "publish", json.dumps({{"title": {XSS_TITLE!r}}}))

nb_agent = get_ipython().magics_manager.registry["AgentMagics"].agent
nb_agent.tools["publish"] = make_tool(publish)
report = next(s for s in nb_agent.get_sessions() if s.session_name == "report")
nb_agent.regenerate(session_id=report.session_id,
                    model=FunctionModel(lambda m: "**Next steps**: hire two analysts; cut cloud costs by 10%."))
nb_agent.run("Publish the summary.", session_id=report.session_id, model=FunctionModel(publisher)).status.value
"""
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


@pytest.fixture
def chromium() -> str:
    return chromium_path()


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


@pytest.fixture
def jupyterlab(tmp_path, chromium):
    """A JupyterLab server on 127.0.0.1 with a random port and token, serving a fresh temp dir; stopped after.

    Depends on ``chromium`` so a machine without a browser skips before paying for a server start.
    """
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


def test_panel_in_jupyterlab_renders_sessions_and_keeps_replies_inert(jupyterlab, chromium):
    from playwright.sync_api import expect

    cells = ["%load_ext nbsessions",
             f"%%agent --new report\n{XSS_PROMPT}",
             "%%agent\nWhich risks does it name?",
             "%agent new scratch",
             "%agent panel",
             "%%agent -s report\nAnd the next steps?",  # runs after the panel is shown: it must update live
             HUMAN_IN_THE_LOOP]
    dialogs: list[str] = []
    with running_notebook(jupyterlab, chromium, "panel", cells, dialogs=dialogs) as page:

        reply = page.locator(".jp-OutputArea-output .nbsessions-reply").first
        expect(reply).to_contain_text("Summarise the quarterly report.")
        panel = page.locator(".nbsessions-panel")
        expect(panel).to_be_visible()
        rows = panel.locator(".nbsessions-session:visible")  # the list reuses hidden rows
        expect(rows).to_have_count(2)
        expect(panel.locator(".nbsessions-history")).to_contain_text("No runs yet")  # "scratch" is active
        # The last cells run after the panel was built: the list follows them without a click.
        report_runs = (panel.get_by_role("button", name="report", exact=True)
                       .locator("xpath=following-sibling::*[2]").locator("span").first)
        expect(report_runs).to_have_text("5")
        expect(rows).to_have_text(["report", "scratch"])  # newest first

        panel.get_by_role("button", name="report", exact=True).click()
        history = panel.locator(".nbsessions-history")
        expect(history).to_contain_text("Summarise the quarterly report.")
        expect(history.locator(".nbsessions-run")).to_have_count(5)
        expect(history).to_contain_text("Which risks does it name?")
        expect(panel.locator(".nbsessions-reply").last).to_contain_text("Offline model")  # oldest, at the bottom
        # The regenerated answer stands beside the original, and is the one kept.
        variants = history.locator(".nbsessions-variants .nbsessions-variant")
        expect(variants).to_have_count(2)
        expect(variants.nth(1)).to_contain_text("hire two analysts")
        expect(variants.nth(1)).to_contain_text("kept in history")
        # The paused run shows its tool call as text, and Approve / Reject.
        paused = history.locator(".nbsessions-paused")
        expect(paused.locator(".nbsessions-tool")).to_contain_text('onerror=\\"window.__xss=4\\"')
        expect(paused.locator(".nbsessions-tool")).to_contain_text("waiting for approval")
        paused.get_by_role("button", name="Approve").scroll_into_view_if_needed()

        page.screenshot(path=str(OUTPUT_DIR / "notebook.png"), full_page=True)
        panel.screenshot(path=str(OUTPUT_DIR / "panel.png"))
        paused.get_by_role("button", name="Approve").click()
        expect(paused).to_have_count(0)
        expect(history.locator(".nbsessions-tool")).to_contain_text("→ published Q3 <img src=x")
        variants.nth(0).get_by_role("button", name="Keep this one").click()
        expect(variants.nth(0)).to_contain_text("kept in history")
        expect(variants.nth(1).get_by_role("button", name="Keep this one")).to_be_visible()

        panel.get_by_role("tab", name="Metrics").click()
        expect(panel.locator("svg.nbsessions-chart rect:has(title)")).to_have_count(5)  # bars; not the legend
        panel.screenshot(path=str(OUTPUT_DIR / "panel-metrics.png"))
        assert page.evaluate("() => typeof window.__xss") == "undefined"
        assert page.locator(".jp-Dialog").count() == 0  # e.g. "Select Kernel"
        assert page.locator(".Toastify__toast").count() == 0  # e.g. the news question
        assert dialogs == []

    if os.environ.get("NBSESSIONS_UPDATE_SCREENSHOT") == "1":  # only when asked: docs/panel.png is tracked
        README_IMAGE.parent.mkdir(exist_ok=True)
        shutil.copyfile(OUTPUT_DIR / "panel.png", README_IMAGE)
