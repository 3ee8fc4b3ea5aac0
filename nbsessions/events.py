"""What a streaming run yields: Agno's event classes and ``RunEvent`` values, as plain records.

``for event in agent.run(..., stream=True)`` gets ``RunContentEvent``s (``.content`` is the text delta); with
``stream_events=True`` also the run's milestones. For notebook convenience ``str(event)`` is the text the event
adds to the reply (a content event's delta, ``""`` for the others), so ``print(event, end="")`` prints the reply.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from nbsessions.requirement import ToolExecution
from nbsessions.schema import Metrics

__all__ = ["ToolExecution"]  # one record for a tool call, in events and in paused runs' requirements


class RunEvent(str, Enum):
    """Agno's event names (``event.event == RunEvent.run_content``), every member of Agno's enum with its value;
    events for features nbsessions has not (hooks, reasoning, memory...) are never sent."""

    run_started = "RunStarted"
    run_content = "RunContent"
    run_content_completed = "RunContentCompleted"
    run_intermediate_content = "RunIntermediateContent"
    run_completed = "RunCompleted"
    run_error = "RunError"
    run_cancelled = "RunCancelled"
    run_paused = "RunPaused"
    run_continued = "RunContinued"
    pre_hook_started = "PreHookStarted"
    pre_hook_completed = "PreHookCompleted"
    post_hook_started = "PostHookStarted"
    post_hook_completed = "PostHookCompleted"
    tool_call_started = "ToolCallStarted"
    tool_call_completed = "ToolCallCompleted"
    tool_call_error = "ToolCallError"
    reasoning_started = "ReasoningStarted"
    reasoning_step = "ReasoningStep"
    reasoning_content_delta = "ReasoningContentDelta"
    reasoning_completed = "ReasoningCompleted"
    memory_update_started = "MemoryUpdateStarted"
    memory_update_completed = "MemoryUpdateCompleted"
    session_summary_started = "SessionSummaryStarted"
    session_summary_completed = "SessionSummaryCompleted"
    parser_model_response_started = "ParserModelResponseStarted"
    parser_model_response_completed = "ParserModelResponseCompleted"
    output_model_response_started = "OutputModelResponseStarted"
    output_model_response_completed = "OutputModelResponseCompleted"
    model_request_started = "ModelRequestStarted"
    model_request_completed = "ModelRequestCompleted"
    compression_started = "CompressionStarted"
    compression_completed = "CompressionCompleted"
    custom_event = "CustomEvent"


TeamRunEvent = Enum("TeamRunEvent", {m.name: f"Team{m.value}" for m in RunEvent}, type=str)  # type: ignore[misc]
TeamRunEvent.__doc__ = "Agno's team event names: a team's run sends ``TeamRunStarted``, ``TeamRunContent``..."


@dataclass
class BaseAgentRunEvent:
    """Fields every event carries, so a consumer of several runs' events can tell them apart."""

    created_at: int = field(default_factory=lambda: int(time.time()))
    event: str = ""
    agent_id: str = ""
    agent_name: str = ""
    run_id: str | None = None
    parent_run_id: str | None = None
    session_id: str | None = None
    content: Any = None

    def __str__(self) -> str:
        """The text this event adds to the reply: only content events add any."""
        return ""

    @property
    def is_paused(self) -> bool:
        return self.event.removeprefix("Team") == RunEvent.run_paused.value  # a team's are TeamRun...

    @property
    def is_cancelled(self) -> bool:
        return self.event.removeprefix("Team") == RunEvent.run_cancelled.value


@dataclass
class RunStartedEvent(BaseAgentRunEvent):
    event: str = RunEvent.run_started.value
    model: str = ""
    model_provider: str = ""


@dataclass
class RunContentEvent(BaseAgentRunEvent):
    """One text delta of the reply."""

    event: str = RunEvent.run_content.value
    content: Any = None
    content_type: str = "str"

    def __str__(self) -> str:
        return "" if self.content is None else str(self.content)


@dataclass
class RunContinuedEvent(BaseAgentRunEvent):
    event: str = RunEvent.run_continued.value


@dataclass
class ToolCallStartedEvent(BaseAgentRunEvent):
    event: str = RunEvent.tool_call_started.value
    tool: ToolExecution | None = None


@dataclass
class ToolCallCompletedEvent(BaseAgentRunEvent):
    """``content`` is the tool's result as sent to the model."""

    event: str = RunEvent.tool_call_completed.value
    tool: ToolExecution | None = None


@dataclass
class RunPausedEvent(BaseAgentRunEvent):
    """The run waits for a human: ``tools`` are the calls waiting, ``requirements`` what each needs."""

    event: str = RunEvent.run_paused.value
    tools: list[ToolExecution] | None = None
    requirements: list[Any] | None = None

    @property
    def active_requirements(self) -> list[Any]:
        """What the run still waits for (Agno: ``for r in event.active_requirements: r.confirm()``)."""
        return [r for r in self.requirements or [] if not r.is_resolved()]


@dataclass
class ModelRequestStartedEvent(BaseAgentRunEvent):
    """Sent (with ``stream_events=True``) before each request to the model: a run with tools makes several."""

    event: str = RunEvent.model_request_started.value
    model: str | None = None
    model_provider: str | None = None


@dataclass
class ModelRequestCompletedEvent(BaseAgentRunEvent):
    """Sent after each request to the model, with what that request cost."""

    event: str = RunEvent.model_request_completed.value
    model: str | None = None
    model_provider: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None
    time_to_first_token: float | None = None
    reasoning_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None


@dataclass
class RunContentCompletedEvent(BaseAgentRunEvent):
    """The reply is whole (sent before ``RunCompleted``, as Agno does)."""

    event: str = RunEvent.run_content_completed.value


@dataclass
class RunCompletedEvent(BaseAgentRunEvent):
    """``content`` is the whole reply; sent after the run is stored."""

    event: str = RunEvent.run_completed.value
    content_type: str = "str"
    metrics: Metrics | None = None
    session_state: dict[str, Any] | None = None


@dataclass
class RunErrorEvent(BaseAgentRunEvent):
    """``content`` is the stored one-line error; the stream then raises ``ModelError`` carrying the run."""

    event: str = RunEvent.run_error.value
    error_type: str | None = None


@dataclass
class RunCancelledEvent(BaseAgentRunEvent):
    event: str = RunEvent.run_cancelled.value
    reason: str | None = None


_ALWAYS = (RunEvent.run_content.value, RunEvent.run_paused.value, RunEvent.run_error.value,
           RunEvent.run_cancelled.value)
ALWAYS_STREAMED = frozenset({*_ALWAYS, *(f"Team{name}" for name in _ALWAYS)})
"""Sent with ``stream=True`` alone, as Agno does; the rest need ``stream_events=True``."""
