"""In a real JupyterLab + headless Chromium, light and dark: what nbsessions draws stays readable, and the panel's
Approve continues a paused run on the model that made it.

Contrast is measured from computed styles (WCAG 2 ratio, >= 4.5:1) for the compare and batch table headers and
the metrics chart's labels, in both themes. Uses the fixtures of ``conftest.py``. ``NBSESSIONS_UPDATE_SCREENSHOT=1``
copies the pictures to ``docs/`` (the README's).
"""

from __future__ import annotations

import pytest
from browser_harness import OUTPUT_DIR, REPO, running_notebook, update_screenshot

pytestmark = pytest.mark.browser

TESTS = REPO / "tests"
# A paused run made on the loopback OpenAI server (a real HTTP server in this kernel): Approve in the panel must
# send the rest to that server, not to the notebook's offline model.
SERVED_PAUSE = f"""\
import sys
sys.path.insert(0, {str(TESTS)!r})
from openai_server import OpenAIServer
from nbsessions import OpenAIChat
from nbsessions.runs.core.tools import make_tool, tool

@tool(requires_confirmation=True)
def publish(title: str) -> str:
    \"\"\"Publish a title.\"\"\"
    return "published " + title

server = OpenAIServer()
server.script({{"content": "", "tool_calls": [{{"name": "publish", "arguments": '{{"title": "Q3"}}'}}]}},
              "Published on the served model.")
nb_agent = get_ipython().magics_manager.registry["AgentMagics"].agent
nb_agent.tools["publish"] = make_tool(publish)
nb_agent.run("Publish Q3.", model=OpenAIChat("served-model", base_url=server.base_url, api_key="unused"),
             session_id=nb_agent.active_session_id).status.value
"""
CODE_REPLY = """\
from nbsessions import FunctionModel
nb_agent = get_ipython().magics_manager.registry["AgentMagics"].agent
reply = "Try:\\n\\n```python\\ndef f(x):\\n    return x + 1  # add\\n```"
nb_agent.run("Show code.", session_id=nb_agent.active_session_id, model=FunctionModel(lambda m: reply)).status.value
"""
# Runs that carry badges (an error, a run left paused) and a %agent history listing that colours the error.
BADGES = """\
from nbsessions import RunOutput, RunStatus
nb_agent = get_ipython().magics_manager.registry["AgentMagics"].agent
for status, error in ((RunStatus.error, "the server said no"), (RunStatus.paused, None)):
    nb_agent.db.upsert_run(RunOutput(session_id=nb_agent.active_session_id, status=status,
                                     input=f"a {status.value} run", error=error))
"""
# WCAG 2 contrast of an element's text against the first opaque background behind it (SVG text: its fill); a
# translucent text colour is blended over that background first, and color(srgb ...) values (what color-mix()
# computes to) are read on their 0-1 scale.
CONTRAST = """(selector) => {
  const rgb = (s) => {
    const m = s.match(/[\\d.]+/g);
    if (!m) return null;
    const v = m.map(Number);
    const c = s.startsWith('color(') ? [v[0] * 255, v[1] * 255, v[2] * 255] : v.slice(0, 3);
    return [...c, v.length > 3 ? v[3] : 1];
  };
  const blend = (fg, bg) => fg.slice(0, 3).map((v, i) => v * fg[3] + bg[i] * (1 - fg[3]));
  const lum = ([r, g, b]) => { const c = [r, g, b].map(v => { v /= 255;
      return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); });
    return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2]; };
  const background = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const c = rgb(getComputedStyle(e).backgroundColor);
      if (c && c[3] > 0.5) return c;
    }
    return [255, 255, 255, 1];
  };
  return [...document.querySelectorAll(selector)].filter(el => el.getClientRects().length).map(el => {
    const style = getComputedStyle(el);
    const bg = background(el);
    const fg = blend(rgb(el instanceof SVGElement ? style.fill : style.color), bg);
    const [a, b] = [lum(fg), lum(bg)].sort((x, y) => y - x);
    return {selector, text: el.textContent.trim().slice(0, 40), ratio: (a + 0.05) / (b + 0.05)};
  });
}"""
CHECKED = (".nbsessions-compare th", ".nbsessions-batch th", "svg.nbsessions-chart text",
           ".nbsessions-compare td > span", ".nbsessions-batch td > span", ".nbsessions-panel .nbsessions-badge",
           ".nbsessions-panel .nbsessions-error", ".nbsessions-error-run", ".nbsessions-panel .lm-TabBar-tabLabel",
           ".nbsessions-panel .jupyter-widget-Collapse-header")
