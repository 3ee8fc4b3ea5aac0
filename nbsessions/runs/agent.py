"""The Agent: runs prompts inside sessions and records every run, whatever happens to it.

One class, written out: each of Agno's methods is a short delegation — session methods to ``Sessions`` (through
``SessionsApi``), runs to the ``RunEngine``. It knows nothing of IPython or widgets; the magic and the panel are
thin layers over this API.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from nbsessions.db.base import BaseDb
from nbsessions.llm.base import Model
from nbsessions.llm.offline import OfflineModel
from nbsessions.records.schema import RunOutput, new_id
from nbsessions.records.validate import check_state, check_text, check_user_id
from nbsessions.runs import variants as variant_slots
from nbsessions.runs.agent_options import AGENT_DEFAULTS, AgentOptions, agent_options, summarizer_of, system_prompt_of
from nbsessions.runs.arguments import DbLike, ModelLike, as_db, as_model
from nbsessions.runs.core import run_log, run_writes
from nbsessions.runs.core.inspect_context import SentContext
from nbsessions.runs.core.interrupts import caller_task
from nbsessions.runs.core.streams import AsyncRunStream, RunStream, acomplete
from nbsessions.runs.core.system_message import check_instructions
from nbsessions.runs.core.tools import Tool, make_tool, update_session_state
from nbsessions.runs.engine import RunEngine, deliver
from nbsessions.runs.printing import aprint_reply, print_reply
from nbsessions.runs.run_options import ContextOptions, ContinueOptions, RunOptions, given_options, spelled_out
from nbsessions.runs.session_api import SessionsApi
from nbsessions.runs.sessions import Sessions

if TYPE_CHECKING:
    from typing_extensions import Unpack


class Agent(SessionsApi):
    """Runs prompts in sessions stored in ``db`` (in memory when none is given).

    History enters the context only when asked (``add_history_to_context``), as in Agno's Sessions.
    """

    @spelled_out(AgentOptions, defaults=AGENT_DEFAULTS)
    def __init__(self, model: ModelLike | None = None, db: DbLike | None = None, *, user_id: str | None = None,
                 session_id: str | None = None, session_state: dict[str, Any] | None = None,
                 tools: list[Callable[..., Any]] | None = None, instructions: str | list[str] | None = None,
                 name: str | None = None, id: str | None = None, agent_id: str | None = None,
                 **options: Unpack[AgentOptions]) -> None:
        """Agno's keywords (``id`` is ``agent_id``); the others are ``AgentOptions``, kept as ``agent.options``.

        ``description`` ... ``system_message`` build the system message as Agno's do (``system_message.py``);
        ``metadata`` is merged into the session's metadata (the session's own values win, as in Agno).
        """
        self.options = agent_options(options, type(self).__name__)
        self.model = as_model(model) or OfflineModel()
        check_instructions(instructions)
        self.system_prompt = system_prompt_of(self.options)
        if session_state is not None:
            check_state(session_state, "session_state")
        check_user_id(user_id)
        if name is not None:
            check_text(name, "name")
        functions = list(tools or []) + ([update_session_state] if self.options["enable_agentic_state"] else [])
        self.tools: dict[str, Tool] = {t.name: t for t in map(make_tool, functions)}
        self.db = as_db(db)  # last: a bad argument above leaves no file behind
        run_writes.replay_kept(self.db)  # what an earlier process could not store in it, stored now
        self.user_id, self.session_id, self.session_state = user_id, session_id, dict(session_state or {})
        self.instructions, self.name, self.agent_id = instructions, name, agent_id or id or new_id()
        self.summarizer = summarizer_of(self.options, self.db, self.model)
        self.sessions = Sessions(self)
        self.engine = RunEngine(self)
        if self.options["debug_mode"]:
            run_log.enable()

    def __repr__(self) -> str:
        return f"Agent(model={self.model!r}, db={self.db!r})"

    @property
    def kind(self) -> str:
        """What ``RunOutput.kind`` says of this runner's runs."""
        return "agent"

    @property
    def debug_mode(self) -> bool:
        """Agno's switch: every run's messages and outcome go to the ``nbsessions`` debug log."""
        return self.options["debug_mode"]

    @property
    def metadata(self) -> dict[str, Any] | None:
        """Agno's agent metadata: defaults for each session's metadata, and every run's."""
        return self.options["metadata"]

    def with_db(self, db: BaseDb) -> Agent:
        """The same agent on another store (how workflows and teams run agents inside their own session)."""
        clone = copy.copy(self)
        clone.db = db
        run_writes.replay_kept(db)
        clone.sessions, clone.engine = Sessions(clone), type(self.engine)(clone)
        if self.summarizer is not None:
            clone.summarizer = self.summarizer.on(db)
        return clone

    # -- running -----------------------------------------------------------------------------------
    @spelled_out(RunOptions)
    def run(self, input: str, *, stream: bool = False, stream_events: bool = False, yield_run_output: bool = False,
            **options: Unpack[RunOptions]) -> RunOutput | RunStream:
        """Run one prompt; returns the RunOutput, or a RunStream of events when ``stream=True``.

        The stream yields ``RunContentEvent``s (and the run's milestones with ``stream_events=True``; the final
        ``RunOutput`` last with ``yield_run_output=True``). A provider failure stores the run as ``error`` and
        raises ``ModelError`` carrying it. The other keywords (``session_id``, ``user_id``, ``session_state``,
        the history settings...) are ``RunOptions``: each overrides the agent's own for this run only.
        """
        execution = self.engine.begin(input, **given_options(RunOptions, options, f"{type(self).__name__}.run"))
        return deliver(execution, stream, stream_events, yield_run_output)

    @spelled_out(RunOptions)
    def arun(self, input: str, *, stream: bool = False, stream_events: bool = False, yield_run_output: bool = False,
             **options: Unpack[RunOptions]) -> Coroutine[Any, Any, RunOutput] | AsyncRunStream:
        """``run`` on the event loop: ``await agent.arun(...)``, or ``async for event in agent.arun(...,
        stream=True)``. The same engine, driven by the model's async transport; every store call runs in a
        worker thread; cancelling the task stores the run as cancelled.
        """
        given = given_options(RunOptions, options, f"{type(self).__name__}.arun")
        given["session_id"] = self.sessions.for_run(given.get("session_id"))  # here, not racing in threads
        start = functools.partial(self.engine.begin, input, **given)
        if stream:
            return AsyncRunStream(start, stream_events=stream_events, yield_run_output=yield_run_output)
        return acomplete(start, caller_task())

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
        return deliver(self.engine.resume(run_response, **given), bool(stream), bool(stream_events),
                       yield_run_output)

    @spelled_out(ContinueOptions)
    def acontinue_run(self, run_response: RunOutput | str | None = None, *, stream: bool | None = None,
                      stream_events: bool | None = None, yield_run_output: bool = False,
                      **answers: Unpack[ContinueOptions]) -> Coroutine[Any, Any, RunOutput] | AsyncRunStream:
        """``continue_run`` on the event loop, as ``arun`` is ``run``'s twin (the same arguments)."""
        given = given_options(ContinueOptions, answers, f"{type(self).__name__}.acontinue_run")
        start = functools.partial(self.engine.resume, run_response, **given)
        if stream:
            return AsyncRunStream(start, stream_events=bool(stream_events), yield_run_output=yield_run_output)
        return acomplete(start, caller_task())

    @spelled_out(RunOptions)
    def print_response(self, input: str, *, stream: bool | None = None, markdown: bool | None = None,
                       show_message: bool = True, **options: Unpack[RunOptions]) -> None:
        """Print the prompt (``show_message``), the reply (as it streams with ``stream=True``) and a footer.

        ``markdown`` is accepted as in Agno, where it only changes the display: here the reply is always
        printed as the plain text the model wrote (control characters dropped, so it cannot inject markup).
        """
        given = given_options(RunOptions, options, f"{type(self).__name__}.print_response")
        print_reply(self.run, input, stream=stream, show_message=show_message, options=given)

    @spelled_out(RunOptions)
    async def aprint_response(self, input: str, *, stream: bool | None = None, markdown: bool | None = None,
                              show_message: bool = True, **options: Unpack[RunOptions]) -> None:
        """``print_response`` for async code, through ``arun``."""
        given = given_options(RunOptions, options, f"{type(self).__name__}.aprint_response")
        await aprint_reply(self.arun, input, stream=stream, show_message=show_message, options=given)

    def cancel_run(self, run_id: str) -> None:
        """Ask a running run (in another thread) to stop; it is stored as cancelled with its partial reply."""
        self.engine.cancel(run_id)

    # -- variants ----------------------------------------------------------------------------------
    def regenerate(self, session_id: str | None = None, run_id: str | None = None, *, model: Model | None = None,
                   stream: bool = False) -> RunOutput | RunStream:
        """Ask the same prompt again, with the same context, as a new variant of that run's slot.

        Default: the newest run of the session (``session_id`` or the active one). The new variant becomes the
        one used as history once it completes; ``choose_variant`` picks another.
        """
        return deliver(self.engine.regenerate(session_id, run_id, as_model(model)), stream)

    def variants(self, run_id: str) -> list[RunOutput]:
        """Every answer to one prompt slot (the original and its regenerations), oldest first."""
        return variant_slots.variants(self.sessions, run_id)

    def choose_variant(self, run_id: str) -> RunOutput:
        """Keep this variant in the history; its siblings stay stored, marked as superseded by it."""
        return variant_slots.choose_variant(self.sessions, run_id)

    def model_of(self, run: RunOutput) -> Model:
        """The model that made ``run``: this agent's when it is that model, else one rebuilt from the run's
        record (continue and regenerate use it when no model is named)."""
        return self.engine.model_of(run)

    # -- what a run sends --------------------------------------------------------------------------
    def get_run_context(self, run_id: str) -> SentContext:
        """Exactly what a stored run sent: system prompt, summary, history (each message with the run it came
        from), prompt, tools offered, tokens per message against the model's context window when known."""
        return self.engine.sent_context(run_id)

    @spelled_out(ContextOptions)
    def preview_context(self, input: str, session_id: str | None = None,
                        **options: Unpack[ContextOptions]) -> SentContext:
        """What ``run`` with the same arguments would send now — built by the run's own code, sent nowhere,
        stored nowhere (a dry run for prompt testing)."""
        given = given_options(ContextOptions, options, f"{type(self).__name__}.preview_context")
        return self.engine.preview(input, session_id, given)
