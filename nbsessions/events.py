"""Agno's import path for run events (``from nbsessions.events import RunEvent``); they live in ``records/``."""

from nbsessions.records.events import (
    ALWAYS_STREAMED,
    BaseAgentRunEvent,
    ModelRequestCompletedEvent,
    ModelRequestStartedEvent,
    RunCancelledEvent,
    RunCompletedEvent,
    RunContentCompletedEvent,
    RunContentEvent,
    RunContinuedEvent,
    RunErrorEvent,
    RunEvent,
    RunPausedEvent,
    RunStartedEvent,
    TeamRunEvent,
    ToolCallCompletedEvent,
    ToolCallStartedEvent,
    ToolExecution,
)
from nbsessions.records.workflow_events import (
    StepCompletedEvent,
    StepErrorEvent,
    StepStartedEvent,
    WorkflowCancelledEvent,
    WorkflowCompletedEvent,
    WorkflowErrorEvent,
    WorkflowRunEvent,
    WorkflowStartedEvent,
)

__all__ = [
    "ALWAYS_STREAMED", "BaseAgentRunEvent", "ModelRequestCompletedEvent", "ModelRequestStartedEvent",
    "RunCancelledEvent", "RunCompletedEvent", "RunContentCompletedEvent", "RunContentEvent", "RunContinuedEvent",
    "RunErrorEvent", "RunEvent", "RunPausedEvent", "RunStartedEvent", "StepCompletedEvent", "StepErrorEvent",
    "StepStartedEvent", "TeamRunEvent", "ToolCallCompletedEvent", "ToolCallStartedEvent", "ToolExecution",
    "WorkflowCancelledEvent", "WorkflowCompletedEvent", "WorkflowErrorEvent", "WorkflowRunEvent",
    "WorkflowStartedEvent",
]
