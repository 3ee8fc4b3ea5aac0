"""One run in motion: stream the model, call tools, pause for a human, and always store the outcome.

The engine is written once and does no I/O of its own: ``Execution.steps()`` is a generator that yields events
for the caller and requests for its driver (stream the model, next item, run a tool); a driver fulfils them
synchronously or asynchronously (``streams.py``). Whatever happens — reply, tool error, provider failure, Ctrl-C,
a closed stream, a cancelled task — the run is stored with a status that says so.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

from nbsessions.llm.base import Model, ToolCall, Usage
from nbsessions.llm.prices import cost_of
from nbsessions.records.errors import ModelError, exception_line
from nbsessions.records.events import (
    BaseAgentRunEvent,
    ModelRequestCompletedEvent,
    ModelRequestStartedEvent,
    RunCancelledEvent,
    RunCompletedEvent,
    RunContentCompletedEvent,
    RunContentEvent,
    RunContinuedEvent,
    RunErrorEvent,
    RunPausedEvent,
    RunStartedEvent,
    ToolCallCompletedEvent,
    ToolCallStartedEvent,
)
from nbsessions.records.redact import leaks
from nbsessions.records.requirement import RunRequirement, ToolExecution
from nbsessions.records.schema import Message, RunOutput, RunStatus
from nbsessions.runs.core.hitl import call_for, parse_arguments, requirement_for
from nbsessions.runs.core.tools import RunContext, Tool, stored_part

MAX_TOOL_ROUNDS = 12
LIMIT_REACHED = "Tool call limit reached. Tool call {name} not executed. Don't try to execute it again."
"""Agno's tool result for a call over ``tool_call_limit`` (its ``create_tool_call_limit_error_result``)."""


class Cancelled(Exception):
    """Raised inside a run when ``cancel_run`` was called for it."""


class StreamClosed(BaseException):  # noqa: N818 - a way to stop, like GeneratorExit, not an error
    """Thrown into the engine by a driver whose stream was closed: the engine stores the run as cancelled (through
    ``StoreCall``, so an async driver makes that write off the event loop) and lets it propagate."""


@dataclass
class ModelRequest:
    """The engine asks its driver to open a model stream on these messages (``tools`` None: no tools)."""

    messages: list[Message]
    tools: list[dict[str, Any]] | None
    streamed: bool = True  # False: one request for the whole reply (``Model.complete``)


@dataclass
class ToolRequest:
    """The engine asks its driver to run a tool and send back its text result."""

    tool: Tool
    arguments: dict[str, Any]
    context: RunContext


@dataclass
class StoreCall:
    """The engine asks its driver to make a store call (the sync driver calls it; the async one in a worker
    thread, so storage never blocks the event loop) and send back its result."""

    call: Callable[[], Any]


class _Marker:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


PREPARE = _Marker("PREPARE")  # the engine asks its driver to get the model ready (SDK import, client)
NEXT_ITEM = _Marker("NEXT_ITEM")  # the engine asks for the next item of the open model stream
END = _Marker("END")  # what the driver sends back when the model stream has ended

Steps = Generator[Any, Any, None]


def one_line(exc: BaseException) -> str:
    """Provider errors as they are; anything else prefixed with its type, so a stored error says what broke."""
    text = exception_line(exc)
    return text if isinstance(exc, ModelError) else f"{type(exc).__name__}: {text}"


def _arguments(call: ToolCall) -> dict[str, Any]:
    return parse_arguments(call.arguments)


