"""Agno's import path for run events (``from nbsessions.events import RunEvent``); they live in ``records/``."""

from nbsessions.records.events import (
    ALWAYS_STREAMED,
    BaseAgentRunEvent,
    RunCancelledEvent,
    RunCompletedEvent,
    RunContentEvent,
    RunContinuedEvent,
    RunErrorEvent,
    RunEvent,
    RunPausedEvent,
    RunStartedEvent,
    ToolCallCompletedEvent,
    ToolCallStartedEvent,
)

__all__ = [
    "ALWAYS_STREAMED", "BaseAgentRunEvent", "RunCancelledEvent", "RunCompletedEvent", "RunContentEvent",
    "RunContinuedEvent", "RunErrorEvent", "RunEvent", "RunPausedEvent", "RunStartedEvent", "ToolCallCompletedEvent",
    "ToolCallStartedEvent",
]
