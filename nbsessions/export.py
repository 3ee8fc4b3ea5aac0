"""A session as a file: a Markdown transcript to read or share, or JSON with every record to process further.

Exports are built from the stored records only, which hold no credentials: API keys live in the model objects of
a running kernel and are never written anywhere.

Why not inside a surface: ``%agent export``, ``explore.export_session`` and the CLI all write these files, so the
writers sit in the presentation layer below those three surfaces.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from typing import Any

from nbsessions.errors import InvalidInputError, StorageError
from nbsessions.formatting import when_precise
from nbsessions.render import format_footer
from nbsessions.schema import RunOutput, RunStatus, Session

FORMATS = ("md", "json", "csv", "ipynb")
SESSION_ONLY = frozenset({"ipynb"})  # a comparison or a batch has no notebook form
EXPORT_FORMAT = "nbsessions.export"
EXPORT_VERSION = 1


def write_private(path: str | os.PathLike[str], text: str) -> None:
    """Write an export readable by its owner only (``0600``), whole or not at all.

    The text goes to a temporary file beside ``path`` that replaces it only once complete, so a full disk leaves
    no half-written export (and an existing file as it was); any failure is one ``StorageError`` naming the path.
    """
    target = os.path.realpath(path)  # through a symlink, as writing to it would: the link stays a link
    if os.path.isdir(target):
        raise InvalidInputError(f"{os.fspath(path)} is a directory: give a file path such as "
                                f"{os.path.join(os.fspath(path), 'session.md')}")
    folder, name = os.path.split(target)
    if os.path.exists(target) and not os.access(target, os.W_OK):  # replacing it would get around that
        raise StorageError(f"could not write {os.fspath(path)}: it is read-only; nothing was written")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)  # created 0600
        try:
            with open(fd, "w", encoding="utf-8", newline="") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError as exc:
        raise StorageError(f"could not write {os.fspath(path)}: {exc.strerror or exc}; nothing was written") \
            from None


def fence_for(text: str) -> str:
    """A code fence longer than any backtick run inside ``text``, so a prompt can never break out of it."""
    longest, run = 0, 0
    for ch in text:
        run = run + 1 if ch == "`" else 0
        longest = max(longest, run)
    return "`" * max(3, longest + 1)


def in_tree_order(runs: list[RunOutput]) -> list[tuple[int, RunOutput]]:
    """Top-level runs in order, each followed by the runs nested under it (members, steps), with their depth."""
    children: dict[str, list[RunOutput]] = {}
    known = {r.run_id for r in runs}
    for run in runs:
        if run.parent_run_id in known:
            children.setdefault(run.parent_run_id, []).append(run)
    out: list[tuple[int, RunOutput]] = []

    def visit(run: RunOutput, depth: int) -> None:
        out.append((depth, run))
        for child in children.get(run.run_id, []):
            visit(child, depth + 1)

    for run in runs:
        if run.parent_run_id not in known:
            visit(run, 0)
    return out


def session_markdown(session: Session, runs: list[RunOutput]) -> str:
    """A readable transcript: each prompt, its reply and its footer; failed and replaced runs are marked.

    Team members' and workflow steps' runs follow the run they belong to, one heading level deeper.
    """
    lines = [f"# {session.label}", "", f"- session: `{session.session_id}`"]
    if session.user_id:
        lines.append(f"- user: {session.user_id}")
    if session.notebook:
        lines.append(f"- notebook: {session.notebook}")
    top = [r for r in runs if not r.parent_run_id]
    lines += [f"- created: {when_precise(session.created_at)}", f"- runs: {len(top)}", ""]
    number = 0
    for depth, run in in_tree_order(runs):
        notes = [run.status.value] if run.status != RunStatus.completed else []
        if run.superseded_by:
            notes.append("superseded by a re-run of its cell")
        if depth == 0:
            number += 1
            title = f"## {number}. Prompt" + (f" ({run.kind})" if run.kind != "agent" else "")
        else:
            title = "#" * min(6, 2 + depth) + f" {run.agent_name or run.model or 'nested run'}: task"
        heading = title + (f" ({', '.join(notes)})" if notes else "")
        fence = fence_for(run.input)
        reply_heading = "#" * min(6, 3 + depth) + f" Reply ({run.model or '?'})"
        lines += [heading, "", fence, run.input, fence, "", reply_heading, ""]
        for step in run.steps:
            outcome = step.output if step.status == RunStatus.completed else step.error
            lines.append(f"- step {step.name} ({step.status.value}): {outcome or ''}")
        lines += [run.content or "_(no reply)_", ""]
        lines += [f"_{format_footer(run, session.label_with_id)}_", ""]
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
