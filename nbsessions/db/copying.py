"""Copy sessions and their runs from one store to another: a notebook's file into the team's PostgreSQL, or back.

A merge, never a reset of the target. Records keep their ids, and for each session:

- runs are merged by run id: a run the target lacks is added; a run it has is left as it is, unless the target's
  copy is unfinished (running, paused) and the source's has moved on since;
- the session's own fields (name, state, summary, metadata) are merged three ways, against the source's fields
  as last copied (kept in the target's settings): the side that changed them since wins, so a session renamed
  or given state in the target after a copy keeps those changes when the file merely gained runs; when both
  changed them (or the target holds no record of a copy), the newer ``updated_at`` wins;
- a session that the target holds for another user is skipped and named in the report.

What is already there unchanged is not written again, so copying twice appends nothing the second time. Runs are
copied in the order they were stored, so histories read the same in both stores. ``owner`` gives sessions that
have no user (a notebook file's) that user, so they show up for them once copied into a shared store.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from nbsessions.db.base import BaseDb
from nbsessions.records.formatting import counted
from nbsessions.records.schema import RunOutput, RunStatus, Session

_UNFINISHED = (RunStatus.running, RunStatus.pending, RunStatus.paused)


@dataclass
class CopyReport:
    sessions: int = 0  # sessions written (new, or newer in the source)
    runs: int = 0  # runs written
    kept_newer: int = 0  # sessions whose own fields were newer in the target: kept, runs still merged
    skipped: list[str] = field(default_factory=list)  # sessions the target holds for another user

    def __str__(self) -> str:
        kept = f"; {self.kept_newer} kept the target's newer name and state" if self.kept_newer else ""
        skipped = (f"; skipped {len(self.skipped)} that belong to another user in the target "
                   f"({', '.join(self.skipped)})") if self.skipped else ""
        return f"copied {counted(self.sessions, 'session')} and {counted(self.runs, 'run')}{kept}{skipped}"


def copy_sessions(source: BaseDb, target: BaseDb, *, user_id: str | None = None, owner: str | None = None,
                  progress: bool = True, out: Any = None) -> CopyReport:
    """Merge every session of ``source`` (only ``user_id``'s when given) with its runs into ``target``.

    ``owner``: the user given to sessions (and their runs) that have none; ``user_id`` then selects after that,
    so ``user_id=owner`` takes the user's own sessions and the unowned ones.
    """
    from tqdm.std import tqdm  # a terminal's bar, on ``out``: the CLI copies

    report = CopyReport()
    sessions = source.list_sessions(user_id=None if owner else user_id, sort="created_at", descending=False)
    sessions = [_owned(s, owner) for s in sessions]
    if user_id is not None:
        sessions = [s for s in sessions if s.user_id == user_id]
    with tqdm(sessions, desc="copying", unit="session", disable=not progress, file=out) as bar:
        for session in bar:
            _merge_session(source, target, session, owner, report)
            bar.set_postfix(runs=report.runs)
    return report


def _owned(session: Session, owner: str | None) -> Session:
    return dataclasses.replace(session, user_id=owner) if owner and session.user_id is None else session


def _merge_session(source: BaseDb, target: BaseDb, session: Session, owner: str | None, report: CopyReport) -> None:
    existing = target.get_session(session.session_id)
    if existing is not None and existing.user_id != session.user_id:
        report.skipped.append(session.label)
        return
    have = {r.run_id: r for r in target.list_runs(session.session_id)} if existing is not None else {}
    runs = [_run_owned(r, owner) for r in source.list_runs(session.session_id)]
    new_runs = [r for r in runs if _should_write(have.get(r.run_id), r)]
    for run in new_runs:
        target.upsert_run(run, durable=False)  # the session, written last below, is the durable write
    report.runs += len(new_runs)
    mine = _fingerprint(session)
    if existing is not None:
        theirs, base = _fingerprint(existing), target.get_meta(_BASE_KEY + session.session_id)
        source_changed, target_changed = mine != base, theirs != base
        if theirs == mine or not source_changed or (target_changed and existing.updated_at >= session.updated_at):
            report.kept_newer += theirs != mine
            if new_runs:  # storing runs bumped its update time: make that durable too
                target.update_session(session.session_id)
            return
        session = dataclasses.replace(session, updated_at=max(session.updated_at, existing.updated_at))
    target.upsert_session(session)  # after its runs: storing a run bumps updated_at, this restores it
    target.set_meta(_BASE_KEY + session.session_id, mine)
    report.sessions += 1


_BASE_KEY = "copied-session-fields:"
"""Target setting per copied session: the source's own fields as last copied, the base of a three-way merge."""


def _fingerprint(session: Session) -> str:
    """A session's own fields (all but ``updated_at``), so a copy can tell which side changed them since."""
    fields = session.to_dict()
    fields.pop("updated_at", None)
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()


def _run_owned(run: RunOutput, owner: str | None) -> RunOutput:
    return dataclasses.replace(run, user_id=owner) if owner and run.user_id is None else run


def _should_write(have: RunOutput | None, run: RunOutput) -> bool:
    """A run the target lacks, or one it has unfinished that the source has moved on with."""
    if have is None:
        return True
    return have.status in _UNFINISHED and run.status != have.status
