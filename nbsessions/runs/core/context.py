"""What a run sends to the model: the system prompt, the chosen history, the prompt.

Kept apart from the Agent so the rules for history (which runs, how many, in what order) are in one place and
can be read and tested without a model or a store.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from nbsessions.db.base import BaseDb
from nbsessions.llm.base import estimate_tokens
from nbsessions.records.schema import Message, RunOutput, RunStatus

TokenCounter = Callable[[str], int]
SUMMARY_HEADING = "Summary of the conversation so far:\n"
"""What joins a session summary to the system prompt (``inspect_context`` splits the two again)."""


@dataclass(frozen=True)
class HistoryPolicy:
    """How much of a session a new run sees.

    ``runs`` newest usable runs; ``messages`` caps the number of messages instead (when set); ``max_tokens``
    is a budget for the whole context — system prompt and prompt are counted first, history fills the rest.
    Tokens are counted with ``count_tokens`` (an estimate unless a real tokenizer is given).
    """

    runs: int = 3
    messages: int | None = None
    max_tokens: int | None = None
    count_tokens: TokenCounter = estimate_tokens
    member_of: str | None = None  # a team member's run: its history is that agent's own earlier member runs


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


def after_run(runs: list[RunOutput], run_id: str | None) -> tuple[list[RunOutput], bool]:
    """(the runs stored after ``run_id``, whether it was among them): runs are in storage order, and their
    ``created_at`` is whole seconds, so position — not time — says what came after."""
    ids = [r.run_id for r in runs]
    if run_id is None or run_id not in ids:
        return runs, False
    return runs[ids.index(run_id) + 1:], True


def _usable(run: RunOutput, member_of: str | None) -> bool:
    if member_of is None:
        return run.is_history
    return run.agent_id == member_of and run.parent_run_id is not None and run.status == RunStatus.completed


def history_runs(db: BaseDb, session_id: str, num_runs: int, *, exclude_cell: str | None = None,
                 after: str | None = None, member_of: str | None = None) -> list[RunOutput]:
    """The newest ``num_runs`` runs that may serve as history (stored after the run ``after``), oldest first.

    Reads from the newest end only, widening the window while failed or superseded runs are in the way,
    so the cost follows what is read, not how long the session is.
    """
    if num_runs <= 0:
        return []

    def wanted(run: RunOutput) -> bool:
        return _usable(run, member_of) and (exclude_cell is None or run.cell_id != exclude_cell)

    recent = newest_runs(db, session_id, num_runs + 1,  # the common case: the newest runs are all usable
                         lambda runs: sum(map(wanted, runs)) >= num_runs, after=after,
                         resolve_history=False)  # their own messages are enough
    return [r for r in recent if wanted(r)][-num_runs:]


def newest_runs(db: BaseDb, session_id: str, first: int, enough: Callable[[list[RunOutput]], bool], *,
                after: str | None = None, **options: Any) -> list[RunOutput]:
    """The newest runs of a session stored after the run ``after`` (all when None), oldest first, read from the
    newest end: ``first`` runs, then a window widened ×4 until ``enough`` of them, the session's start or the run
    ``after`` is reached, so the cost follows what is read, not how long the session is. ``options`` go to
    ``list_runs``. Position, not ``created_at`` (whole seconds), says what came after."""
    window = first
    while True:
        recent, found = after_run(db.list_runs(session_id, last=window, **options), after)
        if len(recent) < window or found or enough(recent):
            return recent
        window *= 4


def newest_top_level(db: BaseDb, session_id: str, last: int | None) -> list[RunOutput]:
    """The newest ``last`` top-level runs (all when None), reading from the newest end only: ``--last 3`` on a
    session of 20,000 runs builds a handful of runs, not 20,000. Nested member and step runs are skipped."""
    if not last:
        return [r for r in db.list_runs(session_id) if not r.parent_run_id]
    recent = newest_runs(db, session_id, last + 1, lambda runs: sum(not r.parent_run_id for r in runs) >= last)
    return [r for r in recent if not r.parent_run_id][-last:]


def own_messages(run: RunOutput) -> list[Message]:
    """The exchange a run itself added: no system prompt, no copies of earlier history.

    A history message's ``origin`` is its index here, which is what a store's history reference records.
    """
    return [m for m in run.messages if not m.from_history and m.role != "system"]


def history_messages(history: list[RunOutput], *, max_messages: int | None = None,
                     max_tokens: int | None = None, count_tokens: TokenCounter = estimate_tokens) -> list[Message]:
    """Flatten history runs into messages flagged ``from_history``, newest kept when a limit bites.

    ``max_messages`` keeps exactly the newest that many, as Agno does (dropping only tool results cut off
    from their call); ``max_tokens`` keeps whole exchanges, newest first, while they fit.
    """
    exchanges = [[m.copy(from_history=True, origin=(run.run_id, i)) for i, m in enumerate(own_messages(run))]
                 for run in history]
    if max_tokens is not None:
        kept: list[list[Message]] = []
        budget = max_tokens
        for exchange in reversed(exchanges):
            cost = sum(count_tokens(m.content or "") for m in exchange)
            if cost > budget:
                break
            budget -= cost
            kept.append(exchange)
        exchanges = kept[::-1]
    messages = [m for exchange in exchanges for m in exchange]
    if max_messages is not None:
        messages = messages[-max_messages:] if max_messages > 0 else []
        while messages and messages[0].role == "tool":
            messages.pop(0)
    return messages


def build_messages(system: str | None, history: list[Message], prompt: str) -> list[Message]:
    """System prompt first, then history, then the prompt: the order every chat API expects."""
    messages: list[Message] = [Message(role="system", content=system)] if system else []
    return messages + history + [Message(role="user", content=prompt)]


def build_context(db: BaseDb, session_id: str, policy: HistoryPolicy | None, system: str | None, prompt: str,
                  *, exclude_cell: str | None = None, summary: str | None = None,
                  summary_through: str | None = None) -> list[Message]:
    """The messages of a new run; ``policy=None`` means no history at all.

    A session ``summary`` joins the system prompt and replaces the runs it covers (up to the run
    ``summary_through``).
    """
    if summary:
        system = (system + "\n\n" if system else "") + SUMMARY_HEADING + summary
    if policy is None:
        return build_messages(system, [], prompt)
    runs = policy.runs if policy.messages is None else max(policy.messages, 1)
    budget = None
    if policy.max_tokens is not None:
        budget = max(0, policy.max_tokens - policy.count_tokens(system or "") - policy.count_tokens(prompt))
    selected = history_runs(db, session_id, runs, exclude_cell=exclude_cell, after=summary_through,
                            member_of=policy.member_of)
    history = history_messages(selected,
                               max_messages=policy.messages, max_tokens=budget, count_tokens=policy.count_tokens)
    return build_messages(system, history, prompt)
