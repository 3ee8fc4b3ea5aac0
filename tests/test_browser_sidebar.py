"""The "Agent sessions" sidebar in a real JupyterLab, in headless Chromium: listing with the kernel shut down,
search, go to cell (also to a cell scrolled away, and to one since deleted), the code-block toolbar, and a run
from another process showing up by itself.

The JupyterLab under test loads the extension from this checkout: the prebuilt ``nbsessions/labextension``
(``npm ci && npm run build:prod`` in ``js/``, which ``.ci/run`` and ``pip install -e .`` do) and the server
extension, enabled in the server's own config dir. ``NBSESSIONS_UPDATE_SCREENSHOT=1`` copies the picture to
``docs/sidebar.png``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap

import pytest
from browser_harness import OUTPUT_DIR, REPO, lab_with_extension, running_notebook, update_screenshot

from nbsessions import TinyDb
from nbsessions.records.metrics import Metrics

pytestmark = pytest.mark.browser

CODE = "print('from the sidebar')"
SETUP = f"""\
from nbsessions import FunctionModel

def coder(messages):
    return ("Here is the code:\\n\\n```python\\n{CODE}\\n```\\n\\n"
            "Done. <img src=x onerror=\\"window.__xss=1\\"> [link](javascript:window.__xss=2) "
            "![chart](http://127.0.0.1:9/pixel.png)")

notebook = get_ipython().magics_manager.registry["AgentMagics"].notebook
notebook.register_model("coder", FunctionModel(coder, id="coder-1"))
"""
FILLER = ["# a long cell that pushes the first agent cell out of view\n" + "x = 1\n" * 8] * 12
CELLS = ["%load_ext nbsessions", SETUP, "%%agent --new pandas -m coder\nHow do I group a dataframe?", *FILLER,
         "%%agent --new plots -m coder\nDraw a histogram of ages"]
ANOTHER_KERNEL = """\
import sys
from nbsessions import Agent, FunctionModel, TinyDb
db = TinyDb(sys.argv[1])
pandas = next(s for s in db.list_sessions() if s.session_name == "pandas")
Agent(model=FunctionModel(lambda m: "Use `df.pivot_table`."), db=db).run("And pivot it?", session_id=pandas.session_id)
db.close()
"""
LONG_SESSION = """\
import sys
from nbsessions import Agent, FunctionModel, TinyDb
db = TinyDb(sys.argv[1])
agent = Agent(model=FunctionModel(lambda m: "ok"), db=db)
long = agent.create_session("long").session_id
for i in range(51):
    agent.run(f"step {i}", session_id=long)
db.close()
"""
KNOWN_METRICS = """\
import sys
from nbsessions import TinyDb
from nbsessions.records.metrics import Metrics
from nbsessions.records.schema import RunOutput, RunStatus, Session
db = TinyDb(sys.argv[1])
priced = Session(session_name="priced")
db.upsert_session(priced)
db.upsert_run(RunOutput(session_id=priced.session_id, status=RunStatus.completed, input="priced run", content="ok",
                        model="priced-model", metrics=Metrics(input_tokens=12_000, output_tokens=345,
                                                              total_tokens=12_345, duration=1.2, cost=0.0123)))
db.close()
"""

COLOURS = """() => {
    const sidebar = getComputedStyle(document.getElementById('nbsessions-sidebar'));
    const probe = document.createElement('div');
    document.body.appendChild(probe);
    probe.style.backgroundColor = 'var(--jp-layout-color1)';
    probe.style.color = 'var(--jp-ui-font-color1)';
    const probed = getComputedStyle(probe);
    const out = {background: sidebar.backgroundColor, text: sidebar.color,
                 layout1: probed.backgroundColor, font1: probed.color};
    probe.remove();
    return out;
}"""


@pytest.fixture
def lab_with_sidebar(tmp_path, chromium):
    """JupyterLab with this checkout's sidebar (``browser_harness.lab_with_extension``)."""
    with lab_with_extension(tmp_path) as lab:
        yield lab


def notebook_eval(page, body: str):
    """Run ``body`` with ``nb`` bound to the open notebook widget (its ``.content`` is the Notebook)."""
    return page.evaluate(f"async () => {{ const nb = window.jupyterapp.shell.currentWidget; {body} }}")


