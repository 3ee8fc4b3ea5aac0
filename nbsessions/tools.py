"""Agno's import path for tools (``from nbsessions.tools import tool, RunContext``); they live in ``runs/tools.py``."""

from nbsessions.runs.tools import RunContext, Tool, make_tool, tool, update_session_state

__all__ = ["RunContext", "Tool", "make_tool", "tool", "update_session_state"]
