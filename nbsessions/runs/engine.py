"""The run engine of one agent (or team): plans a run's context, starts it, resumes it, and stores its outcome.

``Agent`` writes Agno's methods (``run``, ``arun``, ``continue_run``, ``regenerate``...) as delegations to its
``RunEngine``; the engine reads the agent's settings at each run (``EngineOwner``), as the magic changes them
between cells. A team's engine (``team.py``) adds its members' usage and events.
"""

from __future__ import annotations

import copy
import dataclasses
import threading
from typing import Any, Protocol

from nbsessions.db.base import BaseDb
from nbsessions.llm.base import Model
from nbsessions.llm.resolve import model_for
from nbsessions.records.liveness import current_writer
from nbsessions.records.schema import RunOutput, RunStatus, Session, new_id
from nbsessions.records.validate import check_run_input, check_state, check_text
from nbsessions.runs import variants
from nbsessions.runs.agent_options import AgentOptions
from nbsessions.runs.arguments import as_model
from nbsessions.runs.core import run_log, run_writes
from nbsessions.runs.core.context import HistoryPolicy, build_context
from nbsessions.runs.core.execution import Execution
from nbsessions.runs.core.history_tools import chat_history_tool, past_session_tools
from nbsessions.runs.core.inspect_context import SentContext, run_context
from nbsessions.runs.core.run_writes import Outcome
from nbsessions.runs.core.streams import RunStream, complete
from nbsessions.runs.core.system_message import SystemPrompt, build_system_message
from nbsessions.runs.core.tools import RunContext, Tool, runtime_state
from nbsessions.runs.resume import answered_run
from nbsessions.runs.sessions import Sessions
from nbsessions.runs.summary import SUMMARY_THROUGH_KEY, Summarizer


class EngineOwner(Protocol):
    """What the engine reads from its agent at each run."""

    db: BaseDb
    model: Model
    user_id: str | None
    session_id: str | None
    agent_id: str
    name: str | None
    kind: str
    instructions: str | list[str] | None
    session_state: dict[str, Any]
    system_prompt: SystemPrompt
    tools: dict[str, Tool]
    options: AgentOptions
    summarizer: Summarizer | None
    sessions: Sessions


