"""Sessions, comparisons and batches as files: Markdown to read, JSON to process, CSV for a spreadsheet.

Exports are built from stored records and result objects, which hold no credentials (keys live only in model
objects). Model text goes into Markdown as written — a file is not a live output. In CSV, text cells that
start with ``= + - @`` get a leading ``'`` so a spreadsheet shows them instead of running them as formulas.
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from nbsessions.explore import tables
from nbsessions.explore.batch import BatchResult
from nbsessions.explore.compare import Comparison
from nbsessions.presentation.export import (
    FORMATS,
    SESSION_ONLY,
    fence_for,
    session_json,
    session_markdown,
    write_private,
)
from nbsessions.presentation.export_ipynb import session_ipynb
from nbsessions.presentation.render import format_cost, format_in_out
from nbsessions.records.errors import InvalidInputError, SessionNotFoundError
from nbsessions.records.formatting import one_line, seconds, when_precise
from nbsessions.records.redact import redact
from nbsessions.records.schema import RunOutput, Session
from nbsessions.records.validate import kind_of

if TYPE_CHECKING:
    from nbsessions.db.base import BaseDb
    from nbsessions.runs.agent import Agent

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _check_format(fmt: str, allowed: tuple[str, ...] = FORMATS) -> str:
    if not isinstance(fmt, str):
        raise InvalidInputError(f"the export format must be one of {', '.join(allowed)}, not {kind_of(fmt)}")
    fmt = fmt.lower().lstrip(".")
    fmt = "md" if fmt == "markdown" else fmt
    if fmt in SESSION_ONLY and fmt not in allowed:
        raise ValueError(f"{fmt} exports a session; a comparison or a batch exports as md, json or csv")
    if fmt not in allowed:
        raise ValueError(f"unknown export format {fmt!r}: use {', '.join(allowed[:-1])} or {allowed[-1]}")
    return fmt


def _write(text: str, path: str | os.PathLike[str] | None) -> str:
    text = redact(text)  # a comparison or a batch exports runs kept in memory, not read back from a store
    if path is not None:
        write_private(path, text)
    return text


# -- sessions ------------------------------------------------------------------------------------------


def load_session(source: Agent | BaseDb, session_id: str) -> tuple[Session, list[RunOutput]]:
    """The session and its runs, from an Agent (which checks the owner) or straight from a store."""
    if hasattr(source, "get_runs"):
        return source.get_session(session_id), source.get_runs(session_id)
    db: BaseDb = source
    session = db.get_session(session_id)
    if session is None:
        raise SessionNotFoundError(f"no session {session_id!r} in {db!r}")
    return session, db.list_runs(session_id)


def session_csv(session: Session, runs: list[RunOutput]) -> str:
    """One row per run, every run (failed, superseded and nested ones too, with their status and parent)."""
    records = [{
        "session_id": session.session_id, "session_name": session.session_name, "run_id": r.run_id,
        "created_at": when_precise(r.created_at), "status": r.status.value,
        "model": r.model, "provider": r.provider, "input": r.input, "content": r.content, "error": r.error,
        **tables.metric_fields(r), "tags": r.tags, "superseded_by": r.superseded_by, "cell_id": r.cell_id,
        "execution_count": r.execution_count, "kind": r.kind, "parent_run_id": r.parent_run_id,
        "agent_name": r.agent_name,
    } for r in runs]
    return records_csv(records)


def export_session(source: Any, session_id: str, format: str = "md",
                   path: str | os.PathLike[str] | None = None) -> str:
    """A session as ``md``, ``json``, ``csv`` or ``ipynb`` text; also written to ``path`` (``0600``) when given.

    ``source`` is an Agent (the session's owner is checked) or a store such as ``TinyDb``.
    """
    fmt = _check_format(format)
    session, runs = load_session(source, session_id)
    writers: dict[str, Callable[[Session, list[RunOutput]], str]] = {
        "md": session_markdown, "json": session_json, "csv": session_csv, "ipynb": session_ipynb}
    return _write(writers[fmt](session, runs), path)


# -- comparisons and batches ---------------------------------------------------------------------------


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        value = json.dumps(value, ensure_ascii=False)
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def records_csv(records: list[dict[str, Any]]) -> str:
    """Records as CSV; the header is every key, in first-seen order."""
    names = list(dict.fromkeys(k for r in records for k in r))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=names, lineterminator="\n")
    writer.writeheader()
    for record in records:
        writer.writerow({k: _csv_value(record.get(k)) for k in names})
    return out.getvalue()


def _fenced(text: str) -> list[str]:
    fence = fence_for(text)
    return [fence, text, fence, ""]


def _md_cell(value: object) -> str:
    return one_line(value).replace("|", "\\|")


def _summary_row(label: str, status: str, run: RunOutput | None, checks: list) -> str:
    m = run.metrics if run is not None else None
    in_out = format_in_out(m) if m else "–"
    passed = f"{sum(c.passed for c in checks)}/{len(checks)}" if checks else "–"
    cells = [label, status, in_out, seconds(m.duration if m else None), format_cost(m.cost if m else None),
             passed]
    return "| " + " | ".join(_md_cell(c) for c in cells) + " |"


def _checks_line(checks: list) -> list[str]:
    if not checks:
        return []
    marks = [f"{'✓' if c.passed else '✗'} {c.name}" + ("" if c.passed else f" ({c.detail})") for c in checks]
    return ["Checks: " + " · ".join(marks), ""]


_TABLE_HEAD = ["| | status | tokens in / out | latency | cost | checks |", "|---|---|---|---|---|---|"]


def comparison_markdown(result: Comparison) -> str:
    lines = ["# Comparison", "", "Prompt:", "", *_fenced(result.prompt), *_TABLE_HEAD]
    lines += [_summary_row(c.label, c.status.value, c.run, c.checks) for c in result.cells]
    rates = " · ".join(f"{m} {tables.percent(r)}" for m, r in result.pass_rates().items())
    lines += ["", f"Pass rate: {rates}", ""]
    for c in result.cells:
        lines += [f"## {c.label}", ""]
        lines += [c.content or "_(no reply)_", ""]
        if c.error:
            lines += [f"**{c.status.value}:** {c.error}", ""]
        lines += _checks_line(c.checks)
    return "\n".join(lines)


def batch_markdown(result: BatchResult) -> str:
    lines = ["# Batch", "", "Template:", "", *_fenced(result.template), *_TABLE_HEAD]
    lines += [_summary_row(f"row {r.index}", r.status.value, r.run, r.checks) for r in result.rows]
    lines += ["", f"Pass rate: {tables.percent(result.pass_rate)}", ""]
    for r in result.rows:
        lines += [f"## Row {r.index}", "", *_fenced(r.prompt)]
        lines += [r.content or "_(no reply)_", ""]
        if r.error:
            lines += [f"**{r.status.value}:** {r.error}", ""]
        lines += _checks_line(r.checks)
    return "\n".join(lines)


def result_json(result: Comparison | BatchResult) -> str:
    """The result's records with what produced them, marked so a reader knows what it holds."""
    if isinstance(result, Comparison):
        head = {"format": "nbsessions.comparison", "prompt": result.prompt,
                "base_session_id": result.base_session_id, "pass_rates": result.pass_rates()}
        key = "cells"
    else:
        head = {"format": "nbsessions.batch", "template": result.template, "session_id": result.session_id,
                "pass_rate": result.pass_rate}
        key = "rows"
    payload = {**head, "version": 1, "exported_at": time.time(), "checks": result.check_names,
               "interrupted": result.interrupted, key: result.to_records()}
    return json.dumps(payload, indent=2, ensure_ascii=False, allow_nan=False)


def export_result(result: Comparison | BatchResult, format: str = "md",
                  path: str | os.PathLike[str] | None = None) -> str:
    """A comparison or a batch as ``md``, ``json`` or ``csv`` text; also written to ``path`` when given."""
    fmt = _check_format(format, tuple(f for f in FORMATS if f not in SESSION_ONLY))
    if not isinstance(result, Comparison | BatchResult):
        raise TypeError(f"export_result takes a Comparison or a BatchResult, not {type(result).__name__}")
    if fmt == "json":
        text = result_json(result)
    elif fmt == "csv":
        text = records_csv(result.to_records())
    else:
        text = comparison_markdown(result) if isinstance(result, Comparison) else batch_markdown(result)
    return _write(text, path)
