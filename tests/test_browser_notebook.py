"""In a real JupyterLab + headless Chromium: the panel's folded "Sent" view, and a session exported as a notebook
opening with its replies visible and inert.

Uses the JupyterLab and Chromium fixtures of ``conftest.py`` (skipped without Chromium unless
``NBSESSIONS_REQUIRE_BROWSER=1``). ``NBSESSIONS_UPDATE_SCREENSHOT=1`` copies the Sent view's picture to
``docs/sent-view.png`` (the README's).
"""

from __future__ import annotations

import re

import nbformat
import pytest
from browser_harness import KERNEL_IDLE, OUTPUT_DIR, running_notebook, update_screenshot

pytestmark = pytest.mark.browser

XSS_PROMPT = ('Plan the trip. <img src=x onerror="window.__xss=1"> <script>window.__xss=2</script> '
              "[go](javascript:window.__xss=3)")


def test_the_sent_view_unfolds_in_the_panel_and_an_exported_notebook_opens_inert(jupyterlab, chromium):
    from playwright.sync_api import expect

    cells = ["%load_ext nbsessions",
             f"%%agent --new trip\n{XSS_PROMPT}",
             "%%agent\nAnd the budget?",
             "%agent panel",
             "%agent export ipynb exported.ipynb"]
    dialogs: list[str] = []
    with running_notebook(jupyterlab, chromium, "sent", cells, dialogs=dialogs) as page:
        history = page.locator(".nbsessions-panel .nbsessions-history")
        views = history.locator(".nbsessions-sent-view")
        expect(views).to_have_count(2)
        second = views.filter(has_text="(2 from history)")  # the second run's, wherever History puts it
        first = views.filter(has_text="(0 from history)")
        table = second.locator(".nbsessions-sent-table")
        expect(table).to_be_hidden()  # folded by default
        second.locator(".jupyter-widget-Collapse-header").click()
        expect(table).to_be_visible()
        expect(table.locator("tr.nbsessions-sent-history")).to_have_count(2)
        expect(table.locator("tr.nbsessions-sent-history").first).to_contain_text("#1 ")
        expect(table.locator("tr.nbsessions-sent-history").first).to_contain_text('onerror="window.__xss=1"')
        expect(table.locator("tr.nbsessions-sent-prompt")).to_contain_text("And the budget?")
        expect(first.locator(".nbsessions-sent-table")).to_be_hidden()
        second.scroll_into_view_if_needed()
        page.locator(".nbsessions-panel").screenshot(path=str(OUTPUT_DIR / "panel-sent.png"))
        expect(page.locator(".jp-OutputArea-output").last).to_contain_text("exported trip (")
        assert (jupyterlab["root"] / "exported.ipynb").exists()

        page.evaluate("() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel"
                      ".requestExecute({code: '%%agent\\nAnd the weather?'}).done")  # a run arrives: History redraws
        expect(views).to_have_count(3)
        expect(table).to_be_visible()  # the view the user unfolded stays unfolded
        expect(views.filter(has_text="(4 from history)").locator(".nbsessions-sent-table")).to_be_hidden()
        expect(first.locator(".nbsessions-sent-table")).to_be_hidden()

        page.evaluate("async () => { await window.jupyterapp.commands.execute('docmanager:open', "
                      "{path: 'exported.ipynb'}); }")
        page.wait_for_function(KERNEL_IDLE)
        opened = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")
        expect(opened).to_have_count(1)
        # JupyterLab writes the kernel's kernelspec and language_info into the notebook on connect: an export
        # that already holds them opens saved, not marked as changed before the user touches it
        assert page.evaluate("() => window.jupyterapp.shell.currentWidget.context.path") == "exported.ipynb"
        assert page.evaluate("() => window.jupyterapp.shell.currentWidget.context.model.dirty") is False
        tab = page.locator(".lm-TabBar-tab", has_text="exported.ipynb")
        expect(tab).to_have_count(1)
        expect(tab).not_to_have_class(re.compile(r"\bjp-mod-dirty\b"))  # no "unsaved" dot on its tab
        saved = nbformat.read(jupyterlab["root"] / "exported.ipynb", as_version=4)
        nbformat.validate(saved)
        connected = page.evaluate("() => window.jupyterapp.shell.currentWidget.context.model.metadata")
        assert {k: connected[k] for k in ("kernelspec", "language_info")} == {
            k: saved.metadata[k] for k in ("kernelspec", "language_info")}  # what the kernel reported, as saved
        expect(opened.locator(".jp-Cell")).to_have_count(4)  # title, %load_ext, two runs
        replies = opened.locator(".jp-OutputArea-output .nbsessions-reply")
        expect(replies).to_have_count(2)
        expect(replies.first).to_be_visible()
        expect(replies.first).to_contain_text("Plan the trip.")
        expect(replies.nth(1)).to_contain_text("And the budget?")
        expect(opened.locator(".nbsessions-footer").first).to_contain_text("offline · trip (")
        expect(opened.locator(".jp-Cell .jp-InputArea").nth(2)).to_contain_text("%%agent -s ")
        outputs = opened.locator(".jp-OutputArea-output")
        assert outputs.locator("script, img, iframe").count() == 0
        page.screenshot(path=str(OUTPUT_DIR / "exported-notebook.png"), full_page=True)
        assert page.evaluate("() => typeof window.__xss") == "undefined"
        assert page.locator(".jp-Dialog").count() == 0
        assert dialogs == []

    update_screenshot("panel-sent.png", "sent-view.png")
