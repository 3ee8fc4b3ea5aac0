"""Agno's import path for session summaries (``from nbsessions.summary import SessionSummaryManager``)."""

from nbsessions.records.schema import SessionSummary
from nbsessions.runs.summary import SessionSummaryManager

__all__ = ["SessionSummary", "SessionSummaryManager"]
