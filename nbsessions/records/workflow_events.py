"""What a streaming workflow run yields: Agno's workflow event classes and ``WorkflowRunEvent`` values.

``workflow.run(..., stream=True)`` yields ``WorkflowStarted``, the agent steps' own events (their reply as
``RunContent``), then ``WorkflowCompleted``; ``stream_events=True`` adds ``StepStarted`` / ``StepCompleted``
around each step (inner steps of blocks too, with the block's ``step_id`` as ``parent_step_id``), the blocks' own
``...ExecutionStarted`` / ``...ExecutionCompleted`` (and a loop's ``LoopIterationStarted`` / ``Completed``) and the
agents' milestones. ``str(event)`` is ``""``, as for a run's non-content events.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from nbsessions.records.schema import Metrics, StepOutput


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
    loop_iteration_started = "LoopIterationStarted"
    loop_iteration_completed = "LoopIterationCompleted"
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
    step_index: int | tuple[int, ...] | None = None


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


@dataclass
class _BlockEvent(BaseWorkflowRunOutputEvent):
    step_name: str | None = None
    step_index: int | tuple[int, ...] | None = None


@dataclass
class ParallelExecutionStartedEvent(_BlockEvent):
    event: str = WorkflowRunEvent.parallel_execution_started.value
    parallel_step_count: int | None = None


@dataclass
class ParallelExecutionCompletedEvent(_BlockEvent):
    event: str = WorkflowRunEvent.parallel_execution_completed.value
    parallel_step_count: int | None = None
    step_results: list[StepOutput] = field(default_factory=list)


@dataclass
class ConditionExecutionStartedEvent(_BlockEvent):
    event: str = WorkflowRunEvent.condition_execution_started.value
    condition_result: bool | None = None


@dataclass
class ConditionExecutionCompletedEvent(_BlockEvent):
    event: str = WorkflowRunEvent.condition_execution_completed.value
    condition_result: bool | None = None
    executed_steps: int | None = None
    branch: str | None = None  # "if", "else", or None when nothing ran
    step_results: list[StepOutput] = field(default_factory=list)


@dataclass
class LoopExecutionStartedEvent(_BlockEvent):
    event: str = WorkflowRunEvent.loop_execution_started.value
    max_iterations: int | None = None


@dataclass
class LoopIterationStartedEvent(_BlockEvent):
    event: str = WorkflowRunEvent.loop_iteration_started.value
    iteration: int = 0
    max_iterations: int | None = None


@dataclass
class LoopIterationCompletedEvent(_BlockEvent):
    event: str = WorkflowRunEvent.loop_iteration_completed.value
    iteration: int = 0
    max_iterations: int | None = None
    iteration_results: list[StepOutput] = field(default_factory=list)
    should_continue: bool = True


@dataclass
class LoopExecutionCompletedEvent(_BlockEvent):
    event: str = WorkflowRunEvent.loop_execution_completed.value
    total_iterations: int = 0
    max_iterations: int | None = None
    all_results: list[list[StepOutput]] = field(default_factory=list)


@dataclass
class RouterExecutionStartedEvent(_BlockEvent):
    event: str = WorkflowRunEvent.router_execution_started.value
    selected_steps: list[str] = field(default_factory=list)


@dataclass
class RouterExecutionCompletedEvent(_BlockEvent):
    event: str = WorkflowRunEvent.router_execution_completed.value
    selected_steps: list[str] = field(default_factory=list)
    executed_steps: int | None = None
    step_results: list[StepOutput] = field(default_factory=list)


@dataclass
class StepsExecutionStartedEvent(_BlockEvent):
    event: str = WorkflowRunEvent.steps_execution_started.value
    steps_count: int | None = None


@dataclass
class StepsExecutionCompletedEvent(_BlockEvent):
    event: str = WorkflowRunEvent.steps_execution_completed.value
    steps_count: int | None = None
    executed_steps: int | None = None
    step_results: list[StepOutput] = field(default_factory=list)
