"""What ``fork_session`` copies: the runs up to a point, each under a new id that its copies refer to."""

from __future__ import annotations

from nbsessions.records.errors import SessionNotFoundError
from nbsessions.records.schema import Message, RunOutput, new_id


def runs_up_to(runs: list[RunOutput], run_id: str | None, session_id: str) -> list[RunOutput]:
    """Top-level runs up to ``run_id`` (all when None), with the runs nested under them (members, steps)."""
    if run_id is None:
        return runs
    top = [r.run_id for r in runs if r.parent_run_id is None]
    if run_id not in top:
        raise SessionNotFoundError(f"run {run_id!r} is not a top-level run of session {session_id[:8]}")
    kept = set(top[: top.index(run_id) + 1])
    for run in runs:  # parents are stored before their nested runs, so one pass finds every level
        if run.parent_run_id in kept:
            kept.add(run.run_id)
    return [r for r in runs if r.run_id in kept]


def fork_runs(runs: list[RunOutput], session_id: str) -> list[RunOutput]:
    """Copies of ``runs`` for session ``session_id``: new ids, and every reference between them renamed."""
    new_ids = {r.run_id: new_id() for r in runs}
    copies = []
    for run in runs:
        copy = RunOutput.from_dict({**run.to_dict(), "run_id": new_ids[run.run_id], "session_id": session_id})
        copy.superseded_by = new_ids.get(run.superseded_by or "")
        copy.variant_of = new_ids.get(run.variant_of or "")
        copy.parent_run_id = new_ids.get(run.parent_run_id or "")
        for step in copy.steps:  # from_dict made them copies: changing them leaves ``run`` as it was
            step.run_id = new_ids.get(step.run_id or "", step.run_id)
        copy.messages = [_in_fork(m, new_ids) for m in run.messages]
        copies.append(copy)
    return copies


def _in_fork(message: Message, new_ids: dict[str, str]) -> Message:
    """History from a copied run refers to the copy (stored as a reference); from any other run, stored in full."""
    if message.origin is None:
        return message
    run_id, index = message.origin
    return message.copy(origin=(new_ids[run_id], index) if run_id in new_ids else None)
