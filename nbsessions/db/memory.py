"""A store that lives only as long as the process: the default of an Agent without ``db``."""

from __future__ import annotations

import copy
import marshal
import threading
from collections.abc import Iterable
from typing import Any

from nbsessions.db.base import BaseDb, check_sort, create_in_table, runs_from_records, update_in_table
from nbsessions.records.errors import SessionNotFoundError
from nbsessions.records.schema import Metrics, RunOutput, RunStatus, Session, now


def _copied(record: Any) -> Any:
    """A copy of a stored record (plain JSON-like data): marshal round-trips one several times faster than
    ``copy.deepcopy``, which a run pays for each history run it reads; anything marshal refuses is deep-copied."""
    try:
        return marshal.loads(marshal.dumps(record))
    except ValueError:
        return copy.deepcopy(record)


class InMemoryDb(BaseDb):
    """Keeps records as dicts (like a file would), so callers never share mutable objects with the store."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._sessions: dict[str, dict[str, Any]] = {}
        self._runs: dict[str, dict[str, Any]] = {}
        self._runs_by_session: dict[str, list[str]] = {}
        self._totals_rows: dict[str, tuple[bool, Metrics | None]] = {}  # run id -> top-level?, metrics if done
        self._meta: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"InMemoryDb(sessions={len(self._sessions)}, runs={len(self._runs)})"

    def get_session(self, session_id: str) -> Session | None:
        with self._lock:
            data = self._sessions.get(session_id)
            return Session.from_dict(_copied(data)) if data else None

    def list_sessions(self, *, user_id: str | None = None, limit: int | None = None, offset: int = 0,
                      sort: str = "updated_at", descending: bool = True) -> list[Session]:
        check_sort(sort)
        with self._lock:
            rows = [s for s in self._sessions.values() if user_id is None or s.get("user_id") == user_id]
            rows.sort(key=lambda s: (s.get(sort) is None, s.get(sort) if s.get(sort) is not None else 0),
                      reverse=descending)
            end = None if limit is None else offset + limit
            return [Session.from_dict(_copied(s)) for s in rows[offset:end]]

    def upsert_session(self, session: Session) -> None:
        with self._lock:
            self._sessions[session.session_id] = session.to_dict()
            self._runs_by_session.setdefault(session.session_id, [])

    def create_session(self, session: Session) -> Session:
        with self._lock:
            data, new = create_in_table(self._sessions, session)
            if new:
                self._sessions[session.session_id] = data
                self._runs_by_session.setdefault(session.session_id, [])
            return Session.from_dict(_copied(data))

    def update_session(self, session_id: str, *, state_patch: dict[str, Any] | None = None,
                       state_delete: Iterable[str] = (), metadata_patch: dict[str, Any] | None = None,
                       **fields: Any) -> Session:
        with self._lock:
            merged = update_in_table(self._sessions, session_id, state_patch=state_patch,
                                     state_delete=state_delete, metadata_patch=metadata_patch, **fields)
            if merged is None:
                raise SessionNotFoundError(f"no session {session_id!r}")
            session = Session.from_dict(_copied(merged))
            self._sessions[session_id] = session.to_dict()
            return session

    def delete_session(self, session_id: str) -> bool:
        with self._lock:
            existed = self._sessions.pop(session_id, None) is not None
            for run_id in self._runs_by_session.pop(session_id, []):
                self._runs.pop(run_id, None)
                self._totals_rows.pop(run_id, None)
            return existed

    def upsert_run(self, run: RunOutput, *, durable: bool = True) -> None:
        with self._lock:
            if run.run_id not in self._runs:
                self._runs_by_session.setdefault(run.session_id, []).append(run.run_id)
            self._runs[run.run_id] = run.to_dict(history_refs=True)
            done = run.status == RunStatus.completed  # what ``session_totals`` needs, kept as the run is written
            self._totals_rows[run.run_id] = (run.parent_run_id is None, Metrics.from_dict(run.metrics.to_dict())
                                             if done else None)
            if run.session_id in self._sessions:
                self._sessions[run.session_id]["updated_at"] = now()

    def upsert_run_if_session(self, run: RunOutput, *, durable: bool = True) -> bool:
        with self._lock:
            if run.session_id not in self._sessions:
                return False
            self.upsert_run(run)
            return True

    def claim_run(self, run: RunOutput) -> bool:
        with self._lock:
            stored = self._runs.get(run.run_id)
            if stored is None or stored.get("status") != RunStatus.paused.value:
                return False
            return self.upsert_run_if_session(run)

    def get_run(self, run_id: str) -> RunOutput | None:
        with self._lock:
            data = self._runs.get(run_id)
            return runs_from_records([_copied(data)], self._fetch)[0] if data else None

    def list_runs(self, session_id: str, *, last: int | None = None, resolve_history: bool = True
                  ) -> list[RunOutput]:
        with self._lock:
            ids = self._runs_by_session.get(session_id, [])
            if last is not None:
                ids = ids[-last:] if last > 0 else []
            return runs_from_records([_copied(self._runs[i]) for i in ids], self._fetch,
                                     resolve_history=resolve_history)

    def _fetch(self, run_ids: set[str]) -> dict[str, dict[str, Any]]:
        """Referenced runs, read-only: the resolver copies what it takes from them."""
        return {i: self._runs[i] for i in run_ids if i in self._runs}

    def session_totals(self, session_id: str) -> tuple[int, Metrics]:
        """Counted from what each run's write kept of it (top-level?, metrics when completed): no run copied or
        parsed, so a session list and every panel redraw stay cheap."""
        with self._lock:
            rows = [self._totals_rows[i] for i in self._runs_by_session.get(session_id, [])]
        top = [metrics for is_top, metrics in rows if is_top]
        return len(top), Metrics.total([m for m in top if m is not None])

    def get_meta(self, key: str, default: Any = None) -> Any:
        with self._lock:
            return _copied(self._meta.get(key, default))

    def set_meta(self, key: str, value: Any) -> None:
        with self._lock:
            self._meta[key] = _copied(value)
