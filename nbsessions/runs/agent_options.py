"""Agno's ``Agent`` keywords beyond the model, the store and the agent's identity, declared once.

``AgentOptions`` is a ``TypedDict``: type checkers read ``Agent(**options: Unpack[AgentOptions])`` (PEP 692),
and ``spelled_out`` writes each keyword with its default into ``Agent.__init__``'s runtime signature, so
``help(Agent)`` and Jupyter's Shift-Tab list them. ``agent_options`` checks every value, fills the defaults and
resolves Agno's alternative spellings, once, when the agent is built; the agent keeps the result as
``agent.options`` (the magic's ``%agent history`` changes it there).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypedDict

from nbsessions.db.base import BaseDb
from nbsessions.llm.base import Model, estimate_tokens
from nbsessions.records.validate import check_count, check_state
from nbsessions.runs.arguments import as_model
from nbsessions.runs.core.context import TokenCounter
from nbsessions.runs.core.system_message import SystemPrompt
from nbsessions.runs.summary import SessionSummaryManager, Summarizer
from nbsessions.runs.unsupported import refuse_unsupported


class AgentOptions(TypedDict, total=False):
    """How an agent builds each run's context and what it stores (Agno's names; nbsessions' additions:
    ``max_history_tokens``, ``token_counter``)."""

    add_history_to_context: bool
    num_history_runs: int
    num_history_messages: int | None
    max_history_tokens: int | None
    token_counter: TokenCounter
    enable_session_summaries: bool
    session_summary_every: int | None
    add_session_summary_to_context: bool | None
    summary_model: Model | str | None
    session_summary_manager: SessionSummaryManager | None
    read_chat_history: bool
    search_session_history: bool
    num_history_sessions: int | None
    search_past_sessions: bool
    num_past_sessions_to_search: int | None
    overwrite_db_session_state: bool
    store_history_messages: bool
    cache_session: bool
    enable_agentic_state: bool
    add_session_state_to_context: bool
    description: str | None
    role: str | None
    expected_output: str | None
    additional_context: str | None
    markdown: bool
    add_datetime_to_context: bool
    datetime_format: str | None
    timezone_identifier: str | None
    add_name_to_context: bool
    use_instruction_tags: bool
    system_message: str | None
    tool_call_limit: int | None
    metadata: dict[str, Any] | None
    debug_mode: bool
    telemetry: bool


AGENT_DEFAULTS: AgentOptions = {
    "add_history_to_context": False, "num_history_runs": 3, "num_history_messages": None,
    "max_history_tokens": None, "token_counter": estimate_tokens, "enable_session_summaries": False,
    "session_summary_every": None, "add_session_summary_to_context": None, "summary_model": None,
    "session_summary_manager": None, "read_chat_history": False, "search_session_history": False,
    "num_history_sessions": None, "search_past_sessions": False, "num_past_sessions_to_search": None,
    "overwrite_db_session_state": False, "store_history_messages": True, "cache_session": False,
    "enable_agentic_state": False, "add_session_state_to_context": False, "description": None, "role": None,
    "expected_output": None, "additional_context": None, "markdown": False, "add_datetime_to_context": False,
    "datetime_format": None, "timezone_identifier": None, "add_name_to_context": False,
    "use_instruction_tags": False, "system_message": None, "tool_call_limit": None, "metadata": None,
    "debug_mode": False, "telemetry": False,  # Agno's switch; nbsessions sends no telemetry either way
}
"""Agno's defaults. ``cache_session`` is accepted: every read goes to the store anyway."""

_SYSTEM_PROMPT = ("description", "role", "expected_output", "additional_context", "markdown",
                  "add_datetime_to_context", "datetime_format", "timezone_identifier", "add_name_to_context",
                  "use_instruction_tags", "system_message")


def agent_options(given: Mapping[str, Any], owner: str) -> AgentOptions:
    """Every option, checked, with Agno's defaults where not given; an unknown or unsupported keyword is one
    ``TypeError`` naming it. ``search_past_sessions`` / ``num_past_sessions_to_search`` (Agno 3's names) become
    ``search_session_history`` / ``num_history_sessions``; a summary manager turns summaries into the context
    unless ``add_session_summary_to_context`` says otherwise (as in Agno)."""
    refuse_unsupported(owner, {k: v for k, v in given.items() if k not in AGENT_DEFAULTS})
    options: AgentOptions = {**AGENT_DEFAULTS, **given}  # type: ignore[typeddict-item]
    for name in ("tool_call_limit", "num_history_runs", "num_history_messages", "max_history_tokens"):
        check_count(options[name], name)  # type: ignore[literal-required]
    check_count(options["session_summary_every"], "session_summary_every", least=1)
    if options["metadata"] is not None:
        check_state(options["metadata"], "metadata")
    options["summary_model"] = as_model(options["summary_model"], "summary_model")
    options["search_session_history"] = options["search_session_history"] or options["search_past_sessions"]
    if options["num_history_sessions"] is None:
        options["num_history_sessions"] = options["num_past_sessions_to_search"]
    check_count(options["num_history_sessions"], "num_history_sessions")
    if options["add_session_summary_to_context"] is None:
        options["add_session_summary_to_context"] = options["enable_session_summaries"] \
            or options["session_summary_manager"] is not None
    return options


def system_prompt_of(options: AgentOptions) -> SystemPrompt:
    """The options that shape the system message besides the instructions (checked by ``SystemPrompt``)."""
    return SystemPrompt(**{name: options[name] for name in _SYSTEM_PROMPT})  # type: ignore[literal-required]


def summarizer_of(options: AgentOptions, db: BaseDb, model: Model) -> Summarizer | None:
    """Agno's summaries: after every run, before it returns; every N runs in the background."""
    if not options["enable_session_summaries"]:
        return None
    manager = options["session_summary_manager"] or SessionSummaryManager()
    every = options["session_summary_every"]
    return Summarizer(db, manager.model or options["summary_model"] or model, 1 if every is None else every,
                      manager.session_summary_prompt, background=every is not None, manager=manager)
