"""Which messages of a session a reader gets back: Agno's ``get_messages`` rules, in one place.

Pure over run records (no store, no model), so ``Agent.get_session_messages``, ``Agent.get_chat_history`` and
``Session.get_messages`` always agree.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol, TypeVar


class _Message(Protocol):
    """What is read of a ``schema.Message`` (schema imports this module, so it is described, not imported)."""

    @property
    def role(self) -> str: ...
    @property
    def from_history(self) -> bool: ...


Message = TypeVar("Message", bound=_Message)
_M = TypeVar("_M", bound=_Message, covariant=True)


class _Run(Protocol[_M]):
    """What is read of a ``schema.RunOutput``."""

    @property
    def parent_run_id(self) -> str | None: ...
    @property
    def status(self) -> str: ...
    @property
    def superseded_by(self) -> str | None: ...
    @property
    def messages(self) -> Sequence[_M]: ...

# Agno's HISTORY_SKIP_STATUSES, as strings: schema imports this module (RunStatus is a str enum, so they match it)
SKIPPED_BY_DEFAULT = frozenset({"paused", "cancelled", "error"})


def _status_names(statuses: Iterable[Any] | None) -> frozenset[str]:
    """RunStatus is a str enum, so members and plain strings ("paused") compare and hash alike."""
    if statuses is None:
        return SKIPPED_BY_DEFAULT
    return frozenset(getattr(s, "value", s) for s in statuses)


def session_messages(runs: Sequence[_Run[Message]], *, last_n_runs: int | None = None, limit: int | None = None,
                     skip_roles: list[str] | None = None, skip_statuses: list[Any] | None = None,
                     skip_history_messages: bool = True) -> list[Message]:
    """Messages of the top-level runs, oldest first, with one system message (the first) at the start.

    ``skip_statuses=None`` skips paused, cancelled and error runs and runs replaced by a re-run (Agno's
    "regenerated"); ``[]`` keeps every run. ``limit`` keeps the newest messages (the system message counts).
    """
    skipped = _status_names(skip_statuses)
    chosen = [r for r in runs if r.parent_run_id is None and r.status not in skipped
              and not (skip_statuses is None and r.superseded_by is not None)]
    if last_n_runs is not None:
        if last_n_runs <= 0:
            return []
        chosen = chosen[-last_n_runs:]
    system: Message | None = None
    messages: list[Message] = []
    for run in chosen:
        for message in run.messages:
            if (message.from_history and skip_history_messages) or (skip_roles and message.role in skip_roles):
                continue
            if message.role != "system":
                messages.append(message)
            elif system is None:
                system = message
    if limit is None:
        return ([system] if system else []) + messages
    if system is not None:
        return [system] if limit <= 1 else [system] + messages[-(limit - 1):]
    messages = messages[-limit:] if limit > 0 else []
    while messages and messages[0].role == "tool":  # a tool result without the call that asked for it
        messages.pop(0)
    return messages
