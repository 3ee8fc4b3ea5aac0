"""Which runs a History page shows: top-level runs, with the runs nested under them (``parent_run_id``).

A team's member runs and a workflow's agent and team steps are stored in the session like any run, right after
the run they belong to. The page counts top-level runs only, as the session list does, and folds the nested ones
under their parent; a team step of a workflow nests twice (workflow → team → members).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from nbsessions.panel.run_html import run_key
from nbsessions.records.schema import RunOutput

RUNS_PER_PAGE = 50
Nested = dict[str, list[RunOutput]]  # parent run id → the runs nested under it, oldest first


def page_of_runs(total: int, page: int) -> tuple[int, int]:
    """(``last``, ``count``): page ``page`` (0 = newest) is the oldest ``count`` of the newest ``last`` top-level
    runs. Stores read the newest N runs cheaply, so an old page costs what it shows plus the newer ones, never the
    whole session."""
    newer = page * RUNS_PER_PAGE
    count = max(0, min(RUNS_PER_PAGE, total - newer))
    return newer + count, count


def read_page(read: Callable[[int], list[RunOutput]], total: int, page: int) -> tuple[list[RunOutput], Nested]:
    """The top-level runs of page ``page`` (0 = newest) of a session with ``total`` top-level runs, oldest first,
    and the nested runs read with them.

    ``read(n)`` gives the newest n runs of every kind. A session without nesting is read once, as before; with
    nesting the next read is sized from the share of top-level runs seen so far (doubled when none was seen), so
    the cost stays about what the page needs.
    """
    wanted, count = page_of_runs(total, page)
    if wanted == 0:
        return [], {}
    window = wanted
    while True:
        runs = read(window)
        top = [r for r in runs if r.parent_run_id is None]
        if len(top) >= wanted or len(runs) < window:
            break
        window = max(window + 1, -(-window * wanted * 6 // (5 * len(top)))) if top else window * 2
    nested: Nested = {}
    for run in runs:
        if run.parent_run_id is not None:
            nested.setdefault(run.parent_run_id, []).append(run)
    start = max(0, len(top) - wanted)
    return top[start:start + count], nested


def descendants(run: RunOutput, nested: Nested) -> Iterator[RunOutput]:
    """Every run nested under ``run``, depth first. A run has one parent, so from a top-level run (which has none)
    no chain of parents can loop."""
    for child in nested.get(run.run_id, []):
        yield child
        yield from descendants(child, nested)


def tree_key(run: RunOutput, number: int, nested: Nested) -> tuple:
    """Everything a run's block shows, nested runs and workflow steps included (see ``run_key``)."""
    key = run_key(run, number)
    if run.kind == "agent" and run.run_id not in nested:
        return key
    inner = tuple((run_key(child, 0), repr(child.steps)) for child in descendants(run, nested))
    return (key, repr(run.steps), inner)
