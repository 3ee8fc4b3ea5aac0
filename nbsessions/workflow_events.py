"""What a streaming workflow run yields: Agno's workflow event classes and ``WorkflowRunEvent`` values.

``workflow.run(..., stream=True)`` yields ``WorkflowStarted``, the agent steps' own events (their reply as
``RunContent``), then ``WorkflowCompleted``; ``stream_events=True`` adds ``StepStarted`` / ``StepCompleted``
around each step and the agents' milestones. ``str(event)`` is ``""``, as for a run's non-content events.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from nbsessions.schema import Metrics, StepOutput


class WorkflowRunEvent(str, Enum):
    """Agno's workflow event names, with Agno's values (those of features nbsessions has not are never sent)."""

    workflow_started = "WorkflowStarted"
    workflow_completed = "WorkflowCompleted"
    workflow_paused = "WorkflowPaused"
    workflow_cancelled = "WorkflowCancelled"
    workflow_error = "WorkflowError"
    workflow_agent_started = "WorkflowAgentStarted"
    workflow_agent_completed = "WorkflowAgentCompleted"
    step_started = "StepStarted"
    step_completed = "StepCompleted"
    step_paused = "StepPaused"
    step_continued = "StepContinued"
    step_error = "StepError"
    loop_execution_started = "LoopExecutionStarted"
    loop_execution_completed = "LoopExecutionCompleted"
    parallel_execution_started = "ParallelExecutionStarted"
    parallel_execution_completed = "ParallelExecutionCompleted"
    condition_execution_started = "ConditionExecutionStarted"
    condition_execution_completed = "ConditionExecutionCompleted"
    router_execution_started = "RouterExecutionStarted"
    router_execution_completed = "RouterExecutionCompleted"
    steps_execution_started = "StepsExecutionStarted"
    steps_execution_completed = "StepsExecutionCompleted"
    step_output = "StepOutput"
    custom_event = "CustomEvent"


@dataclass
class BaseWorkflowRunOutputEvent:
    """Fields every workflow event carries (Agno's names)."""

    created_at: int = field(default_factory=lambda: int(time.time()))
    event: str = ""
    workflow_id: str | None = None
    workflow_name: str | None = None
    session_id: str | None = None
    run_id: str | None = None
    step_id: str | None = None
    parent_step_id: str | None = None
    nested_depth: int = 0

    def __str__(self) -> str:
        return ""

    @property
    def is_paused(self) -> bool:
        return False

    @property
    def is_cancelled(self) -> bool:
        return self.event == WorkflowRunEvent.workflow_cancelled.value

    @property
    def is_error(self) -> bool:
        return self.event == WorkflowRunEvent.workflow_error.value


@dataclass
class WorkflowStartedEvent(BaseWorkflowRunOutputEvent):
    event: str = WorkflowRunEvent.workflow_started.value


@dataclass
class StepStartedEvent(BaseWorkflowRunOutputEvent):
    event: str = WorkflowRunEvent.step_started.value
    step_name: str | None = None
    step_index: int | None = None


@dataclass
class StepCompletedEvent(BaseWorkflowRunOutputEvent):
    event: str = WorkflowRunEvent.step_completed.value
    step_name: str | None = None
    step_index: int | None = None
    content: Any = None
    content_type: str = "str"
    step_response: StepOutput | None = None


@dataclass
class StepErrorEvent(BaseWorkflowRunOutputEvent):
    """A step failed (after its retries); the workflow then fails unless the step has ``skip_on_failure``."""

    event: str = WorkflowRunEvent.step_error.value
    step_name: str | None = None
    step_index: int | None = None
    error: str | None = None


@dataclass
class WorkflowCompletedEvent(BaseWorkflowRunOutputEvent):
    event: str = WorkflowRunEvent.workflow_completed.value
    content: Any = None
    content_type: str = "str"
    step_results: list[StepOutput] = field(default_factory=list)
    metadata: dict[str, Any] | None = None
    metrics: Metrics | None = None


@dataclass
class WorkflowErrorEvent(BaseWorkflowRunOutputEvent):
    """The run ended in error (stored as such); the stream then raises ``WorkflowError``."""

    event: str = WorkflowRunEvent.workflow_error.value
    error: str | None = None
    error_type: str | None = None


@dataclass
class WorkflowCancelledEvent(BaseWorkflowRunOutputEvent):
    event: str = WorkflowRunEvent.workflow_cancelled.value
    reason: str | None = None
