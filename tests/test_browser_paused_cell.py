"""Approve / Reject (and a box per requested field) in a paused ``%%agent`` cell itself, in a real JupyterLab with
headless Chromium: a click continues the run in place, the notice turns into the reply, and a rejected tool never
runs. The buttons' text is measured against their background (WCAG 2, >= 4.5:1) in both themes. Uses the fixtures
of ``conftest.py``.
"""

from __future__ import annotations

import pytest
from browser_harness import OUTPUT_DIR, running_notebook
from test_browser_theme import CONTRAST

pytestmark = pytest.mark.browser

# Every tool call bumps one counter and says its number, and the model repeats what the tool message said: a
# reply "#2" after a rejection and an approval shows the rejected call never ran.
SETUP = """\
import json
from nbsessions import FunctionModel
from nbsessions.llm.base import ToolCall
from nbsessions.runs.core.tools import tool

calls = []

@tool(requires_confirmation=True)
def drop_table(name: str) -> str:
    \"\"\"Drop a table.\"\"\"
    calls.append(name)
    return f"dropped {name} (tool call #{len(calls)})"

@tool(requires_user_input=True, user_input_fields=["seat"])
def book(flight: str, seat: str) -> str:
    \"\"\"Book a seat.\"\"\"
    calls.append(flight)
    return f"booked {flight} seat {seat} (tool call #{len(calls)})"

def dba(messages, tools):
    if messages[-1].role == "tool":
        return "Model read: " + str(messages[-1].content)
    if "seat" in str(messages[-1].content):
        return ToolCall("call_b", "book", json.dumps({"flight": "LX1"}))
    return ToolCall("call_d", "drop_table", json.dumps({"name": "old"}))

get_ipython().magics_manager.registry["AgentMagics"].notebook.register_model("dba", FunctionModel(dba))
"""
CELLS = ["%load_ext nbsessions", SETUP, "%agent tools drop_table book",
         "%%agent --new ops -m dba\nDrop the old table.",
         "%%agent --new ops2 -m dba\nDrop it again.",
         "%%agent --new trip -m dba\nBook me a seat."]
BUTTONS = ".jp-Cell .nbsessions-paused-controls button"


def test_approve_and_reject_in_the_paused_cell_continue_the_run_in_place(jupyterlab, chromium):
    from playwright.sync_api import expect

    ratios: dict[str, list[dict]] = {}
    with running_notebook(jupyterlab, chromium, "paused", CELLS) as page:
        cell = page.locator(".jp-Notebook .jp-Cell")
        approve_cell, reject_cell, input_cell = cell.nth(3), cell.nth(4), cell.nth(5)
        for paused in (approve_cell, reject_cell):
            expect(paused.locator(".nbsessions-paused")).to_contain_text("is paused")
            expect(paused.locator(".nbsessions-paused-controls button")).to_have_text(["Approve", "Reject"])
        expect(input_cell.locator(".nbsessions-paused-controls input")).to_have_count(1)

        for theme in ("JupyterLab Light", "JupyterLab Dark"):  # the buttons, read where they are shown
            page.evaluate(f"() => window.jupyterapp.commands.execute('apputils:change-theme', {{theme: '{theme}'}})")
            light = "true" if theme.endswith("Light") else "false"
            page.wait_for_function(f"() => document.body.dataset.jpThemeLight === '{light}'")
            page.wait_for_function("() => !document.querySelector('link[href*=\"themes\"][data-loading]')")
            ratios[theme] = page.evaluate(CONTRAST, BUTTONS)
            approve_cell.screenshot(path=str(OUTPUT_DIR / f"paused-cell-{'light' if light == 'true' else 'dark'}.png"))

        approve_cell.get_by_role("button", name="Approve").click()
        expect(approve_cell.locator(".nbsessions-paused")).to_have_count(0)  # the notice became the reply
        expect(approve_cell.locator(".jp-OutputArea-output").last).to_contain_text(
            "Model read: dropped old (tool call #1)")
        expect(approve_cell.locator(".nbsessions-paused-controls")).to_have_count(0)  # its buttons went

        reject_cell.get_by_role("button", name="Reject").click()
        expect(reject_cell.locator(".nbsessions-paused")).to_have_count(0)
        expect(reject_cell.locator(".nbsessions-paused-controls")).to_have_count(0)
        rejected = reject_cell.locator(".jp-OutputArea-output").last
        expect(rejected).to_contain_text("Model read: ")
        assert "dropped" not in rejected.inner_text()  # the tool never ran

        input_cell.locator(".nbsessions-paused-controls input").fill("12A")
        input_cell.get_by_role("button", name="Continue").click()
        expect(input_cell.locator(".nbsessions-paused")).to_have_count(0)
        # #2: the approved call ran once and the rejected one never
        expect(input_cell.locator(".jp-OutputArea-output").last).to_contain_text(
            "Model read: booked LX1 seat 12A (tool call #2)")
        assert page.evaluate("() => typeof window.__xss") == "undefined"

    for theme, measured in ratios.items():
        assert [m["text"] for m in measured] == ["Approve", "Reject"] * 2 + ["Continue"], f"{theme}: {measured}"
        low = [m for m in measured if m["ratio"] < 4.5]
        assert low == [], f"{theme}: below 4.5:1 contrast: {low}"
