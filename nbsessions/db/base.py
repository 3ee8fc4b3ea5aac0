"""The storage contract: small on purpose, so a new backend is an afternoon's work.

Sessions: get / list / upsert / update (merge under the store's lock) / delete.
Runs: upsert / get / list for one session. Plus a tiny key-value area for notebook settings
(the active session of a notebook lives there).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from nbsessions.schema import Metrics, RunOutput, Session

SESSION_SORT_KEYS = ("updated_at", "created_at", "session_name")


def check_sort(sort: str) -> None:
    if sort not in SESSION_SORT_KEYS:
        raise ValueError(f"unknown sort key {sort!r}; use one of: {', '.join(SESSION_SORT_KEYS)}")


class BaseDb(ABC):
    """Where sessions and runs live. Every method is safe to call from several threads."""

    path: str | None = None

    # -- sessions -------------------------------------------------------------------------------
    @abstractmethod
    def get_session(self, session_id: str) -> Session | None: ...

    @abstractmethod
    def list_sessions(
        self, *, user_id: str | None = None, limit: int | None = None, offset: int = 0,
        sort: str = "updated_at", descending: bool = True,
    ) -> list[Session]:
        """Sessions without their runs; ``user_id=None`` lists every user's."""

    @abstractmethod
    def upsert_session(self, session: Session) -> None: ...

    @abstractmethod
    def update_session(self, session_id: str, *, state_patch: dict[str, Any] | None = None,
                       **fields: Any) -> Session:
        """Read, merge and write one session atomically, so two writers' different keys both survive.

        ``state_patch`` is merged over ``session_state`` (top-level keys); ``fields`` replace attributes;
        ``updated_at`` is set to now. Raises ``SessionNotFoundError`` when the session does not exist.
        """

    @abstractmethod
    def delete_session(self, session_id: str) -> bool:
        """Delete a session and all its runs; False when there was none."""

    # -- runs -----------------------------------------------------------------------------------
    @abstractmethod
    def upsert_run(self, run: RunOutput, *, durable: bool = True) -> None:
        """Insert or replace one run and bump its session's ``updated_at``, as one write.

        Durable (fsync'd) before returning unless ``durable=False``: for a record that a later durable write
        replaces (a run being started), surviving a killed process is enough.
        """

    @abstractmethod
    def get_run(self, run_id: str) -> RunOutput | None: ...

    @abstractmethod
    def list_runs(self, session_id: str, *, last: int | None = None) -> list[RunOutput]:
        """Runs of a session, oldest first; ``last=N`` reads only the newest N (cost O(N), not O(runs))."""

    def session_totals(self, session_id: str) -> tuple[int, Metrics]:
        """Number of top-level runs and metrics summed over completed ones: what a session list shows.

        Backends may override this to answer without building run objects.
        """
        runs = [r for r in self.list_runs(session_id) if r.parent_run_id is None]  # nested: in their parent
        return len(runs), Metrics.total([r.metrics for r in runs if r.status.value == "completed"])

    # -- notebook settings ----------------------------------------------------------------------
    @abstractmethod
    def get_meta(self, key: str, default: Any = None) -> Any: ...

    @abstractmethod
    def set_meta(self, key: str, value: Any) -> None: ...

    def close(self) -> None:
        """Release files and locks; the in-memory store has nothing to release."""

    def __enter__(self) -> BaseDb:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
