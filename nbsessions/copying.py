"""Copy sessions and their runs from one store to another: a notebook's file into the team's PostgreSQL, or back.

Idempotent: records keep their ids, so copying again changes nothing, and a session the target already holds
in a newer state (it was used there after the last copy) is left as it is, runs included. Runs are copied in the
order they were stored, so histories read the same in both stores.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nbsessions.db.base import BaseDb


@dataclass
class CopyReport:
    sessions: int = 0
    runs: int = 0
    kept_newer: int = 0  # sessions the target had in a newer state: not overwritten

    def __str__(self) -> str:
        kept = f"; {self.kept_newer} left as they were (newer in the target)" if self.kept_newer else ""
        return f"copied {self.sessions} sessions and {self.runs} runs{kept}"


def copy_sessions(source: BaseDb, target: BaseDb, *, user_id: str | None = None,
                  progress: bool = True, out: Any = None) -> CopyReport:
    """Every session of ``source`` (only ``user_id``'s when given) with its runs into ``target``."""
    from tqdm.auto import tqdm

    report = CopyReport()
    sessions = source.list_sessions(user_id=user_id, sort="created_at", descending=False)
    with tqdm(sessions, desc="copying", unit="session", disable=not progress, file=out) as bar:
        for session in bar:
            existing = target.get_session(session.session_id)
            if existing is not None and existing.updated_at > session.updated_at:
                report.kept_newer += 1
                continue
            runs = source.list_runs(session.session_id)
            for run in runs:
                target.upsert_run(run, durable=False)  # the session, written last below, is the durable write
            target.upsert_session(session)  # after its runs: storing a run bumps updated_at, this restores it
            report.sessions += 1
            report.runs += len(runs)
            bar.set_postfix(runs=report.runs)
    return report