# Every one of these must be measured in both themes: a selector that finds nothing checks nothing.
MUST_FIND = (".nbsessions-panel .nbsessions-badge", ".nbsessions-panel .nbsessions-error", ".nbsessions-error-run",
             ".nbsessions-panel .lm-TabBar-tabLabel", ".nbsessions-panel .jupyter-widget-Collapse-header",
             ".nbsessions-batch td > span")
# Any box between the State tab's editor and the panel that scrolls sideways (its content wider than it).
SIDEWAYS = """() => {
  const found = [];
  for (let e = document.querySelector('.nbsessions-panel .widget-textarea'); e; e = e.parentElement) {
    const overflow = getComputedStyle(e).overflowX;
    if ((overflow === 'auto' || overflow === 'scroll') && e.scrollWidth > e.clientWidth + 1) found.push(e.className);
    if (e.classList.contains('nbsessions-panel')) break;
  }
  return found;
}"""


def test_both_themes_stay_readable_and_approve_keeps_the_runs_model(jupyterlab, chromium):
    from playwright.sync_api import expect

    cells = ["%load_ext nbsessions",
             "%%agent --new themes\nHello",
             "%%agent --compare offline,offline\nCompare me",
             "rows = [{'city': 'Oslo'}, {'city': 'Lima'}]",
             "%%agent --over rows\nWeather in {city}",
             CODE_REPLY,
             BADGES,
             "%agent history 3",
             "%agent panel",
             SERVED_PAUSE]
    ratios: dict[str, list[dict]] = {}
    with running_notebook(jupyterlab, chromium, "themes", cells, height=1600) as page:
        panel = page.locator(".nbsessions-panel")
        history = panel.locator(".nbsessions-history")
        paused = history.locator(".nbsessions-paused")
        expect(paused).to_have_count(1)
        expect(page.locator(".nbsessions-batch th").first).to_be_visible()
        expect(page.locator(".nbsessions-compare th").first).to_be_visible()
        # A code block is highlighted in the editor's colours: a keyword span styled by the theme variable.
        keyword = history.locator("pre span", has_text="def").first
        expect(keyword).to_have_attribute("style", "color:var(--jp-mirror-editor-keyword-color)")

        paused.get_by_role("button", name="Approve").click()
        expect(paused).to_have_count(0)
        expect(history).to_contain_text("Published on the served model.")
        expect(history).to_contain_text("served-model")
        panel.get_by_role("tab", name="State").click()
        expect(panel.get_by_role("button", name="Save state")).to_be_visible()
        assert page.evaluate(SIDEWAYS) == []  # no sideways scrollbar under "Save state"
        panel.get_by_role("tab", name="Metrics").click()
        expect(panel.locator("svg.nbsessions-chart text").first).to_be_visible()

        for theme in ("JupyterLab Light", "JupyterLab Dark"):
            page.evaluate(f"() => window.jupyterapp.commands.execute('apputils:change-theme', "
                          f"{{theme: '{theme}'}})")
            light = "true" if theme.endswith("Light") else "false"
            page.wait_for_function(f"() => document.body.dataset.jpThemeLight === '{light}'")
            page.wait_for_function("() => !document.querySelector('link[href*=\"themes\"][data-loading]')")
            measured = []
            for tab in ("Metrics", "History"):  # what a tab shows is measured while it is shown
                panel.get_by_role("tab", name=tab).click()
                measured += [r for selector in CHECKED for r in page.evaluate(CONTRAST, selector)]
            ratios[theme] = measured
            name = "dark" if light == "false" else "light"
            panel.screenshot(path=str(OUTPUT_DIR / f"panel-{name}.png"))
            page.locator(".nbsessions-compare").first.screenshot(path=str(OUTPUT_DIR / f"compare-{name}.png"))
        assert page.evaluate("() => typeof window.__xss") == "undefined"

    for theme, measured in ratios.items():
        assert len(measured) >= 6, f"{theme}: headers and chart labels were not found"
        assert {m["selector"] for m in measured} >= set(MUST_FIND), f"{theme}: not all were measured"
        low = [m for m in measured if m["ratio"] < 4.5]
        assert low == [], f"{theme}: below 4.5:1 contrast: {low}"

    for name in ("panel-dark", "panel-light"):
        update_screenshot(f"{name}.png", f"{name}.png")
