"""The same prompt on several models, system-prompt variants and generation settings, side by side.

Each cell of the grid runs concurrently in its own session forked from the current one, so every model sees
the same history, and every attempt stays in the store to look at later. A failing cell shows its error; the
others still finish.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nbsessions import theme
from nbsessions.errors import InvalidInputError
from nbsessions.explore import tables
from nbsessions.explore.checks import Check, CheckLike, CheckResult, as_checks
from nbsessions.explore.runner import CheckedRun, Job, JobStatus, Outcome, RetryPolicy, Runner
from nbsessions.formatting import shorten
from nbsessions.llm.base import Model
from nbsessions.llm.resolve import model_from_name
from nbsessions.schema import EXPERIMENT_KEY, RunOutput
from nbsessions.validate import check_count, refuse_secrets

if TYPE_CHECKING:
    from nbsessions.agent import Agent


def resolve_model(agent: Agent, spec: Model | str) -> Model:
    """A model object as is; a name on the agent's own endpoint (same URL and key) when it has one."""
    if isinstance(spec, Model):
        return spec
    if not isinstance(spec, str) or not spec.strip():
        raise TypeError(f"a model is a Model or a model name, not {spec!r}")
    return model_from_name(spec, like=agent.model)


def settings_label(settings: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" if isinstance(v, str) else f"{k}={v}" for k, v in settings.items())


@dataclass
class Cell(CheckedRun):
    """One model × variant × settings result. ``model`` is the model's label (its id, made unique)."""

    model: str
    variant: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    status: JobStatus = JobStatus.not_run
    run: RunOutput | None = None
    error: str | None = None
    session_id: str | None = None
    attempts: int = 0
    checks: list[CheckResult] = field(default_factory=list)

    def update(self, outcome: Outcome, checks: list[Check]) -> None:
        super().update(outcome, checks)
        self.session_id = outcome.session_id  # each cell runs in a session of its own

    @property
    def detail(self) -> str:
        """Variant and settings: what tells apart the cells of one model."""
        return " · ".join(p for p in (self.variant, settings_label(self.settings)) if p)

    @property
    def label(self) -> str:
        return " · ".join(p for p in (self.model, self.detail) if p)


@dataclass
class Comparison:
    """The cells of a comparison in grid order (models, then variants, then settings)."""

    prompt: str
    cells: list[Cell]
    check_names: list[str] = field(default_factory=list)
    base_session_id: str | None = None
    interrupted: bool = False

    def __repr__(self) -> str:
        rates = ", ".join(f"{m}: {tables.percent(r)}" for m, r in self.pass_rates().items())
        return f"Comparison({len(self.cells)} cells; pass rate {rates})"

    def __getitem__(self, index: int) -> Cell:
        return self.cells[index]

    def __len__(self) -> int:
        return len(self.cells)

    def to_records(self) -> list[dict[str, Any]]:
        """One flat dict per cell: what to hand to pandas, a CSV writer or a JSON file."""
        return [{
            "cell": c.label, "model": c.model, "variant": c.variant, "settings": dict(c.settings),
            "status": c.status.value, "error": c.error, "content": c.content, "session_id": c.session_id,
            "run_id": c.run.run_id if c.run is not None else None, "attempts": c.attempts,
            **tables.metric_fields(c.run), "passed": c.passed, **tables.check_fields(c.checks),
        } for c in self.cells]

    def to_pandas(self) -> Any:
        return tables.to_pandas(self.to_records())

    def pass_rates(self) -> dict[str, float | None]:
        """Per model: the share of its cells that completed with every check passing (None if none ran)."""
        out: dict[str, float | None] = {}
        for model in dict.fromkeys(c.model for c in self.cells):
            ran = [c for c in self.cells if c.model == model and c.status != JobStatus.not_run]
            out[model] = sum(c.passed for c in ran) / len(ran) if ran else None
        return out

    def _repr_html_(self) -> str:
        td = f'<td style="{tables.CELL_STYLE}">'
        th = f'<th style="{theme.HEADER_CELL}">'

        def row(name: str, values: list[str]) -> str:
            return f"<tr>{th}{tables.esc(name)}</th>" + "".join(f"{td}{v}</td>" for v in values) + "</tr>"

        heads = [f"<b>{tables.esc(c.model)}</b>" + (f"<br><small>{tables.esc(c.detail)}</small>" if c.detail else "")
                 for c in self.cells]
        usage = [tables.usage_html(c.run) for c in self.cells]
        body = [
            row("reply", [tables.reply_html(c.content, c.error) for c in self.cells]),
            row("status", [tables.status_html(c.status.value, c.error) for c in self.cells]),
            row("tokens", [u[0] for u in usage]),
            row("latency", [u[1] for u in usage]),
            row("cost", [u[2] for u in usage]),
        ]
        for i, name in enumerate(self.check_names):
            body.append(row(name, [tables.check_html(c.checks[i]) if i < len(c.checks) else "–"
                                   for c in self.cells]))
        rates = " · ".join(f"{tables.esc(m)} {tables.percent(r)}" for m, r in self.pass_rates().items())
        note = " · interrupted: cells marked not run were never started" if self.interrupted else ""
        return (f'<div class="nbsessions-compare"><div style="opacity:.7;margin-bottom:4px">'
                f"{tables.esc(shorten(self.prompt, 200))}</div>"
                f'<table style="{tables.TABLE_STYLE}"><thead><tr>{th}</th>'
                + "".join(f"{th}{h}</th>" for h in heads) + "</tr></thead><tbody>" + "".join(body)
                + f'</tbody></table><div style="opacity:.7;margin-top:4px">pass rate: {rates}{tables.esc(note)}'
                "</div></div>")


def _labels(models: Sequence[Model]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for m in models:
        seen[m.id] = seen.get(m.id, 0) + 1
        out.append(m.id if seen[m.id] == 1 else f"{m.id} #{seen[m.id]}")
    return out


def _session_maker(agent: Agent, base: str | None, name: str) -> Callable[[], str]:
    marked = {EXPERIMENT_KEY: {"kind": "compare", "from": base}}  # listed under ``base``, hidden by default

    def make() -> str:
        if base is None:
            return agent.create_session(name, metadata=marked).session_id
        return agent.fork_session(base, session_name=name, metadata=marked).session_id

    return make


def compare(
    agent: Agent,
    prompt: str,
    models: Sequence[Model | str] | None = None,
    *,
    variants: Mapping[str, str | None] | None = None,
    settings: Sequence[Mapping[str, Any]] | None = None,
    checks: Sequence[CheckLike] = (),
    session_id: str | None = None,
    concurrency: int = 4,
    retries: int = 0,
    history: bool | None = None,
    progress: bool = False,
) -> Comparison:
    """Run ``prompt`` on every model × variant × settings cell at once, each in a fork of the same session.

    ``models``: Model objects or names (names use the agent's endpoint and key); default the agent's model.
    ``variants``: name → system prompt (None keeps the agent's instructions). ``settings``: e.g.
    ``[{"temperature": 0}, {"temperature": 0.7}]``. ``session_id``: the session to fork (default the active
    one; a fresh session per cell when there is none). ``history``: overrides the agent's
    ``add_history_to_context``. Ctrl-C returns what finished, with the rest marked not run.
    """
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError("the prompt is empty: give the models something to answer")
    check_list = as_checks(checks)
    if isinstance(models, str):
        raise InvalidInputError(f"models must be a list of models or names, such as [{models!r}]")
    check_count(concurrency, "concurrency", least=1)
    model_list = [resolve_model(agent, m) for m in (models or [agent.model])]
    for model in model_list:  # a key in the prompt would be sent to every model: refuse before any run
        refuse_secrets(prompt, model.secrets())
    variant_items: list[tuple[str | None, str | None]] = list(variants.items()) if variants else [(None, None)]
    setting_list = [dict(s) for s in settings] if settings else [{}]
    base = session_id or agent.active_session_id or agent.session_id
    if base is not None:
        agent.get_session(base)  # unknown session or another user's: say so before running anything
    cells: list[Cell] = []
    jobs: list[Job] = []
    for label, model in zip(_labels(model_list), model_list, strict=True):
        for variant, system in variant_items:
            for setting in setting_list:
                cell = Cell(model=label, variant=variant, settings=setting)
                cells.append(cell)
                jobs.append(Job(prompt=prompt, session=_session_maker(agent, base, f"compare: {cell.label}"),
                                model=model.with_settings(**setting) if setting else model,
                                instructions=system, history=history,
                                tags=["compare"] + ([f"variant:{variant}"] if variant else [])))
    bar = tables.progress_bar(len(jobs), "compare") if progress else None
    runner = Runner(agent, jobs, concurrency=concurrency, retry=RetryPolicy(retries=retries, base_delay=1.0),
                    on_done=(lambda i, o: bar.update(1)) if bar is not None else None)
    try:
        outcomes = runner.run()
    finally:
        if bar is not None:
            bar.close()
    for cell, outcome in zip(cells, outcomes, strict=True):
        cell.update(outcome, check_list)
    if runner.interrupted:
        finished = sum(c.status == JobStatus.completed for c in cells)
        warnings.warn(f"comparison interrupted: {finished} of {len(cells)} cells completed and kept; "
                      "the rest are marked cancelled or not run", RuntimeWarning, stacklevel=2)
    return Comparison(prompt=prompt, cells=cells, check_names=[c.name for c in check_list],
                      base_session_id=base, interrupted=runner.interrupted)