@dataclass
class Execution:
    """The state of one run while it streams; ``finish`` is called exactly once, whatever happens."""

    run: RunOutput
    model: Model
    tools: dict[str, Tool]
    context: RunContext
    is_cancelled: Callable[[str], bool]
    finish: Callable[[Execution, RunStatus, str | None], None]
    begin: Callable[[Execution], None] = lambda execution: None  # the run's first write (or claim)
    usage: Usage | None = None
    initial_state: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)
    streamed: bool = True  # False: one whole reply per request (``stream=False``), for servers that need it
    agent_id: str = ""
    agent_name: str = ""
    continued: bool = False
    answered: list[RunRequirement] = field(default_factory=list)  # answers ``steps`` applies before asking again
    tool_call_limit: int | None = None  # Agno's: at most this many tool calls run in one run
    tool_calls_made: int = 0
    limit_told: bool = False  # the model was already told the limit was reached
    event_prefix: str = ""  # "Team" for a team's run: Agno names its events TeamRunStarted...
    stopped_with: list[str] = field(default_factory=list)  # results of ``stop_after_tool_call`` tools this round
    forwarded: Callable[[], list[Any]] | None = None  # a team's: its members' events, sent on after each call

    def steps(self) -> Steps:
        """The run as a conversation with its driver: yields events and requests, receives what was asked for.

        Nothing is stored before the driver first steps it (a stream nobody iterates stores nothing); then
        ``begin`` writes the run (a continue claims it, or raises when another continue did). A provider failure
        is stored, reported as ``RunErrorEvent`` and raised as ``ModelError``; ``cancel_run`` ends the stream with
        ``RunCancelledEvent``; Ctrl-C, a closed stream or a cancelled task store the run as cancelled and
        propagate. A run whose session was deleted meanwhile is not stored and ends with ``RunCancelledEvent``.
        """
        yield StoreCall(lambda: self.begin(self))
        if self.run.status == RunStatus.cancelled:  # its session is gone: nothing was stored, nothing runs
            yield self.event(RunCancelledEvent, reason=self.run.error)
            return
        try:
            yield PREPARE  # SDK import and client set-up are not the model's latency
            self.started = time.perf_counter()
            if self.continued:
                yield self.event(RunContinuedEvent)
                yield from self._apply_answers()
            else:
                yield self.event(RunStartedEvent, model=self.run.model or "", model_provider=self.run.provider or "")
            status = yield from self._rounds()
        except Cancelled:
            yield self._end(RunStatus.cancelled, "cancelled before the reply ended")
            yield self.event(RunCancelledEvent, reason=self.run.error)
            return
        except Exception as exc:  # any failure of the model becomes a stored, one-line error
            yield self._end(RunStatus.error, one_line(exc))
            yield self.event(RunErrorEvent, content=self.run.error, error_type=type(exc).__name__)
            typed = ({"status_code": exc.status_code, "retry_after": exc.retry_after, "kind": exc.kind}
                     if isinstance(exc, ModelError) else {})
            cause = None if leaks(str(exc)) else exc  # a traceback shows the cause: never one quoting a key
            raise ModelError(self.run.error or "model failed", run=self.run, **typed) from cause
        except GeneratorExit:  # closed without its driver (collected): no driver left to make the write
            self.finish(self, RunStatus.cancelled, "cancelled before the reply ended")
            raise
        except BaseException:  # Ctrl-C, a closed stream, a cancelled task: keep what arrived, then stop
            yield self._end(RunStatus.cancelled, "cancelled before the reply ended")
            raise
        yield self._end(status, None)
        if self.run.status == RunStatus.cancelled:  # the session was deleted while the run streamed
            yield self.event(RunCancelledEvent, reason=self.run.error)
        elif status == RunStatus.paused:
            waiting = [r for r in self.run.requirements if not r.resolved]
            yield self.event(RunPausedEvent, tools=[r.tool_execution for r in waiting], requirements=waiting)
        else:
            yield self.event(RunContentCompletedEvent)
            yield self.event(RunCompletedEvent, content=self.run.content, metrics=self.run.metrics,
                             session_state=dict(self.context.session_state))

    def event(self, kind: type[BaseAgentRunEvent], **fields: Any) -> BaseAgentRunEvent:
        """An event of this run, stamped with who and where."""
        event = kind(agent_id=self.agent_id, agent_name=self.agent_name or "", run_id=self.run.run_id,
                     parent_run_id=self.run.parent_run_id, session_id=self.run.session_id, **fields)
        event.event = self.event_prefix + event.event
        return event

    def _end(self, status: RunStatus, error: str | None) -> StoreCall:
        """The run's final write, for the driver to make: ``finish`` stores the outcome, exactly once."""
        return StoreCall(lambda: self.finish(self, status, error))

    def _rounds(self) -> Generator[Any, Any, RunStatus]:
        """Ask the model, run the tools it calls, ask again — until it answers or a tool needs a human."""
        specs = [t.spec() for t in self.tools.values()] or None
        for _ in range(MAX_TOOL_ROUNDS):
            text: list[str] = []
            calls: list[ToolCall] = []
            yield self.event(ModelRequestStartedEvent, model=self.run.model, model_provider=self.run.provider)
            yield ModelRequest(self.run.messages, specs, self.streamed)
            asked, used = time.perf_counter(), None
            first: float | None = None
            while (item := (yield NEXT_ITEM)) is not END:
                if self.is_cancelled(self.run.run_id):
                    raise Cancelled
                if isinstance(item, Usage):
                    self.usage = item if self.usage is None else self.usage + item
                    used = item if used is None else used + item
                elif isinstance(item, ToolCall):
                    calls.append(item)
                elif item:
                    first = first or time.perf_counter() - asked
                    if not self.run.content:
                        self.run.metrics.time_to_first_token = time.perf_counter() - self.started
                    if not text and self.run.content and not self.run.content[-1:].isspace():
                        yield self._content("\n\n")  # text after a tool call or a pause starts a new paragraph
                    text.append(item)
                    yield self._content(item)
            yield self._request_completed(used, first)
            self.run.messages.append(Message(role="assistant", content="".join(text) or None,
                                             tool_calls=[c.to_dict() for c in calls] or None))
            if not calls:
                return RunStatus.completed
            waiting = []
            for call in calls:
                requirement = yield from self._call(call) if self._within_limit() else self._refuse(call)
                if requirement is not None:
                    waiting.append(requirement)
            self.limit_told = self.tool_call_limit is not None and self.tool_calls_made > self.tool_call_limit
            if self.stopped_with and not waiting:  # Agno's stop_after_tool_call: the result is the reply
                for text in self.stopped_with:
                    yield self._content(text)
                return RunStatus.completed
            if waiting:
                self.run.requirements = waiting
                return RunStatus.paused
        raise ModelError(f"the model was still calling tools after {MAX_TOOL_ROUNDS} rounds; stopped")

    def _request_completed(self, used: Usage | None, first: float | None) -> BaseAgentRunEvent:
        """What one request to the model cost (Agno's ``ModelRequestCompletedEvent``)."""
        tokens = {} if used is None else {
            "input_tokens": used.input_tokens, "output_tokens": used.output_tokens,
            "total_tokens": used.input_tokens + used.output_tokens, "reasoning_tokens": used.reasoning_tokens,
            "cache_read_tokens": used.cached_tokens}
        return self.event(ModelRequestCompletedEvent, model=self.run.model, model_provider=self.run.provider,
                          time_to_first_token=first, **tokens)

    def _within_limit(self) -> bool:
        self.tool_calls_made += 1
        return self.tool_call_limit is None or self.tool_calls_made <= self.tool_call_limit

    def _refuse(self, call: ToolCall) -> Generator[Any, Any, None]:
        """Agno's answer to a call over the limit; a model that calls again after being told is stopped."""
        if self.limit_told:
            raise ModelError(f"the model kept calling tools after tool_call_limit={self.tool_call_limit} was "
                             f"reached (it asked for {call.name!r} again); stopped")
        self.tool_result(call.id, LIMIT_REACHED.format(name=call.name))
        yield from ()
        return None

    def _content(self, text: str) -> RunContentEvent:
        self.run.content += text  # grown in place: re-joining every delta made long replies quadratic
        return self.event(RunContentEvent, content=text)  # type: ignore[return-value]

    def _call(self, call: ToolCall) -> Generator[Any, Any, RunRequirement | None]:
        """Run one tool call now (through the driver), or return what it waits for."""
        tool = self.tools.get(call.name)
        if tool is not None and tool.pauses:
            requirement = requirement_for(call, tool)
            self.run.tools.append(requirement.tool_execution)  # the same object: an answer on either counts
            return requirement
        try:
            arguments: dict[str, Any] | None = _arguments(call)
        except ValueError as exc:
            arguments, result = None, f"error: the arguments are not valid JSON: {exc}"
        record = ToolExecution(tool_call_id=call.id, tool_name=call.name, tool_args=arguments)
        self.run.tools.append(record)  # Agno's ``RunOutput.tools``: every call, with its result
        yield self.event(ToolCallStartedEvent, tool=record)
        if tool is None:
            result = f"error: there is no tool named {call.name!r}"
        elif arguments is not None:
            result = yield ToolRequest(tool, arguments, self.context)
            yield from self.forwarded() if self.forwarded is not None else ()
        record.result = result
        record.tool_call_error = result.startswith("error:")
        if tool is not None and tool.stop_after_tool_call and not record.tool_call_error:
            self.stopped_with.append(result)
        self.tool_result(call.id, result)
        yield self.event(ToolCallCompletedEvent, tool=record, content=result)
        return None

    def tool_result(self, tool_call_id: str, content: str) -> None:
        self.run.messages.append(Message(role="tool", content=content, tool_call_id=tool_call_id))

    def resolve(self) -> None:
        """Take the answered requirements (``hitl.check_answered`` passed); ``steps`` applies them first, running
        approved tools through the driver, so ``acontinue_run`` awaits async tools as ``arun`` does."""
        self.answered = [r for r in self.run.requirements if not r.resolved]

    def _apply_answers(self) -> Generator[Any, Any, None]:
        for requirement in self.answered:
            answer = call_for(requirement)
            tool = self.tools.get(requirement.tool_name)
            record = requirement.tool_execution  # also in ``run.tools``: its result is filled in there
            if isinstance(answer, str):
                outcome = answer
                if requirement.kind == "confirmation":  # rejected, as Agno marks it
                    record.tool_call_error = True
                    record.confirmation_note = record.confirmation_note or "Tool call was rejected"
            elif tool is None:
                outcome = f"error: there is no tool named {requirement.tool_name!r}"
            else:
                yield self.event(ToolCallStartedEvent, tool=record)
                outcome = yield ToolRequest(tool, answer, self.context)
                record.tool_call_error = outcome.startswith("error:")
                yield self.event(ToolCallCompletedEvent, tool=record, content=outcome)
            record.result = outcome
            requirement.outcome = outcome
            self.tool_result(requirement.tool_call_id, outcome)
        self.answered = []

    def state_changes(self) -> dict[str, Any]:
        """Only the keys tools changed, so a concurrent writer's other keys survive the merge."""
        state = stored_part(self.context.session_state)
        return {k: v for k, v in state.items() if k not in self.initial_state or self.initial_state[k] != v}

    def state_deletions(self) -> list[str]:
        """Keys tools removed (``run_context.session_state.pop(...)``): deleted in the store, not dropped."""
        return [k for k in stored_part(self.initial_state) if k not in self.context.session_state]

    def record_usage(self) -> None:
        m = self.run.metrics
        m.duration = (m.duration or 0.0) + time.perf_counter() - self.started
        if self.usage is None:
            return
        m.input_tokens += self.usage.input_tokens
        m.output_tokens += self.usage.output_tokens
        m.cached_tokens += self.usage.cached_tokens
        m.reasoning_tokens += self.usage.reasoning_tokens
        m.total_tokens = m.input_tokens + m.output_tokens
        m.tokens_estimated = m.tokens_estimated or self.usage.estimated
        cost = cost_of(self.run.model or "", self.run.provider or "", self.usage, public=not self.model.is_local)
        if cost is not None:
            m.cost = (m.cost or 0.0) + cost
