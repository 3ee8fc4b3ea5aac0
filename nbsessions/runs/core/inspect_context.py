"""What a run sent to its model, message by message: ``%agent context``, the panel's Sent view, exports.

Built from the run's own message list (the list the model was given, with ``from_history`` flags and, in
``origin``, the run each history message came from), never re-derived by the history rules, so what is shown is
what was sent. A preview is the same list made by the Agent's run path without sending or storing anything.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from nbsessions.db.base import BaseDb
from nbsessions.llm.base import estimate_tokens
from nbsessions.llm.prices import context_window_of
from nbsessions.records.schema import Message, RunOutput
from nbsessions.runs.core.context import SUMMARY_HEADING, TokenCounter, own_messages

LEGACY_ESTIMATING_PROVIDERS = frozenset({"offline", "function"})
"""Runs that the offline and function models stored before their usage was flagged ``estimated`` say so only by
their provider; newer runs carry the flag (``Metrics.tokens_estimated``), as every model's do."""


@dataclass(frozen=True)
class SentMessage:
    """One message as sent; ``part`` says where it came from: system, summary, history, prompt, tool call,
    tool result."""

    part: str
    role: str
    content: str
    tokens: int
    from_run_id: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None


@dataclass
class SentContext:
    """The context of one run (``run_id``) or of the next one (a preview: ``run_id`` is None)."""

    session_id: str
    run_id: str | None
    model: str | None
    provider: str | None
    messages: list[SentMessage]
    tools: list[dict[str, Any]] = field(default_factory=list)  # full specs (preview) or {"name": ...} (stored)
    tokens_estimated: bool = True  # per-message counts come from an estimate, not the model's tokenizer
    context_window: int | None = None
    reported_input_tokens: int | None = None  # what the provider reported for the run, over all its requests
    reported_estimated: bool = True
    requests: int = 1  # model requests the run made (1 + tool rounds)

    @property
    def is_preview(self) -> bool:
        return self.run_id is None

    @property
    def total_tokens(self) -> int:
        """Tokens of the first request: everything but the later tool rounds."""
        return sum(m.tokens for m in self.messages if m.part not in ("tool call", "tool result"))

    @property
    def window_share(self) -> float | None:
        return self.total_tokens / self.context_window if self.context_window else None

    def to_messages(self) -> list[Message]:
        """The messages as the model contract takes them (system and summary joined back into one)."""
        out: list[Message] = []
        for m in self.messages:
            if m.part == "summary" and out and out[-1].role == "system":
                out[-1].content = (out[-1].content or "") + "\n\n" + SUMMARY_HEADING + m.content
                continue
            content = SUMMARY_HEADING + m.content if m.part == "summary" else m.content
            out.append(Message(role=m.role, content=content if content or m.role != "assistant" else None,
                               tool_calls=m.tool_calls, tool_call_id=m.tool_call_id,
                               from_history=m.part == "history"))
        return out


def sent_messages(run: RunOutput) -> list[Message]:
    """The messages of a run that went to the model: all but the replies that came back at the end."""
    messages = list(run.messages)
    while messages and messages[-1].role == "assistant" and not messages[-1].from_history:
        messages.pop()
    return messages


def _split_summary(system: str) -> tuple[str, str | None]:
    if system.startswith(SUMMARY_HEADING):
        return "", system[len(SUMMARY_HEADING):]
    head, found, summary = system.partition("\n\n" + SUMMARY_HEADING)
    return (head, summary) if found else (system, None)


def _count(m: Message, count_tokens: TokenCounter) -> int:
    text = m.content or ""
    if m.tool_calls:
        text += json.dumps(m.tool_calls, ensure_ascii=False)
    return count_tokens(text) if text else 0


def _guess_sources(db: BaseDb, run: RunOutput) -> dict[tuple[str, str], str]:
    """Runs stored before history was kept as references (format 1) carry no ``origin``: match their history
    messages to earlier runs' own messages."""
    sources: dict[tuple[str, str], str] = {}
    for earlier in db.list_runs(run.session_id):
        if earlier.run_id == run.run_id:
            break
        for m in own_messages(earlier):
            sources[(m.role, m.content or "")] = earlier.run_id
    return sources


def _parts(messages: list[Message], count_tokens: TokenCounter,
           sources: dict[tuple[str, str], str]) -> list[SentMessage]:
    out: list[SentMessage] = []
    prompt_seen = False
    for m in messages:
        if m.role == "system" and not m.from_history:
            system, summary = _split_summary(m.content or "")
            if system:
                out.append(SentMessage("system", "system", system, count_tokens(system)))
            if summary is not None:
                out.append(SentMessage("summary", "system", summary, count_tokens(SUMMARY_HEADING + summary)))
            continue
        if m.from_history:
            part = "history"
        elif m.role == "user" and not prompt_seen:
            part, prompt_seen = "prompt", True
        else:
            part = "tool result" if m.role == "tool" else "tool call"
        source = m.origin[0] if m.origin else (sources.get((m.role, m.content or "")) if m.from_history else None)
        out.append(SentMessage(part, m.role, m.content or "", _count(m, count_tokens), source,
                               m.tool_calls, m.tool_call_id))
    return out


def _reported_estimated(run: RunOutput) -> bool:
    """Whether the usage the run reported is an estimate: its recorded flag (an old offline or function run,
    stored without it, by its provider)."""
    return run.metrics.tokens_estimated or (run.provider or "") in LEGACY_ESTIMATING_PROVIDERS


def run_context(run: RunOutput, *, db: BaseDb | None = None, count_tokens: TokenCounter = estimate_tokens,
                tools: list[dict[str, Any]] | None = None, context_window: int | None = None,
                preview: bool = False) -> SentContext:
    """The context ``run`` sent (or, with ``preview``, is about to send).

    ``tools`` are the specs offered when known (a preview); a stored run keeps only the tools' names.
    """
    messages = run.messages if preview else sent_messages(run)
    needs_guess = db is not None and any(m.from_history and not m.origin for m in messages)
    sources = _guess_sources(db, run) if needs_guess and db is not None else {}
    rounds = 1 + sum(1 for m in messages if m.role == "assistant" and m.tool_calls and not m.from_history)
    window = context_window or (context_window_of(run.model, run.provider) if run.model and run.provider
                                else None)
    reported = None if preview or not run.metrics.input_tokens else run.metrics.input_tokens
    return SentContext(
        session_id=run.session_id, run_id=None if preview else run.run_id, model=run.model, provider=run.provider,
        messages=_parts(messages, count_tokens, sources),
        tools=tools if tools is not None else [{"name": name} for name in run.tools_offered],
        tokens_estimated=count_tokens is estimate_tokens, context_window=window,
        reported_input_tokens=reported, reported_estimated=_reported_estimated(run),
        requests=rounds,
    )
