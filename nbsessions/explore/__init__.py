"""Prompt experiments: one prompt on many models (``compare``), one template over many rows (``batch``),
expectations on the replies (``checks``), and exports of what came out.

Everything runs through an ``Agent``, so every attempt is a stored run in a session like any other.
"""

from nbsessions.explore.batch import BatchResult, Row, batch
from nbsessions.explore.checks import Check, CheckResult, check, contains, is_json, json_schema, regex
from nbsessions.explore.compare import Cell, Comparison, compare
from nbsessions.explore.export import export_result, export_session
from nbsessions.explore.runner import JobStatus

__all__ = [
    "BatchResult", "Cell", "Check", "CheckResult", "Comparison", "JobStatus", "Row", "batch", "check", "compare",
    "contains", "export_result", "export_session", "is_json", "json_schema", "regex",
]
