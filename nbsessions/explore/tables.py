"""Shared pieces of comparison and batch results: flat records, pandas, and safe HTML cells.

Every model-produced string goes through ``markdown_to_html``; everything else (model names, errors, check
details, prompts) is escaped, because any of it can carry text a model or a server wrote.
"""

from __future__ import annotations

import html
import sys
from collections.abc import Sequence
from typing import Any

from nbsessions.explore.checks import CheckResult
from nbsessions.presentation.render import format_cost, format_in_out, markdown_to_html
from nbsessions.records import theme
from nbsessions.records.formatting import seconds
from nbsessions.records.redact import redact
from nbsessions.records.schema import Metrics, RunOutput

STATUS_COLOURS = {"completed": theme.SUCCESS, "error": theme.ERROR, "cancelled": theme.WARN, "not_run": theme.MUTED}


def to_pandas(records: list[dict[str, Any]]) -> Any:
    """A DataFrame of ``records``; pandas is optional, so say how to get it (or what to use instead)."""
    try:
        import pandas
    except ImportError:
        raise ImportError("to_pandas() needs pandas, which is not installed: `pip install pandas`, "
                          "or use .to_records() for a list of plain dicts") from None
    return pandas.DataFrame.from_records(records)


def progress_bar(total: int, what: str) -> Any:
    """A widget in a Jupyter kernel, text on stderr elsewhere, decided per bar from the running shell:
    ``tqdm.auto`` decides once per process, from whether ``ipykernel`` happens to have been imported."""
    ipython = sys.modules.get("IPython")  # not imported: no shell, and no reason to import it
    shell = ipython.get_ipython() if ipython is not None else None
    if type(shell).__name__ == "ZMQInteractiveShell":
        from tqdm.notebook import tqdm
    else:
        from tqdm.std import tqdm
    return tqdm(total=total, desc=what, unit="run")


def metric_fields(run: RunOutput | None) -> dict[str, Any]:
    m = run.metrics if run is not None else Metrics()
    return {
        "input_tokens": m.input_tokens, "output_tokens": m.output_tokens, "total_tokens": m.total_tokens,
        "tokens_estimated": m.tokens_estimated,
        "time_to_first_token": m.time_to_first_token, "duration": m.duration, "cost": m.cost,
    }


def check_fields(results: Sequence[CheckResult]) -> dict[str, Any]:
    return {f"check:{r.name}": r.passed for r in results}


def percent(rate: float | None) -> str:
    return "–" if rate is None else f"{rate:.0%}"


def esc(text: object) -> str:
    return html.escape(redact(str(text)), quote=True)


def status_html(status: str, error: str | None) -> str:
    colour = STATUS_COLOURS.get(status, theme.MUTED)
    title = f' title="{esc(error)}"' if error else ""
    return f'<span style="color:{colour};font-weight:600"{title}>{esc(status.replace("_", " "))}</span>'


def check_html(result: CheckResult) -> str:
    mark, colour = ("✓", theme.SUCCESS) if result.passed else ("✗", theme.ERROR)
    return f'<span style="color:{colour}" title="{esc(result.detail)}">{mark}</span>'


def reply_html(content: str | None, error: str | None, limit: int | None = None) -> str:
    """The reply rendered safely (cut to ``limit`` characters first); the error, escaped, when there is one."""
    text = content or ""
    if limit is not None and len(text) > limit:
        text = text[:limit] + " …"
    body = markdown_to_html(text) if text else ""
    if error:
        body += f'<div style="color:{theme.ERROR};font-size:85%">{esc(error)}</div>'
    return body or '<span style="opacity:.6">(no reply)</span>'


def usage_html(run: RunOutput | None) -> tuple[str, str, str]:
    """Tokens, latency (TTFT · total) and cost of a run, as escaped text."""
    if run is None:
        return "–", "–", "–"
    m = run.metrics
    return (esc(f"{format_in_out(m, ' in / ')} out"),
            esc(f"TTFT {seconds(m.time_to_first_token)} · {seconds(m.duration)}"),
            esc(format_cost(m.cost)))


TABLE_STYLE = "border-collapse:collapse;font-size:90%"
CELL_STYLE = theme.CELL
