"""The Agent: runs prompts inside sessions and records every run, whatever happens to it.

It knows nothing of IPython or widgets; the magic and the panel are thin layers over this API.
"""

from __future__ import annotations

import copy
import dataclasses
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from nbsessions import run_log, run_writes
from nbsessions.arguments import DbLike, ModelLike, as_db, as_model
from nbsessions.async_api import AsyncRunsMixin
from nbsessions.context import HistoryPolicy, TokenCounter, build_context
from nbsessions.db.base import BaseDb
from nbsessions.execution import Execution
from nbsessions.history_tools import chat_history_tool, past_session_tools
from nbsessions.inspect_context import SentContext, run_context
from nbsessions.liveness import current_writer
from nbsessions.llm.base import Model, estimate_tokens
from nbsessions.llm.offline import OfflineModel
from nbsessions.printing import PrintingMixin
from nbsessions.resume import resume
from nbsessions.run_options import ContextOptions, ContinueOptions, RunOptions, given_options, spelled_out
from nbsessions.schema import RunOutput, RunStatus, new_id
from nbsessions.sessions import SessionsMixin
from nbsessions.streams import RunStream, complete
from nbsessions.summary import SUMMARY_THROUGH_KEY, SessionSummaryManager, Summarizer
from nbsessions.system_message import SystemPrompt, build_system_message, check_instructions
from nbsessions.tools import RunContext, Tool, make_tool, runtime_state, update_session_state
from nbsessions.unsupported import refuse_unsupported
from nbsessions.validate import check_count, check_run_input, check_state, check_text, check_user_id
from nbsessions.variants import VariantsMixin

if TYPE_CHECKING:
    from typing_extensions import Unpack


