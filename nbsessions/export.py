"""A session as a file: a Markdown transcript to read or share, or JSON with every record to process further.

Exports are built from the stored records only, which hold no credentials: API keys live in the model objects of
a running kernel and are never written anywhere.
"""

from __future__ import annotations

import json
import time
from typing import Any

from nbsessions.render import format_footer
from nbsessions.schema import RunOutput, Session

EXPORT_FORMAT = "nbsessions.export"
EXPORT_VERSION = 1


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def _fence(text: str) -> str:
    """A code fence longer than any backtick run inside ``text``, so a prompt can never break out of it."""
    longest, run = 0, 0
    for ch in text:
        run = run + 1 if ch == "`" else 0
        longest = max(longest, run)
    return "`" * max(3, longest + 1)


def session_markdown(session: Session, runs: list[RunOutput]) -> str:
    """A readable transcript: each prompt, its reply and its footer; failed and replaced runs are marked."""
    label = session.session_name or session.session_id[:8]
    lines = [f"# {label}", "", f"- session: `{session.session_id}`"]
    if session.user_id:
        lines.append(f"- user: {session.user_id}")
    if session.notebook:
        lines.append(f"- notebook: {session.notebook}")
    lines += [f"- created: {_when(session.created_at)}", f"- runs: {len(runs)}", ""]
    for number, run in enumerate(runs, 1):
        notes = [run.status.value] if run.status.value != "completed" else []
        if run.superseded_by:
            notes.append("superseded by a re-run of its cell")
        heading = f"## {number}. Prompt" + (f" ({', '.join(notes)})" if notes else "")
        fence = _fence(run.input)
        lines += [heading, "", fence, run.input, fence, "", f"### Reply ({run.model or '?'})", ""]
        lines += [run.content or "_(no reply)_", ""]
        lines += [f"_{format_footer(run, label)}_", ""]
    return "\n".join(lines)


def session_json(session: Session, runs: list[RunOutput]) -> str:
    """The session and all its runs as stored, with a format marker so readers can check what they got."""
    payload: dict[str, Any] = {
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "exported_at": time.time(),
        "session": session.to_dict(),
        "runs": [run.to_dict() for run in runs],
    }
    return json.dumps(payload, indent=2, ensure_ascii=False, allow_nan=False)
