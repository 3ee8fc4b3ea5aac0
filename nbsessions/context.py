"""What a run sends to the model: the system prompt, the chosen history, the prompt.

Kept apart from the Agent so the rules for history (which runs, how many, in what order) are in one place and
can be read and tested without a model or a store.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from typing import Any

from nbsessions.db.base import BaseDb
from nbsessions.schema import Message, RunOutput


class _KeepMissing(dict):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def fill_from_state(text: str, state: Mapping[str, Any]) -> str:
    """Fill ``{key}`` from session state; unknown keys and odd braces stay as written (never a crash).

    ``{{`` and ``}}`` are escapes for literal braces, as in ``str.format``.

    Only plain names are filled: instructions often contain JSON or code, which must survive untouched.
    """
    out: list[str] = []
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError:  # a lone "{" or "}" — not a template
        return text
    values = _KeepMissing(state)
    for literal, name, spec, conversion in parsed:
        out.append(literal)
        if name is None:
            continue
        if name.isidentifier() and name in state and not spec and not conversion:
            out.append(str(values[name]))
        else:
            rebuilt = name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "")
            out.append("{" + rebuilt + "}")
    return "".join(out)


def history_runs(db: BaseDb, session_id: str, num_runs: int, *, exclude_cell: str | None = None
                 ) -> list[RunOutput]:
    """The newest ``num_runs`` runs that may serve as history, oldest first.

    Reads from the newest end only, widening the window while failed or superseded runs are in the way,
    so the cost follows what is read, not how long the session is.
    """
    if num_runs <= 0:
        return []
    window = num_runs * 2
    while True:
        recent = db.list_runs(session_id, last=window)
        usable = [r for r in recent if r.is_history and (exclude_cell is None or r.cell_id != exclude_cell)]
        if len(usable) >= num_runs or len(recent) < window:
            return usable[-num_runs:]
        window *= 4


def own_messages(run: RunOutput) -> list[Message]:
    """The exchange a run itself added: no system prompt, no copies of earlier history."""
    return [m for m in run.messages if not m.from_history and m.role != "system"]


def build_messages(system: str | None, history: list[RunOutput], prompt: str) -> list[Message]:
    messages: list[Message] = []
    if system:
        messages.append(Message(role="system", content=system))
    for run in history:
        for m in own_messages(run):
            messages.append(Message(role=m.role, content=m.content, tool_calls=m.tool_calls,
                                    tool_call_id=m.tool_call_id, from_history=True))
    messages.append(Message(role="user", content=prompt))
    return messages
