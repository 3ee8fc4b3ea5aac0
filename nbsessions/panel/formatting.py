"""Small text and HTML pieces shared by the panel's views.

Only numbers, times and fixed words are formatted here; anything a user or a model wrote goes through
``markdown_to_html`` (or a text-only widget) in the views, never through these helpers.
"""

from __future__ import annotations

import html

from nbsessions.records import theme
from nbsessions.records.formatting import counted, seconds, tokens, when, when_precise  # noqa: F401 (the views' names)
from nbsessions.records.schema import RunOutput, RunStatus

_BADGE_COLOURS = {
    RunStatus.error: theme.ERROR,
    RunStatus.cancelled: theme.WARN,
    RunStatus.interrupted: theme.WARN,
    RunStatus.paused: theme.WARN,
    RunStatus.running: theme.INFO,
    RunStatus.pending: theme.INFO,
    "superseded": theme.MUTED,
}
_OTHER = theme.MUTED


def badge(word: str, colour: str) -> str:
    return (f'<span class="nbsessions-badge" style="background:{colour};color:{theme.BADGE_TEXT};border-radius:3px;'
            f'padding:0 5px;font-size:80%;margin-left:4px">{html.escape(word)}</span>')


def status_badge(status: str) -> str:
    """A badge for a status word as stored (a workflow step's status is a plain string); none for completed."""
    if status == RunStatus.completed.value:
        return ""
    return badge(str(status), _BADGE_COLOURS.get(status, _OTHER))  # RunStatus is a str enum: "error" finds it


def kind_label(kind: str, detail: str = "") -> str:
    """"team · 2 members" or "workflow · 3 steps" in a run's header; agent runs, the usual kind, get none."""
    if kind == "agent":
        return ""
    words = html.escape(str(kind)) + (f" · {html.escape(detail)}" if detail else "")
    return f'<b class="nbsessions-kind">{words}</b>'


def run_badges(run: RunOutput) -> str:
    """Badges for the statuses that matter when reading a transcript; a plain completed run gets none."""
    parts = []
    if run.status in _BADGE_COLOURS:
        parts.append(badge(run.status.value, _BADGE_COLOURS[run.status]))
    if run.superseded_by:
        parts.append(badge("superseded", _BADGE_COLOURS["superseded"]))
    return "".join(parts)


def page_label(first: int, count: int, total: int, noun: str) -> str:
    """``"runs 951–1000 of 1000"``; numbers are 1-based as people count."""
    if total == 0 or count == 0:
        return f"no {noun}"
    return f"{noun} {first}–{first + count - 1} of {total}"
