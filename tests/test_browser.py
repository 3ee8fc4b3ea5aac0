"""The panel in a real JupyterLab, in headless Chromium: what a user sees, and that a hostile reply stays inert.

Needs Chromium (Debian's ``/usr/bin/chromium``, or ``NBSESSIONS_CHROMIUM=/path``): without it the test is
skipped, unless ``NBSESSIONS_REQUIRE_BROWSER=1`` (set by ``.ci/run``) makes that a failure.

Screenshots go to ``test-output/``; ``NBSESSIONS_UPDATE_SCREENSHOT=1`` also copies the panel's to
``docs/panel.png`` (the README's picture), so an ordinary test run leaves tracked files alone.
"""

from __future__ import annotations

import pytest
from browser_harness import OUTPUT_DIR, running_notebook, update_screenshot

pytestmark = pytest.mark.browser

XSS_PROMPT = ('Summarise the quarterly report. <img src=x onerror="window.__xss=1"> '
              "<script>window.__xss=2</script> [details](javascript:window.__xss=3)")
XSS_TITLE = 'Q3 <img src=x onerror="window.__xss=4"><script>window.__xss=5</script>'
# Run in the kernel after the panel is shown: a variant of the newest "report" run, then a run that pauses on
# a tool needing approval, whose arguments carry a payload.
HUMAN_IN_THE_LOOP = f"""\
import json
from nbsessions import FunctionModel, tool
from nbsessions.llm.base import ToolCall
from nbsessions.runs.core.tools import make_tool

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

    update_screenshot("panel.png", "panel.png")
