"""A ``{field}`` prompt template over many rows: bounded concurrency, retries, a progress bar, results in order.

Rows are independent prompts: each run sees no history, so a row's answer never depends on which other rows
happened to finish first. All runs of a batch go into one session (a new one unless ``session_id`` is given),
tagged ``batch`` and ``row:<index>``, failed attempts included.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nbsessions import theme
from nbsessions.errors import InvalidInputError
from nbsessions.explore import tables
from nbsessions.explore.checks import Check, CheckLike, CheckResult, as_checks
from nbsessions.explore.compare import resolve_model
from nbsessions.explore.runner import CheckedRun, Job, JobStatus, Outcome, RetryPolicy, Runner
from nbsessions.formatting import shorten
from nbsessions.llm.base import Model
from nbsessions.schema import EXPERIMENT_KEY, RunOutput
from nbsessions.templating import TemplateError, fill_prompt
from nbsessions.validate import check_count, kind_of

if TYPE_CHECKING:
    from nbsessions.agent import Agent

HTML_ROWS = 50
"""Rows shown in a notebook; ``to_records()`` / ``to_pandas()`` have them all."""


@dataclass
class Row(CheckedRun):
    """One row's outcome: its input ``data``, the filled ``prompt``, its last run and every retry wait."""

    index: int
    data: dict[str, Any]
    prompt: str
    status: JobStatus = JobStatus.not_run
    run: RunOutput | None = None
    error: str | None = None
    attempts: int = 0
    delays: list[float] = field(default_factory=list)
    checks: list[CheckResult] = field(default_factory=list)

    def update(self, outcome: Outcome, checks: list[Check]) -> None:
        super().update(outcome, checks)
        self.delays = list(outcome.delays)


@dataclass
class BatchResult:
    """Rows in input order, whatever order they finished in."""

    template: str
    rows: list[Row]
    check_names: list[str] = field(default_factory=list)
    session_id: str | None = None
    interrupted: bool = False

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[Row]:
        return iter(self.rows)

    def __getitem__(self, index: int) -> Row:
        return self.rows[index]

    def counts(self) -> dict[str, int]:
        """How many rows ended in each status (statuses with no rows left out)."""
        out: dict[str, int] = {}
        for row in self.rows:
            out[row.status.value] = out.get(row.status.value, 0) + 1
        return out

    @property
    def pass_rate(self) -> float | None:
        """Share of the rows that ran which completed with every check passing (None if no row ran)."""
        ran = [r for r in self.rows if r.status != JobStatus.not_run]
        return sum(r.passed for r in ran) / len(ran) if ran else None

    def check_pass_rates(self) -> dict[str, float | None]:
        """Per check: the share of rows that ran where it passed."""
        ran = [r for r in self.rows if r.status != JobStatus.not_run]
        return {name: (sum(r.checks[i].passed for r in ran) / len(ran) if ran else None)
                for i, name in enumerate(self.check_names)}

    def __repr__(self) -> str:
        counts = ", ".join(f"{n} {s.replace('_', ' ')}" for s, n in self.counts().items())
        return (f"BatchResult({len(self.rows)} rows: {counts or 'none'}; pass rate {tables.percent(self.pass_rate)}"
                + ("; interrupted" if self.interrupted else "") + ")")

    def caption(self) -> str:
        """The table's caption in words, as compare's: ``3 rows: 2 completed, 1 error · pass rate 67%``."""
        counts = ", ".join(f"{n} {s.replace('_', ' ')}" for s, n in self.counts().items())
        return (f"{len(self.rows)} rows: {counts or 'none'} · pass rate {tables.percent(self.pass_rate)}"
                + (" · interrupted" if self.interrupted else ""))

    def to_records(self) -> list[dict[str, Any]]:
        """One flat dict per row: the row's own fields first, then the result (``row.<name>`` on a clash)."""
        out = []
        for r in self.rows:
            result = {
                "index": r.index, "prompt": r.prompt, "status": r.status.value, "error": r.error,
                "content": r.content, "attempts": r.attempts,
                "run_id": r.run.run_id if r.run is not None else None, "session_id": self.session_id,
                **tables.metric_fields(r.run), "passed": r.passed, **tables.check_fields(r.checks),
            }
            own = {(f"row.{k}" if k in result else k): v for k, v in r.data.items()}
            out.append({**own, **result})
        return out

    def to_pandas(self) -> Any:
        return tables.to_pandas(self.to_records())

    def _repr_html_(self) -> str:
        td, th = f'<td style="{theme.CELL}">', f'<th style="{theme.HEADER_CELL}">'
        short = f'<td style="{theme.CELL};white-space:nowrap">'  # numbers never wrap: names wrap instead
        named = f'<th style="{theme.HEADER_CELL};max-width:9em;overflow-wrap:anywhere">'  # a long check's name
        heads = [(th, h) for h in ("#", "prompt", "reply", "status", "tokens", "latency", "cost")]
        heads += [(named, name) for name in self.check_names]
        lines = []
        for r in self.rows[:HTML_ROWS]:
            usage = tables.usage_html(r.run)
            cells = [(td, str(r.index)), (td, tables.esc(shorten(r.prompt, 120))),
                     (td, tables.reply_html(r.content, r.error, limit=300)),
                     (td, tables.status_html(r.status.value, r.error)), *((short, u) for u in usage),
                     *((td, tables.check_html(c)) for c in r.checks)]
            lines.append("<tr>" + "".join(f"{cell}{c}</td>" for cell, c in cells) + "</tr>")
        more = len(self.rows) - HTML_ROWS
        rates = " · ".join(f"{tables.esc(n)} {tables.percent(v)}" for n, v in self.check_pass_rates().items())
        summary = tables.esc(self.caption()) + (f"<br>per check: {rates}" if rates else "")
        if more > 0:
            summary += f"<br>{more} more rows: see .to_records() or .to_pandas()"
        return (f'<div class="nbsessions-batch"><table style="{tables.TABLE_STYLE}"><thead><tr>'
                + "".join(f"{cell}{tables.esc(h)}</th>" for cell, h in heads) + "</tr></thead><tbody>" + "".join(lines)
                + f'</tbody></table><div style="opacity:.7;margin-top:4px">{summary}</div></div>')


