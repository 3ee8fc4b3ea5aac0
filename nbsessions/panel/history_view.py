"""The History tab: a session's transcript, 50 runs per page, newest page first.

Prompts and replies are rendered with ``markdown_to_html`` (Markdown, then nh3), because this HTML reaches the
browser as live widget markup; a reply carrying ``<script>`` or ``onerror=`` must stay inert.
"""

from __future__ import annotations

import html
from collections.abc import Callable

from ipywidgets import HTML, Button, HBox, Label, Layout, VBox

from nbsessions.panel import formatting as fmt
from nbsessions.render import markdown_to_html
from nbsessions.schema import RunOutput, Session

RUNS_PER_PAGE = 50

_RUN_STYLE = "border-top:1px solid var(--jp-border-color2,#ddd);padding:6px 0"
_META_STYLE = "font-size:85%;opacity:.75"
_PROMPT_STYLE = "border-left:3px solid var(--jp-brand-color1,#1976d2);padding-left:8px;margin:4px 0"
_ERROR_STYLE = "color:#c62828;font-size:90%"


def page_of_runs(total: int, page: int) -> tuple[int, int]:
    """(``last``, ``count``) to read page ``page`` (0 = newest) with ``get_runs(last=...)``: stores read the
    newest N runs cheaply, so an old page costs what it shows plus the newer ones, never the whole session."""
    newer = page * RUNS_PER_PAGE
    count = max(0, min(RUNS_PER_PAGE, total - newer))
    return newer + count, count


def run_meta(run: RunOutput, number: int) -> str:
    m = run.metrics
    parts = [f"#{number}", fmt.when_precise(run.created_at), f"{fmt.tokens(m.input_tokens)} in / "
             f"{fmt.tokens(m.output_tokens)} out tokens", fmt.seconds(m.duration), html.escape(run.model or "?")]
    return " · ".join(parts) + fmt.run_badges(run)


def render_run(run: RunOutput, number: int) -> str:
    error = f'<div style="{_ERROR_STYLE}">{html.escape(run.error)}</div>' if run.error else ""
    return (f'<div class="nbsessions-run" style="{_RUN_STYLE}">'
            f'<div style="{_META_STYLE}">{run_meta(run, number)}</div>'
            f'<div class="nbsessions-prompt" style="{_PROMPT_STYLE}">{markdown_to_html(run.input)}</div>'
            f'<div class="nbsessions-reply">{markdown_to_html(run.content)}</div>{error}</div>')


def render_history(session: Session, rendered_runs: list[str]) -> str:
    """One HTML string for the page: a single widget value is far cheaper than a widget per run."""
    summary = ""
    if session.summary:
        summary = (f'<div class="nbsessions-summary" style="{_META_STYLE}"><b>Summary</b>'
                   f"{markdown_to_html(session.summary)}</div>")
    if not rendered_runs:
        return summary + "<p><i>No runs yet: run a <code>%%agent</code> cell to start this session.</i></p>"
    return summary + "".join(rendered_runs)


def _run_key(run: RunOutput, number: int) -> tuple:
    """Everything ``render_run`` shows: a run whose key is unchanged need not be rendered again."""
    m = run.metrics
    return (number, run.run_id, run.status, run.superseded_by, run.error, run.input, run.content, run.model,
            run.created_at, m.input_tokens, m.output_tokens, m.duration)


class HistoryView(VBox):
    """Shows one page; ``on_page(page)`` asks the panel to load another page (0 = newest)."""

    def __init__(self, on_page: Callable[[int], None]) -> None:
        self.page = 0
        self.total = 0
        self._on_page = on_page
        self._rendered: dict[tuple, str] = {}  # the page on screen: a live redraw renders only what changed
        self.html = HTML(layout=Layout(max_height="600px", overflow="auto"))
        self.html.add_class("nbsessions-history")
        self.newer = Button(description="◀ newer", layout=Layout(width="90px"))
        self.older = Button(description="older ▶", layout=Layout(width="90px"))
        self.page_info = Label()
        self.newer.on_click(lambda _b: self._on_page(self.page - 1))
        self.older.on_click(lambda _b: self._on_page(self.page + 1))
        super().__init__([HBox([self.newer, self.page_info, self.older]), self.html])
        self.clear("Select a session to see its history.")

    def show(self, session: Session, runs: list[RunOutput], page: int, total: int) -> None:
        first = total - page * RUNS_PER_PAGE - len(runs) + 1
        self.page, self.total = page, total
        rendered = {}
        for number, run in enumerate(runs, start=first):
            key = _run_key(run, number)
            rendered[key] = self._rendered.get(key) or render_run(run, number)
        self._rendered = rendered
        self.html.value = render_history(session, list(rendered.values()))
        self.page_info.value = fmt.page_label(first, len(runs), total, "runs")
        self.newer.disabled = page == 0
        self.older.disabled = first <= 1

    def clear(self, message: str) -> None:
        self.page, self.total = 0, 0
        self._rendered = {}
        self.html.value = f"<p><i>{html.escape(message)}</i></p>"
        self.page_info.value = ""
        self.newer.disabled = self.older.disabled = True
