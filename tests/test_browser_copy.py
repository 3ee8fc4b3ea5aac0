"""Copy (and Insert below) on the code blocks of replies, in a real JupyterLab with headless Chromium: in a
``%%agent`` cell's output and in the ``%agent panel`` History, by mouse and by keyboard, in both themes. The
buttons come from this checkout's front end (``js/src/replycode.ts``); the kernel's HTML stays inert.
``NBSESSIONS_UPDATE_SCREENSHOT=1`` copies the light theme's picture to ``docs/reply-copy.png`` (README's panel section).
"""

from __future__ import annotations

import json

import pytest
from browser_harness import OUTPUT_DIR, lab_with_extension, running_notebook, update_screenshot
from xss import active_content

pytestmark = pytest.mark.browser

CODE = 'for n in [1, 2]:\n    print(n, "<img src=x onerror=window.__xss=9>")'
SETUP = f"""\
from nbsessions import FunctionModel

def coder(messages):
    return ("Loop like this:\\n\\n```python\\n" + {CODE!r} + "\\n```\\n\\n"
            "Done. <img src=x onerror=\\"window.__xss=1\\"> <script>window.__xss=2</script> "
            "[link](javascript:window.__xss=3)")

get_ipython().magics_manager.registry["AgentMagics"].notebook.register_model("coder", FunctionModel(coder))
"""
# The second run comes after the panel is built: History redraws, and its new block gets its buttons too.
CELLS = ["%load_ext nbsessions", SETUP, "%%agent --new loops -m coder\nHow do I loop?", "%agent panel",
         "%%agent -m coder\nAnd again?", "%agent history"]
CLIPBOARD = "() => navigator.clipboard.readText()"
LOOKS = """(button) => {
    const probe = document.createElement('div');
    document.body.appendChild(probe);
    probe.style.color = 'var(--jp-ui-font-color1)';
    probe.style.backgroundColor = 'var(--jp-layout-color2)';
    const want = getComputedStyle(probe), got = getComputedStyle(button);
    const out = {text: got.color, background: got.backgroundColor, font1: want.color, layout2: want.backgroundColor};
    probe.remove();
    return out;
}"""


@pytest.fixture
def lab(tmp_path, chromium):
    with lab_with_extension(tmp_path) as lab:
        yield lab


def clear_clipboard(page) -> None:
    page.evaluate("() => navigator.clipboard.writeText('')")


def test_reply_code_blocks_copy_in_cells_and_panel(lab, chromium):
    from playwright.sync_api import expect

    dialogs: list[str] = []
    with running_notebook(lab, chromium, "copy", CELLS, dialogs=dialogs) as page:
        page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=lab["base"])
        cell_reply = page.locator(".jp-OutputArea-output .nbsessions-reply").first
        expect(cell_reply.locator("pre code")).to_have_text(CODE + "\n")
        history = page.locator(".nbsessions-panel .nbsessions-history")
        expect(history.locator(".nbsessions-reply pre code")).to_have_text([CODE + "\n"] * 2)
        listing = page.locator(".jp-Notebook .jp-Cell").nth(5).locator(".nbsessions-run")  # %agent history
        expect(listing).to_have_count(2)
        expect(listing.locator(".nbs-reply-code-toolbar [data-action=copy]")).to_have_count(2)

        # The cell: one toolbar over the one block; a click puts exactly the code in the clipboard.
        copy = cell_reply.locator(".nbs-reply-code-toolbar [data-action=copy]")
        expect(copy).to_have_count(1)
        clear_clipboard(page)
        copy.click()
        expect(copy).to_have_text("Copied")
        assert page.evaluate(CLIPBOARD) == CODE

        # The panel's History, by keyboard: the button takes focus and Enter copies.
        expect(history.locator(".nbs-reply-code-toolbar [data-action=copy]")).to_have_count(2)  # one per block
        panel_copy = history.locator(".nbs-reply-code-toolbar [data-action=copy]").first
        clear_clipboard(page)
        panel_copy.focus()
        assert page.evaluate("() => document.activeElement.dataset.action") == "copy"
        page.keyboard.press("Enter")
        expect(panel_copy).to_have_text("Copied")
        assert page.evaluate(CLIPBOARD) == CODE
        page.screenshot(path=str(OUTPUT_DIR / "reply-copy.png"))
        update_screenshot("reply-copy.png", "reply-copy.png")

        # The payload around the code ran nothing, and what the kernel sent is still inert HTML (no button in it).
        assert page.evaluate("() => typeof window.__xss") == "undefined"
        sent = page.evaluate("() => window.jupyterapp.shell.currentWidget.content.widgets[2].model.outputs"
                             ".toJSON().map(o => (o.data || {})['text/html'] || '').join('')")
        assert "nbsessions-reply" in sent and "<button" not in sent
        assert active_content(sent) == []

        # Both themes: the buttons wear the theme's variables, so their colours follow a switch to the dark one.
        page.mouse.move(0, 0)  # off the button: no hover colour
        light = copy.evaluate(LOOKS)
        assert (light["text"], light["background"]) == (light["font1"], light["layout2"])
        page.evaluate("() => window.jupyterapp.commands.execute('apputils:change-theme', {theme: 'JupyterLab Dark'})")
        page.wait_for_function("() => document.body.dataset.jpThemeLight === 'false'")
        page.wait_for_function(f"(b) => getComputedStyle(b).color !== {json.dumps(light['text'])}",
                               arg=copy.element_handle())
        dark = copy.evaluate(LOOKS)
        assert (dark["text"], dark["background"]) == (dark["font1"], dark["layout2"])
        assert dark["text"] != light["text"] and dark["background"] != light["background"]
        page.screenshot(path=str(OUTPUT_DIR / "reply-copy-dark.png"))

        # Insert below: a code cell holding the code, right under the cell whose output shows it.
        count = page.evaluate("() => window.jupyterapp.shell.currentWidget.content.widgets.length")
        cell_reply.locator("[data-action=insert-below]").click()
        assert page.evaluate("() => { const nb = window.jupyterapp.shell.currentWidget.content;"
                             "return [nb.widgets.length, nb.activeCellIndex, nb.activeCell.model.type,"
                             "nb.activeCell.model.sharedModel.getSource()]; }") == [count + 1, 3, "code", CODE]
        assert page.evaluate("() => typeof window.__xss") == "undefined"
        assert dialogs == []
