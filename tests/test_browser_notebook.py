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


TEAM_CELL = '''import json
from nbsessions import Agent, FunctionModel, TinyDb
from nbsessions.llm.base import ToolCall
from nbsessions.panel import SessionPanel
from nbsessions.team import Team

def leader(messages, tools):
    done = [m.content for m in messages if m.role == "tool" and not m.from_history]
    return "composed: " + done[0] if done else ToolCall("c1", "ask_writer", json.dumps({"task": "write it up"}))

writer = Agent(model=FunctionModel(lambda m: "writer did " + m[-1].content, id="writer-model"), name="writer")
team = Team(members=[writer], db=TinyDb("teams.nbsessions.json"), model=FunctionModel(leader, id="leader"))
first = team.run("report on tea")
panel = SessionPanel(db=team.db)
panel.follow(team)
panel.select(first.session_id)
panel'''


def test_a_team_runs_member_fold_unfolded_in_the_browser_stays_unfolded_when_a_run_arrives(jupyterlab, chromium):
    from playwright.sync_api import expect

    dialogs: list[str] = []
    with running_notebook(jupyterlab, chromium, "team", [TEAM_CELL], dialogs=dialogs) as page:
        folds = page.locator(".nbsessions-panel .nbsessions-history .nbsessions-members")
        expect(folds).to_have_count(1)
        header = folds.first.locator(".jupyter-widget-Collapse-header").first
        expect(header).to_contain_text("1 member run: writer ·")
        reply = folds.first.get_by_text("writer did write it up")
        expect(reply).to_be_hidden()  # folded by default
        header.click()
        expect(reply).to_be_visible()

        page.evaluate("() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel"
                      ".requestExecute({code: 'team.run(\"report on coffee\", session_id=first.session_id)'}).done")
        expect(folds).to_have_count(2)  # a run arrived: History redrew
        expect(folds.get_by_text("writer did write it up")).to_have_count(2)

        def fold_of(prompt: str, fresh: str = ""):
            run = page.locator(".nbsessions-panel .nbsessions-history .nbsessions-run", has_text=prompt)
            return run.locator(f".nbsessions-members{fresh}").get_by_text("writer did write it up")

        expect(fold_of("report on tea")).to_be_visible()  # the older run, still open
        expect(fold_of("report on coffee")).to_be_hidden()  # the new run's, folded

        page.evaluate("() => document.querySelectorAll('.nbsessions-members').forEach(e => e.dataset.drawn = 'before')")
        page.evaluate("() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.requestExecute("
                      "{code: 'panel.select(panel.agent.create_session(\"elsewhere\").session_id)\\n"
                      "panel.select(first.session_id)'}).done")  # every widget of History drawn anew
        folds = page.locator(".nbsessions-panel .nbsessions-history .nbsessions-members:not([data-drawn])")
        expect(folds).to_have_count(2)
        expect(fold_of("report on tea", ":not([data-drawn])")).to_be_visible()  # the kernel heard the click
        expect(fold_of("report on coffee", ":not([data-drawn])")).to_be_hidden()
        assert page.evaluate("() => typeof window.__xss") == "undefined" and dialogs == []