def metrics_of(store, prompt: str) -> Metrics:
    """The stored metrics of the run with this prompt (the store is shared: another reader may open it)."""
    with TinyDb(store) as db:
        return next(r.metrics for s in db.list_sessions() for r in db.list_runs(s.session_id) if r.input == prompt)


def test_sidebar_lists_searches_jumps_inserts_and_follows_new_runs(lab_with_sidebar, chromium):
    from playwright.sync_api import expect

    dialogs: list[str] = []
    with running_notebook(lab_with_sidebar, chromium, "sidebar", CELLS, height=900, dialogs=dialogs) as page:
        page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=lab_with_sidebar["base"])
        expect(page.locator(".jp-OutputArea-output .nbsessions-reply")).to_have_count(2)
        page.wait_for_function("() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel"
                               ".status === 'idle'")
        # The kernel goes away: the sidebar reads the store through the server alone.
        notebook_eval(page, "await nb.sessionContext.shutdown();")
        page.wait_for_function("() => !window.jupyterapp.shell.currentWidget.sessionContext.session")

        page.locator('.jp-SideBar [title="Agent sessions"]').click()
        sidebar = page.locator("#nbsessions-sidebar")
        expect(sidebar).to_be_visible()
        expect(sidebar.locator(".nbs-store")).to_have_text("sidebar.nbsessions.json")
        names = sidebar.locator(".nbs-session-name")
        expect(names).to_have_text(["plots", "pandas"])  # newest first

        search = sidebar.locator(".nbs-search")
        search.fill("histogram")  # a word of a prompt
        expect(names).to_have_text(["plots"])
        search.fill("GROUP code")  # a prompt's word and a reply's
        expect(names).to_have_text(["pandas"])
        search.fill("nothing-like-this")
        expect(names).to_have_count(0)
        expect(sidebar.locator(".nbs-notice")).to_have_text("No session matches.")
        search.fill("")
        expect(names).to_have_text(["plots", "pandas"])

        sidebar.locator(".nbs-session", has_text="pandas").click()
        run = sidebar.locator(".nbs-run")
        expect(run).to_have_count(1)
        expect(run.locator(".nbs-prompt")).to_have_text("How do I group a dataframe?")
        expect(run.locator(".nbs-status")).to_have_text("completed")
        facts = run.locator(".nbs-run-fact")
        expect(facts.nth(0)).to_have_text("coder-1")
        estimated = metrics_of(lab_with_sidebar["root"] / "sidebar.nbsessions.json", "How do I group a dataframe?")
        assert estimated.tokens_estimated and estimated.cost is None and estimated.duration < 1
        expect(facts.nth(1)).to_have_text(f"~{estimated.total_tokens:,} tokens")  # as the footer writes them
        expect(facts.nth(2)).to_have_text("cost n/a")
        expect(facts.nth(4)).to_have_text(f"{estimated.duration * 1000:.0f} ms")
        expect(run.locator(".nbs-reply pre code")).to_have_text(CODE)
        assert run.locator(".nbs-reply img, .nbs-reply a[href^='javascript']").count() == 0
        expect(run.locator(".nbs-reply a", has_text="chart")).to_have_attribute("href", "http://127.0.0.1:9/pixel.png")
        assert page.evaluate("() => window.__xss") is None

        # Go to cell: the first agent cell is far above what the notebook shows, and a launcher hides the notebook.
        target = page.locator(".jp-Notebook .jp-Cell").nth(2)
        notebook_eval(page, "nb.content.activeCellIndex = nb.content.widgets.length - 1;"
                            "await nb.content.scrollToItem(nb.content.widgets.length - 1);")
        expect(target).not_to_be_in_viewport()
        page.evaluate("() => window.jupyterapp.commands.execute('launcher:create')")  # another tab in front
        expect(page.locator(".jp-Launcher")).to_be_visible()
        run.locator(".nbs-goto").click()
        expect(target).to_be_in_viewport()
        expect(target).to_have_class(re.compile(r"\bjp-mod-active\b"))
        assert notebook_eval(page, "return nb.content.activeCellIndex;") == 2

        # The code toolbar: Copy, then Insert below / above the active cell, then Replace it.
        toolbar = run.locator(".nbs-code-toolbar")
        toolbar.locator("[data-action=copy]").click()
        expect(toolbar.locator("[data-action=copy]")).to_have_text("Copied")
        assert page.evaluate("() => navigator.clipboard.readText()").strip() == CODE
        count = notebook_eval(page, "return nb.content.widgets.length;")
        toolbar.locator("[data-action=insert-below]").click()
        assert notebook_eval(page, "const c = nb.content.activeCell.model;"
                                   "return [nb.content.activeCellIndex, c.type, c.sharedModel.getSource()];") \
            == [3, "code", CODE]
        toolbar.locator("[data-action=insert-above]").click()
        assert notebook_eval(page, "return [nb.content.activeCellIndex, nb.content.activeCell.model.sharedModel"
                                   ".getSource(), nb.content.widgets.length];") == [3, CODE, count + 2]
        notebook_eval(page, "nb.content.activeCellIndex = 0;")
        toolbar.locator("[data-action=insert-replace]").click()
        assert notebook_eval(page, "return nb.content.widgets[0].model.sharedModel.getSource();") == CODE

        # A run stored by another process shows up by itself (the sidebar polls a change token each second).
        store = lab_with_sidebar["root"] / "sidebar.nbsessions.json"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
        subprocess.run([sys.executable, "-c", textwrap.dedent(ANOTHER_KERNEL), str(store)], check=True, env=env,
                       timeout=60)
        expect(run).to_have_count(2, timeout=5_000)
        expect(run.first.locator(".nbs-prompt")).to_have_text("And pivot it?")
        expect(sidebar.locator(".nbs-session", has_text="pandas")).to_contain_text("2 runs")
        page.screenshot(path=str(OUTPUT_DIR / "sidebar.png"))
        update_screenshot("sidebar.png", "sidebar.png")

        # A run whose cell was deleted says so instead of jumping.
        sidebar.locator(".nbs-session", has_text="plots").click()
        notebook_eval(page, "const cells = nb.content.model.sharedModel;"
                            "cells.deleteCell(nb.content.widgets.length - 1);")
        sidebar.locator(".nbs-run .nbs-goto").click()
        expect(sidebar.locator(".nbs-goto-note")).to_have_text("That cell is no longer in this notebook.")

        # A long session shows its newest 50 runs, and older ones on demand.
        subprocess.run([sys.executable, "-c", LONG_SESSION, str(store)], check=True, env=env, timeout=120)
        sidebar.locator(".nbs-session", has_text="long").click()
        expect(run).to_have_count(50)
        expect(run.first.locator(".nbs-prompt")).to_have_text("step 50")
        sidebar.locator(".nbs-older").click()
        expect(run).to_have_count(51)
        expect(run.last.locator(".nbs-prompt")).to_have_text("step 0")
        expect(sidebar.locator(".nbs-older")).to_have_count(0)

        # Known numbers are written exactly as Python's records.formatting writes them everywhere else.
        subprocess.run([sys.executable, "-c", KNOWN_METRICS, str(store)], check=True, env=env, timeout=60)
        priced = sidebar.locator(".nbs-session", has_text="priced")
        expect(priced).to_contain_text("1 run · 12,345 tokens · $0.0123 · ")
        priced.click()
        expect(run).to_have_count(1)
        facts = run.locator(".nbs-run-fact")
        expect(facts).to_have_count(5)
        assert [facts.nth(i).inner_text() for i in (0, 1, 2, 4)] == ["priced-model", "12,345 tokens", "$0.0123",
                                                                      "1.20 s"]

        # Both themes: the sidebar's colours are the theme's variables, so they follow a switch to the dark one.
        light = page.evaluate(COLOURS)
        page.evaluate("() => window.jupyterapp.commands.execute('apputils:change-theme', {theme: 'JupyterLab Dark'})")
        page.wait_for_function("() => document.body.dataset.jpThemeLight === 'false'")
        page.wait_for_function(f"() => ({COLOURS})().background !== {json.dumps(light['background'])}")
        dark = page.evaluate(COLOURS)
        for colours in (light, dark):
            assert colours["background"] == colours["layout1"] and colours["text"] == colours["font1"], colours
        assert dark["background"] != light["background"] and dark["text"] != light["text"]
    assert dialogs == []