class Agent(PrintingMixin, VariantsMixin, AsyncRunsMixin, SessionsMixin):
    """Runs prompts in sessions stored in ``db`` (in memory when none is given).

    History enters the context only when asked (``add_history_to_context``), as in Agno's Sessions.
    """

    def __init__(
        self,
        model: ModelLike | None = None,
        db: DbLike | None = None,
        *,
        user_id: str | None = None,
        session_id: str | None = None,
        add_history_to_context: bool = False,
        num_history_runs: int = 3,
        num_history_messages: int | None = None,
        max_history_tokens: int | None = None,
        token_counter: TokenCounter = estimate_tokens,
        enable_session_summaries: bool = False,
        session_summary_every: int | None = None,
        add_session_summary_to_context: bool | None = None,
        summary_model: Model | None = None,
        session_summary_manager: SessionSummaryManager | None = None,
        read_chat_history: bool = False,
        search_session_history: bool = False,
        num_history_sessions: int | None = None,
        search_past_sessions: bool = False,
        num_past_sessions_to_search: int | None = None,
        overwrite_db_session_state: bool = False,
        store_history_messages: bool = True,
        cache_session: bool = False,
        tools: list[Callable[..., Any]] | None = None,
        enable_agentic_state: bool = False,
        add_session_state_to_context: bool = False,
        session_state: dict[str, Any] | None = None,
        instructions: str | list[str] | None = None,
        name: str | None = None,
        agent_id: str | None = None,
        id: str | None = None,
        description: str | None = None,
        role: str | None = None,
        expected_output: str | None = None,
        additional_context: str | None = None,
        markdown: bool = False,
        add_datetime_to_context: bool = False,
        datetime_format: str | None = None,
        timezone_identifier: str | None = None,
        add_name_to_context: bool = False,
        use_instruction_tags: bool = False,
        system_message: str | None = None,
        tool_call_limit: int | None = None,
        metadata: dict[str, Any] | None = None,
        debug_mode: bool = False,
        telemetry: bool = False,  # Agno's switch; nbsessions sends no telemetry either way
        **unsupported: Any,
    ) -> None:
        """Agno's keywords where Agno has them (``id`` is ``agent_id``; ``search_past_sessions`` and
        ``num_past_sessions_to_search`` are Agno 3's names for ``search_session_history`` /
        ``num_history_sessions``; ``cache_session`` is accepted: every read goes to the store anyway).
        ``description`` ... ``system_message`` build the system message as Agno's do (``system_message.py``);
        ``metadata`` is merged into the session's metadata (the session's own values win, as in Agno)."""
        refuse_unsupported(type(self).__name__, unsupported)
        model, summary_model = as_model(model), as_model(summary_model, "summary_model")
        check_instructions(instructions)
        self.system_prompt = SystemPrompt(description, role, expected_output, additional_context, markdown,
                                          add_datetime_to_context, datetime_format, timezone_identifier,
                                          add_name_to_context, use_instruction_tags, system_message)
        check_count(tool_call_limit, "tool_call_limit")
        check_count(session_summary_every, "session_summary_every", least=1)
        if metadata is not None:
            check_state(metadata, "metadata")
        self.tool_call_limit, self.metadata, self.debug_mode = tool_call_limit, metadata, debug_mode
        if debug_mode:
            run_log.enable()
        if session_state is not None:
            check_state(session_state, "session_state")
        check_user_id(user_id)
        check_count(num_history_sessions if num_history_sessions is not None else num_past_sessions_to_search,
                    "num_history_sessions")
        if name is not None:
            check_text(name, "name")
        for what, count in (("num_history_runs", num_history_runs), ("num_history_messages", num_history_messages),
                            ("max_history_tokens", max_history_tokens)):
            check_count(count, what)
        self.model = model or OfflineModel()
        self.db = as_db(db)  # last: a bad argument above leaves no file behind
        self.user_id = user_id
        self.session_id = session_id
        self.add_history_to_context = add_history_to_context
        self.num_history_runs = num_history_runs
        self.num_history_messages = num_history_messages
        self.max_history_tokens = max_history_tokens
        self.token_counter = token_counter
        manager = session_summary_manager or SessionSummaryManager()
        self.add_session_summary_to_context = (enable_session_summaries or session_summary_manager is not None) \
            if add_session_summary_to_context is None else add_session_summary_to_context
        self.read_chat_history = read_chat_history
        self.search_session_history = search_session_history or search_past_sessions
        self.num_history_sessions = num_history_sessions if num_history_sessions is not None \
            else num_past_sessions_to_search
        self.overwrite_db_session_state = overwrite_db_session_state
        self.store_history_messages = store_history_messages
        self.cache_session = cache_session
        self.add_session_state_to_context = add_session_state_to_context
        functions = list(tools or []) + ([update_session_state] if enable_agentic_state else [])
        self.tools: dict[str, Tool] = {t.name: t for t in map(make_tool, functions)}
        every = 1 if session_summary_every is None else session_summary_every
        self.summarizer = Summarizer(  # Agno: after every run, before it returns; every N runs in the background
            self.db, manager.model or summary_model or self.model, every, manager.session_summary_prompt,
            background=session_summary_every is not None, manager=manager,
        ) if enable_session_summaries else None
        self.session_state = dict(session_state or {})
        self.instructions = instructions
        self.name = name
        self.agent_id = agent_id or id or new_id()
        self._cancel_requested: set[str] = set()
        self._debug_runs: set[str] = set()  # runs started with run(debug_mode=True)
        self._lock = threading.Lock()
        self._listeners = []

    def __repr__(self) -> str:
        return f"Agent(model={self.model!r}, db={self.db!r})"

    # -- running -------------------------------------------------------------------------------
    @spelled_out(RunOptions)
    def run(self, input: str, *, stream: bool = False, stream_events: bool = False, yield_run_output: bool = False,
            **options: Unpack[RunOptions]) -> RunOutput | RunStream:
        """Run one prompt; returns the RunOutput, or a RunStream of events when ``stream=True``.

        The stream yields ``RunContentEvent``s (and the run's milestones with ``stream_events=True``; the final
        ``RunOutput`` last with ``yield_run_output=True``). A provider failure stores the run as ``error`` and
        raises ``ModelError`` carrying it. The other keywords (``session_id``, ``user_id``, ``session_state``,
        the history settings...) are ``RunOptions``: each overrides the agent's own for this run only.
        """
        execution = self._begin(input, **given_options(RunOptions, options, f"{type(self).__name__}.run"))
        return self._deliver(execution, stream, stream_events, yield_run_output)

    def _begin(self, input: str, *, session_state: dict[str, Any] | None, add_history_to_context: bool | None,
               num_history_runs: int | None, num_history_messages: int | None, max_history_tokens: int | None,
               **options: Any) -> Execution:
        """Check the prompt, open the session and store the new run: what ``run`` and ``arun`` share."""
        options["model"] = as_model(options.get("model"))
        self._check_parent(options.get("parent_run_id"), options.get("session_id"))
        check_run_input(input, options, session_state, (num_history_runs, num_history_messages, max_history_tokens),
                        (options["model"] or self.model).secrets())
        if options.get("metadata") is not None:
            check_state(options["metadata"], "metadata")
        history = self._history_policy(add_history_to_context, num_history_runs, num_history_messages,
                                       max_history_tokens)
        if history is not None and options.get("parent_run_id"):  # a member's: its own runs in the team (Agno)
            history = dataclasses.replace(history, member_of=self.agent_id)
        return self._prepare(input, session_state=session_state, history=history, **options)

    def get_run_context(self, run_id: str) -> SentContext:
        """Exactly what a stored run sent: system prompt, summary, history (each message with the run it came
        from), prompt, tools offered, tokens per message against the model's context window when known."""
        run = self._run(run_id)
        self._session(run.session_id)
        model = self.model if self.model.id == run.model else None
        return run_context(run, db=self.db, count_tokens=self.token_counter,
                           context_window=model.context_window if model is not None else None)

    @spelled_out(ContextOptions)
    def preview_context(self, input: str, session_id: str | None = None,
                        **options: Unpack[ContextOptions]) -> SentContext:
        """What ``run`` with the same arguments would send now — built by the run's own code, sent nowhere,
        stored nowhere (a dry run for prompt testing)."""
        given = given_options(ContextOptions, options, f"{type(self).__name__}.preview_context")
        given["model"] = as_model(given["model"])
        history = self._history_policy(given.pop("add_history_to_context"), given.pop("num_history_runs"),
                                       given.pop("num_history_messages"), given.pop("max_history_tokens"))
        run, chosen, _ = self._plan(check_text(input or "", "the prompt"), session_id=session_id, history=history,
                                    execution_count=None, tags=None, parent_run_id=None, dry_run=True, **given)
        return run_context(run, count_tokens=self.token_counter, tools=[t.spec() for t in self.tools.values()],
                           context_window=chosen.context_window, preview=True)

    def cancel_run(self, run_id: str) -> None:
        """Ask a running run (in another thread) to stop; it is stored as cancelled with its partial reply."""
        with self._lock:
            self._cancel_requested.add(run_id)

    def with_db(self, db: BaseDb) -> Agent:
        """The same agent on another store (how workflows and teams run agents inside their own session)."""
        clone = copy.copy(self)
        clone.db = db
        clone._listeners = []
        clone._relays = []
        clone._cancel_requested, clone._debug_runs = set(), set()
        clone._lock = threading.Lock()
        if self.summarizer is not None:
            clone.summarizer = self.summarizer.on(db)
        return clone

    @property
    def kind(self) -> str:
        """What ``RunOutput.kind`` says of this runner's runs."""
        return "agent"

    def _history_policy(self, enabled: bool | None, runs: int | None, messages: int | None,
                        max_tokens: int | None) -> HistoryPolicy | None:
        """Per-run settings override the agent's; None means the run sees no history."""
        if not (self.add_history_to_context if enabled is None else enabled):
            return None
        return HistoryPolicy(
            runs=self.num_history_runs if runs is None else runs,
            messages=self.num_history_messages if messages is None else messages,
            max_tokens=self.max_history_tokens if max_tokens is None else max_tokens,
            count_tokens=self.token_counter,
        )

    def _prepare(self, prompt: str, *, debug_mode: bool | None = None, **options: Any) -> Execution:
        run, model, state = self._plan(prompt, **options)
        if debug_mode:  # Agno's per-run switch: this run's messages and outcome are logged
            run_log.enable()
            with self._lock:
                self._debug_runs.add(run.run_id)
        return self._launch(run, model, state)

    def _plan(self, prompt: str, *, session_id, user_id, session_state, history, instructions, model,
              cell_id, execution_count, tags, parent_run_id, add_session_state_to_context=None, metadata=None,
              dry_run: bool = False) -> tuple[RunOutput, Model, dict[str, Any]]:
        """The run about to be sent, with its whole context; ``dry_run`` writes nothing (``preview_context``).

        The real run and the preview share this one path, so a preview cannot drift from what is sent.
        """
        user = user_id if user_id is not None else self.user_id
        if dry_run:  # the session the run would use, without making it the agent's own or writing anything
            session = self._peek_session(session_id or self.session_id or new_id(), user)
            session.session_state = {**session.session_state, **(session_state or {})}
        else:
            session = self._open_session(self._session_for_run(session_id), user)
            if self.overwrite_db_session_state:  # Agno: the agent's and the run's state replace the stored one
                replaced = {**self.session_state, **(session_state or {})}
                session = self.db.update_session(session.session_id, session_state=replaced)
            elif session_state:
                session = self.db.update_session(session.session_id, state_patch=session_state)
            defaults = {k: v for k, v in (self.metadata or {}).items() if k not in session.metadata}
            if defaults:  # Agno: the agent's metadata are defaults, the session's own values win
                session = self.db.update_session(session.session_id, metadata_patch=defaults)
        model = model or self.model
        run_id, run_metadata = new_id(), {**(self.metadata or {}), **(metadata or {})} or None
        variables = {**({"user_id": session.user_id} if session.user_id else {}), **(run_metadata or {}),
                     **session.session_state, **runtime_state(run_id, session.session_id, session.user_id)}
        system = build_system_message(
            self.system_prompt, instructions if instructions is not None else self.instructions,
            session.session_state, name=self.name, variables=variables,
            add_session_state=self.add_session_state_to_context if add_session_state_to_context is None
            else add_session_state_to_context)
        use_summary = self.add_session_summary_to_context and session.summary
        through = (session.metadata.get(SUMMARY_THROUGH_KEY) or {}).get("run_id") if use_summary else None
        run = RunOutput(
            run_id=run_id, agent_id=self.agent_id, metadata=run_metadata,
            session_id=session.session_id, user_id=session.user_id, status=RunStatus.running, input=prompt,
            writer=current_writer(),
            messages=build_context(self.db, session.session_id, history, system, prompt, exclude_cell=cell_id,
                                   summary=session.summary if use_summary else None, summary_through=through),
            model=model.id, provider=model.provider, model_origin=model.origin(), kind=self.kind,
            parent_run_id=parent_run_id, agent_name=self.name, tools_offered=list(self._run_tools()),
            cell_id=cell_id, execution_count=execution_count, tags=list(tags or []),
        )
        return run, model, session.session_state

    def _launch(self, run: RunOutput, model: Model, session_state: dict[str, Any]) -> Execution:
        """The run, ready to go: stored only once its stream is iterated (``run_writes.begin``)."""
        execution = self._start(run, model, session_state)
        execution.begin = lambda e: run_writes.begin(self.db, e.run, self._emit,
                                                     log=self.debug_mode or e.run.run_id in self._debug_runs)
        return execution

    def _start(self, run: RunOutput, model: Model, session_state: dict[str, Any]) -> Execution:
        state = {**session_state, **runtime_state(run.run_id, run.session_id, run.user_id)}  # Agno's run keys
        context = RunContext(session_id=run.session_id, run_id=run.run_id, user_id=run.user_id,
                             session_state=copy.deepcopy(state), metadata=run.metadata)
        return Execution(run=run, model=model, tools=self._run_tools(), context=context,
                         is_cancelled=self._is_cancelled, finish=self._finish,
                         initial_state=copy.deepcopy(state), agent_id=self.agent_id,
                         agent_name=self.name or "", tool_call_limit=self.tool_call_limit)

    def _run_tools(self) -> dict[str, Tool]:
        """The agent's tools plus Agno's ``read_chat_history`` / ``search_session_history`` ones, bound to this
        agent's store (made per run, so an agent rebound with ``with_db`` reads its own store)."""
        tools = [chat_history_tool(self)] if self.read_chat_history else []
        if self.search_session_history:
            tools += past_session_tools(self, self.num_history_sessions)
        return {**self.tools, **{t.name: t for t in tools}}

    def _is_cancelled(self, run_id: str) -> bool:
        return run_id in self._cancel_requested

    def _finish(self, execution: Execution, status: RunStatus, error: str | None) -> None:
        """Store the outcome of a run: the one place where a run's final state is written."""
        run = execution.run
        with self._lock:
            self._cancel_requested.discard(run.run_id)
        run.status = status
        run.error = error
        if not self.store_history_messages and status != RunStatus.paused:  # Agno: sent, not stored again
            run.messages = [m for m in run.messages if not m.from_history]
        execution.record_usage()
        self._add_nested_usage(run)
        if not run_writes.store_outcome(self.db, run, execution.state_changes(), execution.state_deletions()):
            return  # its session was deleted meanwhile: nothing of it is stored
        if self.debug_mode or run.run_id in self._debug_runs:
            run_log.log_outcome(run)
            self._debug_runs.discard(run.run_id)
        if status == RunStatus.completed and run.variant_of:
            self.choose_variant(run.run_id)
        elif status == RunStatus.completed and run.cell_id:
            self._supersede_cell(run)
        self._emit("run", run.session_id)
        if status == RunStatus.completed and self.summarizer is not None:
            self.summarizer.after_run(run.session_id)  # after the reply is stored

    def _add_nested_usage(self, run: RunOutput) -> None:
        """Runs that start other runs (a team's) count their tokens and cost here; a plain agent has none."""

    @spelled_out(ContinueOptions)
    def continue_run(self, run_response: RunOutput | str | None = None, *, stream: bool | None = None,
                     stream_events: bool | None = None, yield_run_output: bool = False,
                     **answers: Unpack[ContinueOptions]) -> RunOutput | RunStream:
        """Resume a paused run with the human's answers, in the same session, with the same history and user.

        Agno's two shapes: ``continue_run(run_response)`` once its requirements are answered (``confirm()``,
        ``provide_user_input``...), or ``continue_run(run_id=..., requirements=[...])`` — from another process
        too, as requirements survive JSON. nbsessions' shortcuts: ``approve`` answers confirmations,
        ``user_input`` fills requested fields (per tool call id when several tools wait), ``results`` maps tool call
        ids of externally executed tools to their results. If any answer is missing nothing runs and the run
        stays paused. The run continues on ``model``; by default on the model that made it (its stored id and
        endpoint, and the key from the environment as before), which is the agent's own model when it is that.
        """
        given = given_options(ContinueOptions, answers, f"{type(self).__name__}.continue_run")
        execution = self._resume(run_response, **given)
        return self._deliver(execution, bool(stream), bool(stream_events), yield_run_output)

    def _resume(self, run_response: RunOutput | str | None = None, **answers: Any) -> Execution:
        return resume(self, run_response, **answers)

    def _deliver(self, execution: Execution, stream: bool, stream_events: bool = False,
                 yield_run_output: bool = False) -> RunOutput | RunStream:
        if stream:
            return RunStream(execution, stream_events=stream_events, yield_run_output=yield_run_output)
        return complete(execution)