class RunEngine:
    """Every run of one agent goes through here, from its plan to its stored outcome."""

    def __init__(self, agent: EngineOwner) -> None:
        self.agent = agent
        self._cancel_requested: set[str] = set()
        self._debug_runs: set[str] = set()  # runs started with run(debug_mode=True)
        self._lock = threading.Lock()

    @property
    def sessions(self) -> Sessions:
        return self.agent.sessions

    # -- starting --------------------------------------------------------------------------------
    def begin(self, input: str, *, session_state: dict[str, Any] | None, add_history_to_context: bool | None,
              num_history_runs: int | None, num_history_messages: int | None, max_history_tokens: int | None,
              debug_mode: bool | None = None, **options: Any) -> Execution:
        """Check the prompt, open the session and plan the run: what ``run`` and ``arun`` share."""
        options["model"] = as_model(options.get("model"))
        self.sessions.check_parent(options.get("parent_run_id"), options.get("session_id"))
        check_run_input(input, options, session_state, (num_history_runs, num_history_messages, max_history_tokens),
                        (options["model"] or self.agent.model).secrets())
        if options.get("metadata") is not None:
            check_state(options["metadata"], "metadata")
        history = self.history_policy(add_history_to_context, num_history_runs, num_history_messages,
                                      max_history_tokens)
        if history is not None and options.get("parent_run_id"):  # a member's: its own runs in the team (Agno)
            history = dataclasses.replace(history, member_of=self.agent.agent_id)
        run, model, state = self.plan(input, session_state=session_state, history=history, **options)
        if debug_mode:  # Agno's per-run switch: this run's messages and outcome are logged
            run_log.enable()
            with self._lock:
                self._debug_runs.add(run.run_id)
        return self.launch(run, model, state)

    def history_policy(self, enabled: bool | None, runs: int | None, messages: int | None,
                       max_tokens: int | None) -> HistoryPolicy | None:
        """Per-run settings override the agent's; None means the run sees no history."""
        options = self.agent.options
        if not (options["add_history_to_context"] if enabled is None else enabled):
            return None
        return HistoryPolicy(
            runs=options["num_history_runs"] if runs is None else runs,
            messages=options["num_history_messages"] if messages is None else messages,
            max_tokens=options["max_history_tokens"] if max_tokens is None else max_tokens,
            count_tokens=options["token_counter"],
        )

    def plan(self, prompt: str, *, session_id: str | None, user_id: str | None,
             session_state: dict[str, Any] | None, history: HistoryPolicy | None,
             instructions: str | list[str] | None, model: Model | None, cell_id: str | None,
             execution_count: int | None, tags: list[str] | None, parent_run_id: str | None,
             add_session_state_to_context: bool | None = None, metadata: dict[str, Any] | None = None,
             dry_run: bool = False) -> tuple[RunOutput, Model, dict[str, Any]]:
        """The run about to be sent, with its whole context; ``dry_run`` writes nothing (``preview_context``).

        The real run and the preview share this one path, so a preview cannot drift from what is sent.
        """
        agent, options = self.agent, self.agent.options
        user = user_id if user_id is not None else agent.user_id
        if dry_run:  # the session the run would use, without making it the agent's own or writing anything
            session = self.sessions.peek_session(session_id or agent.session_id or new_id(), user)
            session.session_state = {**session.session_state, **(session_state or {})}
        else:
            session = self._open(session_id, user, session_state)
        model = model or agent.model
        run_id, run_metadata = new_id(), {**(options["metadata"] or {}), **(metadata or {})} or None
        variables = {**({"user_id": session.user_id} if session.user_id else {}), **(run_metadata or {}),
                     **session.session_state, **runtime_state(run_id, session.session_id, session.user_id)}
        system = build_system_message(
            agent.system_prompt, instructions if instructions is not None else agent.instructions,
            session.session_state, name=agent.name, variables=variables,
            add_session_state=options["add_session_state_to_context"] if add_session_state_to_context is None
            else add_session_state_to_context)
        use_summary = options["add_session_summary_to_context"] and session.summary
        through = (session.metadata.get(SUMMARY_THROUGH_KEY) or {}).get("run_id") if use_summary else None
        run = RunOutput(
            run_id=run_id, agent_id=agent.agent_id, metadata=run_metadata,
            session_id=session.session_id, user_id=session.user_id, status=RunStatus.running, input=prompt,
            writer=current_writer(),
            messages=build_context(agent.db, session.session_id, history, system, prompt, exclude_cell=cell_id,
                                   summary=session.summary if use_summary else None, summary_through=through),
            model=model.id, provider=model.provider, model_origin=model.origin(), kind=agent.kind,
            parent_run_id=parent_run_id, agent_name=agent.name, tools_offered=list(self.run_tools()),
            cell_id=cell_id, execution_count=execution_count, tags=list(tags or []),
        )
        return run, model, session.session_state

    def _open(self, session_id: str | None, user: str | None, session_state: dict[str, Any] | None) -> Session:
        """The run's session, opened (created when new), with the run's state and the agent's metadata in it."""
        agent, db = self.agent, self.agent.db
        session = self.sessions.open_session(self.sessions.for_run(session_id), user)
        if agent.options["overwrite_db_session_state"]:  # Agno: the agent's and the run's state replace it
            session = db.update_session(session.session_id,
                                        session_state={**agent.session_state, **(session_state or {})})
        elif session_state:
            session = db.update_session(session.session_id, state_patch=session_state)
        defaults = {k: v for k, v in (agent.options["metadata"] or {}).items() if k not in session.metadata}
        if defaults:  # Agno: the agent's metadata are defaults, the session's own values win
            session = db.update_session(session.session_id, metadata_patch=defaults)
        return session

    def launch(self, run: RunOutput, model: Model, session_state: dict[str, Any]) -> Execution:
        """The run, ready to go: stored only once its stream is iterated (``run_writes.begin``)."""
        execution = self.start(run, model, session_state)
        execution.begin = lambda e: run_writes.begin(self.agent.db, e.run, self.sessions.emit,
                                                     log=self._logs(e.run.run_id))
        return execution

    def start(self, run: RunOutput, model: Model, session_state: dict[str, Any]) -> Execution:
        """The execution of ``run``: what a new run and a continued one share (a team adds to it)."""
        agent = self.agent
        state = {**session_state, **runtime_state(run.run_id, run.session_id, run.user_id)}  # Agno's run keys
        context = RunContext(session_id=run.session_id, run_id=run.run_id, user_id=run.user_id,
                             session_state=copy.deepcopy(state), metadata=run.metadata)
        return Execution(run=run, model=model, tools=self.run_tools(), context=context,
                         is_cancelled=self.is_cancelled, finish=self.finish,
                         initial_state=copy.deepcopy(state), agent_id=agent.agent_id,
                         agent_name=agent.name or "", tool_call_limit=agent.options["tool_call_limit"])

    def run_tools(self) -> dict[str, Tool]:
        """The agent's tools plus Agno's ``read_chat_history`` / ``search_session_history`` ones, bound to this
        agent's store (made per run, so an agent rebound with ``with_db`` reads its own store)."""
        options = self.agent.options
        tools = [chat_history_tool(self.sessions)] if options["read_chat_history"] else []
        if options["search_session_history"]:
            tools += past_session_tools(self.sessions, options["num_history_sessions"])
        return {**self.agent.tools, **{t.name: t for t in tools}}

    # -- continuing and asking again -------------------------------------------------------------
    def resume(self, run_response: RunOutput | str | None = None, **answers: Any) -> Execution:
        """The execution that continues a paused run; nothing runs unless every answer is there."""
        run, model, session = answered_run(self.sessions, run_response, default_model=self.model_of, **answers)
        execution = self.start(run, model, session.session_state)
        execution.resolve()
        execution.continued = True
        run.status, run.writer = RunStatus.running, current_writer()
        execution.begin = lambda e: run_writes.claim(self.agent.db, e.run, self.sessions.emit)  # once, at start
        return execution

    def regenerate(self, session_id: str | None, run_id: str | None, model: Model | None) -> Execution:
        """The same prompt again, with the same context, as a new variant of that run's slot."""
        target = variants.regenerate_target(self.sessions, session_id, run_id)
        model = model or self.model_of(target)
        run = variants.variant_run(target, model, self.agent.kind, self.agent.name, self.agent.agent_id)
        return self.launch(run, model, self.sessions.get_session_state(target.session_id))

    def model_of(self, run: RunOutput) -> Model:
        """The model that made ``run``: the agent's when it is that model, else one rebuilt from the run's
        record (continue and regenerate use it when no model is named)."""
        return model_for(run.model, run.provider, run.model_origin, self.agent.model)

    # -- looking -----------------------------------------------------------------------------------
    def sent_context(self, run_id: str) -> SentContext:
        run = self.sessions.stored_run(run_id)
        self.sessions.owned(run.session_id)
        model = self.agent.model if self.agent.model.id == run.model else None
        return run_context(run, db=self.agent.db, count_tokens=self.agent.options["token_counter"],
                           context_window=model.context_window if model is not None else None)

    def preview(self, input: str, session_id: str | None, given: dict[str, Any]) -> SentContext:
        given["model"] = as_model(given["model"])
        history = self.history_policy(given.pop("add_history_to_context"), given.pop("num_history_runs"),
                                      given.pop("num_history_messages"), given.pop("max_history_tokens"))
        run, chosen, _ = self.plan(check_text(input or "", "the prompt"), session_id=session_id, history=history,
                                   execution_count=None, tags=None, parent_run_id=None, dry_run=True, **given)
        return run_context(run, count_tokens=self.agent.options["token_counter"],
                           tools=[t.spec() for t in self.agent.tools.values()],
                           context_window=chosen.context_window, preview=True)

    # -- stopping and storing ----------------------------------------------------------------------
    def cancel(self, run_id: str) -> None:
        with self._lock:
            self._cancel_requested.add(run_id)

    def is_cancelled(self, run_id: str) -> bool:
        return run_id in self._cancel_requested

    def _logs(self, run_id: str) -> bool:
        return self.agent.options["debug_mode"] or run_id in self._debug_runs

    def finish(self, execution: Execution, status: RunStatus, error: str | None) -> None:
        """Store the outcome of a run: the one place where a run's final state is written."""
        run, agent = execution.run, self.agent
        with self._lock:
            self._cancel_requested.discard(run.run_id)
        run.status, run.error = status, error
        if not agent.options["store_history_messages"] and status != RunStatus.paused:  # Agno: sent, not stored
            run.messages = [m for m in run.messages if not m.from_history]
        execution.record_usage()
        self.add_nested_usage(run)
        outcome = run_writes.store_outcome(agent.db, run, execution.state_changes(), execution.state_deletions())
        if outcome is Outcome.deleted:
            return  # its session was deleted meanwhile: nothing of it is stored
        if self._logs(run.run_id):
            run_log.log_outcome(run)
            self._debug_runs.discard(run.run_id)
        stored = outcome is Outcome.stored and status == RunStatus.completed  # kept: the store is not answering
        if stored and run.variant_of:
            variants.choose_variant(self.sessions, run.run_id)
        elif stored and run.cell_id:
            self.sessions.supersede_cell(run)
        self.sessions.emit("run", run.session_id)
        if stored and agent.summarizer is not None:
            agent.summarizer.after_run(run.session_id)  # after the reply is stored

    def add_nested_usage(self, run: RunOutput) -> None:
        """Runs that start other runs (a team's) count their tokens and cost here; a plain agent has none."""


def deliver(execution: Execution, stream: bool, stream_events: bool = False,
            yield_run_output: bool = False) -> RunOutput | RunStream:
    """A RunStream of the execution's events, or — not streaming — the run once it has ended."""
    if stream:
        return RunStream(execution, stream_events=stream_events, yield_run_output=yield_run_output)
    return complete(execution)

