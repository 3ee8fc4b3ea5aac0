"""Agno's import path for what a paused run waits for (``from nbsessions.requirement import RunRequirement``)."""

from nbsessions.records.requirement import RunRequirement, ToolExecution, UserInputField

__all__ = ["RunRequirement", "ToolExecution", "UserInputField"]