def as_rows(rows: Iterable[Mapping[str, Any]] | Any) -> list[dict[str, Any]]:
    """Dicts from a list of mappings or a pandas DataFrame (its records)."""
    if hasattr(rows, "to_dict") and hasattr(rows, "columns"):
        rows = rows.to_dict(orient="records")
    out = []
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise TypeError(f"row {i} is a {type(row).__name__}; rows are dicts (or a DataFrame's records)")
        out.append(dict(row))
    return out


def batch(
    agent: Agent,
    template: str,
    rows: Iterable[Mapping[str, Any]] | Any,
    *,
    concurrency: int = 4,
    retries: int = 3,
    checks: Sequence[CheckLike] = (),
    session_id: str | None = None,
    progress: bool = True,
    model: Model | str | None = None,
    instructions: str | None = None,
    base_delay: float = 1.0,
    max_delay: float = 60.0,
    on_row: Callable[[Row], None] | None = None,
) -> BatchResult:
    """Fill ``template``'s ``{field}`` from each row and run them all, ``concurrency`` at a time.

    Rate limits (429) and timeouts are retried up to ``retries`` times with backoff from ``base_delay`` seconds
    (doubling, at most ``max_delay``; a server's Retry-After wins). Every template is filled before anything
    runs, so a missing field fails at once. ``on_row(row)`` is called in the calling thread as each row ends.
    Ctrl-C stops cleanly: finished rows are kept, runs in flight are cancelled, the rest are marked not run.
    """
    if not isinstance(template, str):
        raise InvalidInputError(f"the template must be a string, not {kind_of(template)}")
    check_count(concurrency, "concurrency", least=1)
    data = as_rows(rows)
    model_obj = resolve_model(agent, model) if model is not None else None
    secrets = (model_obj or agent.model).secrets()
    prompts = []
    for i, row in enumerate(data):
        try:
            prompts.append(fill_prompt(template, row, secrets=secrets))
        except TemplateError as exc:
            raise TemplateError(f"row {i}: {exc}") from None
    check_list = as_checks(checks)
    result = BatchResult(template=template, rows=[Row(i, d, p) for i, (d, p) in enumerate(zip(data, prompts,
                                                                                              strict=True))],
                         check_names=[c.name for c in check_list], session_id=session_id)
    if not data:
        return result
    if session_id is not None:
        agent.get_session(session_id)  # unknown or another user's: fail before any run
    else:
        name = f"batch: {shorten(template, 40)} · {(model_obj or agent.model).id}"
        source = agent.session_id or agent.active_session_id  # where the batch was started from
        result.session_id = agent.create_session(
            name, metadata={EXPERIMENT_KEY: {"kind": "batch", "from": source}}).session_id
    sid = result.session_id
    assert sid is not None
    jobs = [Job(prompt=p, session=lambda: sid, model=model_obj, instructions=instructions, history=False,
                tags=["batch", f"row:{i}"]) for i, p in enumerate(prompts)]
    bar = tables.progress_bar(len(jobs), "batch") if progress else None
    failed = 0
    reported: set[int] = set()  # rows whose checks ran as they ended: never run a (paid) check twice

    def done(index: int, outcome: Outcome) -> None:
        nonlocal failed
        row = result.rows[index]
        row.update(outcome, check_list)
        reported.add(index)
        if bar is not None:
            failed += row.status != JobStatus.completed
            if failed:
                bar.set_postfix(failed=failed, refresh=False)
            bar.update(1)
        if on_row is not None:
            on_row(row)

    runner = Runner(agent, jobs, concurrency=concurrency, on_done=done,
                    retry=RetryPolicy(retries=retries, base_delay=base_delay, max_delay=max_delay))
    try:
        outcomes = runner.run()
    finally:
        if bar is not None:
            bar.close()
    for row, outcome in zip(result.rows, outcomes, strict=True):
        if row.index not in reported:  # stopped by an interrupt before its end was reported
            row.update(outcome, check_list)
    result.interrupted = runner.interrupted
    if runner.interrupted:
        finished = sum(r.status == JobStatus.completed for r in result.rows)
        warnings.warn(f"batch interrupted: {finished} of {len(data)} rows completed and kept; "
                      "the rest are marked cancelled or not run", RuntimeWarning, stacklevel=2)
    return result
