"""How a stored run keeps the history it sent: as references to the runs it came from, not as copies.

A message a run took from an earlier run is stored as ``{"ref": <run_id>, "start": i, "end": j}``, the slice
``[i:j]`` of that run's own messages (``own_message_dicts``), which are always stored in full — so references
never chain. A long prompt message whose text is the run's ``input`` is stored once, marked
``content_is_input``. ``schema.RunOutput`` uses these to write (``to_dict(history_refs=True)``) and read
(``from_dict(data, sources)``) its stored form; stores gather the ``sources`` (``db.base.runs_from_records``).
Plain dicts only, so the record types stay in ``schema``.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator
from typing import Any, Protocol

INPUT_AS_CONTENT = 1024
"""A prompt message at least this long whose text is the run's ``input`` is stored once, in ``input``."""


class _Message(Protocol):
    role: str
    content: str | None
    from_history: bool
    origin: tuple[str, int] | None

    def to_dict(self) -> dict[str, Any]: ...


def is_history_ref(entry: dict[str, Any]) -> bool:
    return "ref" in entry and "role" not in entry


def own_message_dicts(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The messages a stored run added itself (no system prompt, no history): what references index into."""
    return [with_input(m, data) for m in data.get("messages") or ()
            if not is_history_ref(m) and not m.get("from_history") and m.get("role") != "system"]


def with_input(entry: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    """A stored message whose text was left out because it is the run's ``input``, with that text back."""
    return {**entry, "content": data.get("input")} if entry.get("content_is_input") else entry


def without_history(data: dict[str, Any]) -> dict[str, Any]:
    """A stored run without the history it sent (references and full copies alike): its system prompt and the
    messages it added itself, all that a later run takes from it."""
    return {**data, "messages": [m for m in data.get("messages") or ()
                                 if not is_history_ref(m) and not m.get("from_history")]}


def history_ref_ids(data: dict[str, Any]) -> set[str]:
    """The runs a stored run refers to for its history."""
    return {m["ref"] for m in data.get("messages") or () if is_history_ref(m)}


def stored_messages(messages: Iterable[_Message], prompt: str) -> list[dict[str, Any]]:
    """A run's messages as stored: consecutive history messages from one run become one reference (messages
    without an ``origin`` stay in full), and a long prompt message is marked instead of repeating ``input``."""
    out: list[dict[str, Any]] = []
    for m in messages:
        if not (m.from_history and m.origin):
            out.append(m.to_dict())
            if m.role == "user" and not m.from_history and len(prompt) >= INPUT_AS_CONTENT and m.content == prompt:
                out[-1].update(content=None, content_is_input=True)
            continue
        run_id, index = m.origin
        last = out[-1] if out else None
        if last is not None and last.get("ref") == run_id and last["end"] == index and is_history_ref(last):
            last["end"] = index + 1
        else:
            out.append({"ref": run_id, "start": index, "end": index + 1})
    return out


def resolved_messages(data: dict[str, Any], sources: dict[str, list[dict[str, Any]]]
                      ) -> Iterator[tuple[dict[str, Any], tuple[str, int] | None]]:
    """The stored messages of ``data`` back as sent, each with its origin: references replaced by the
    referenced runs' own messages (``sources``: run id -> ``own_message_dicts``), flagged ``from_history``.

    A reference whose run is gone (deleted by hand, or a copy that left it out) becomes one system message
    saying so, flagged as history: the run still reads, and nobody mistakes the gap for what was sent.
    """
    for entry in data.get("messages") or ():
        if not is_history_ref(entry):
            yield with_input(entry, data), None
            continue
        run_id, start, end = entry["ref"], entry.get("start"), entry.get("end")
        if not (isinstance(run_id, str) and isinstance(start, int) and isinstance(end, int) and 0 <= start < end):
            raise ValueError(f"bad history reference {entry!r}")
        own = sources.get(run_id)
        if own is None or end > len(own):
            gap = f"[{end - start} history message(s) from run {run_id} are missing: that run is no longer stored]"
            yield {"role": "system", "from_history": True, "content": gap}, None
            continue
        for i, m in enumerate(own[start:end], start):
            yield {"role": m["role"], "content": m.get("content"), "tool_calls": copy.deepcopy(m.get("tool_calls")),
                   "tool_call_id": m.get("tool_call_id"), "from_history": True}, (run_id, i)
