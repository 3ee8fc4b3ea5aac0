"""Prompt experiments from a cell: ``--compare``/``--variants``/``--sweep`` and ``--over``.

``run_compare`` takes the cell as one prompt (``{expr}`` filled from the notebook, as in any cell) and shows the
replies of every model × system prompt × settings cell side by side, each in a fork of the active session.
``run_batch`` takes the cell as a template: with ``--over`` its ``{field}``s come from each row only, never from
the notebook's variables, so a row can never pick up a variable by accident; ``{{field}}`` keeps the braces.

Both check every flag and variable before anything runs, show their result through its own sanitised HTML, and
keep what finished on Ctrl-C (then raise a one-line interrupt, so "Run all" stops).
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Mapping
from typing import Any

from IPython.core.error import UsageError
from IPython.display import display

from nbsessions.errors import NbSessionsError
from nbsessions.explore.batch import BatchResult, as_rows, batch
from nbsessions.explore.checks import Check, as_checks
from nbsessions.explore.compare import Comparison, compare
from nbsessions.llm.base import Model
from nbsessions.llm.openai import RESERVED_SETTINGS
from nbsessions.magic.cellopts import CellOptions
from nbsessions.magic.cellrun import CellInterrupted
from nbsessions.magic.notebook import NotebookAgent
from nbsessions.templating import TemplateError

DEFAULT_CONCURRENCY = 4


def _checks(nb: NotebookAgent, name: str | None) -> list[Check]:
    if name is None:
        return []
    value = nb.variable(name, "--checks")
    items = list(value) if isinstance(value, list | tuple) else [value]
    try:
        return as_checks(items)
    except TypeError as exc:
        raise UsageError(f"--checks {name}: {exc}; give a list such as [contains('x'), is_json]") from None


def _variants(nb: NotebookAgent, name: str | None) -> dict[str, str | None] | None:
    if name is None:
        return None
    value = nb.variable(name, "--variants")
    if not isinstance(value, Mapping) or not value:
        raise UsageError(f"--variants {name}: give a non-empty dict of name -> system prompt, not "
                         f"{type(value).__name__}")
    bad = [k for k, v in value.items() if not isinstance(k, str) or not (v is None or isinstance(v, str))]
    if bad:
        raise UsageError(f"--variants {name}: {bad[0]!r} must be a name (str) mapped to a system prompt (str or "
                         "None)")
    return dict(value)


def settings_grid(sweep: list[tuple[str, list[Any]]]) -> list[dict[str, Any]] | None:
    """Every combination of the ``--sweep`` axes, e.g. temperature × top_p (None when there is no sweep)."""
    if not sweep:
        return None
    keys = [key for key, _ in sweep]
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if repeated:
        raise UsageError(f"--sweep {repeated[0]} is given twice: list all its values once, e.g. "
                         f"{repeated[0]}=0,0.7")
    reserved = sorted(set(keys) & RESERVED_SETTINGS)
    if reserved:
        raise UsageError(f"--sweep {reserved[0]}: not a generation setting (use --compare for models)")
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*(v for _, v in sweep))]


def _show(result: Comparison | BatchResult) -> None:
    """The result's own HTML (model text rendered by ``markdown_to_html``, the rest escaped) and its repr."""
    display({"text/html": result._repr_html_(), "text/plain": repr(result)}, raw=True)


def _finish(nb: NotebookAgent, opts: CellOptions, result: Comparison | BatchResult, what: str) -> None:
    _show(result)
    if opts.output:
        nb.user_ns[opts.output] = result
    if result.interrupted:
        where = f" in {opts.output}" if opts.output else ""
        raise CellInterrupted(None, f"interrupted: finished {what} are kept{where}; the rest were cancelled or "
                                    "never started")


def run_compare(nb: NotebookAgent, opts: CellOptions, body: str) -> None:
    """The cell's prompt on every model × variant × setting, each in a fork of the active (or ``-s``) session."""
    ready = nb.prepare(opts, body, resolve_model=opts.compare is None)
    models: list[Model] = [nb.model(name) for name in opts.compare] if opts.compare else [ready.model]
    variants = _variants(nb, opts.variants)
    grid = settings_grid(opts.sweep)
    checks = _checks(nb, opts.checks)
    if opts.compare is None:
        nb.announce(ready.source)
    base = ready.session.session_id if ready.session else None
    with warnings.catch_warnings(), nb.acting_as(ready.user) as agent:
        warnings.filterwarnings("ignore", "comparison interrupted", RuntimeWarning)
        try:
            result = compare(agent, ready.prompt, models, variants=variants, settings=grid, checks=checks,
                                   session_id=base, concurrency=opts.concurrency or DEFAULT_CONCURRENCY,
                                   history=False if opts.history == 0 else None, progress=True)
        except (NbSessionsError, ValueError) as exc:
            raise UsageError(str(exc)) from None
    _finish(nb, opts, result, "cells")


def run_batch(nb: NotebookAgent, opts: CellOptions, body: str) -> None:
    """The cell as a ``{field}`` template over the rows of ``--over VAR``, with a progress bar."""
    template = body.strip("\n").rstrip()
    if not template.strip():
        raise UsageError("the cell has no template: write it on the lines below %%agent --over VAR")
    if opts.output is not None and not opts.output.isidentifier():
        raise UsageError(f"-o needs a variable name, not {opts.output!r}")
    assert opts.over is not None
    try:
        rows = as_rows(nb.variable(opts.over, "--over"))
    except TypeError as exc:
        raise UsageError(f"--over {opts.over}: {exc}") from None
    if not rows:
        raise UsageError(f"--over {opts.over} has no rows: nothing to run")
    checks = _checks(nb, opts.checks)
    model = nb.chosen_model(opts.model)
    user = opts.user or nb.user
    session = nb.find_session(opts.session, user) if opts.session else None
    with warnings.catch_warnings(), nb.acting_as(user) as agent:
        warnings.filterwarnings("ignore", "batch interrupted", RuntimeWarning)
        try:
            result = batch(agent, template, rows, concurrency=opts.concurrency or DEFAULT_CONCURRENCY,
                                 checks=checks, session_id=session.session_id if session else None, progress=True,
                                 model=model, instructions=opts.system)
        except TemplateError as exc:
            raise UsageError(f"--over {opts.over}: {exc} (with --over, {{field}} names a column of the rows)"
                             ) from None
        except (NbSessionsError, ValueError) as exc:
            raise UsageError(str(exc)) from None
    if result.session_id and session is None:
        print(f"rows stored in session {agent.get_session(result.session_id).label_with_id}")
    _finish(nb, opts, result, "rows")
