"""A run's writes to the store, each a conditional write: the first (``begin``), a continue's claim, the last.

The run engine asks for these through its driver (``execution.StoreCall``), so the async driver makes them in a
worker thread. Each checks the stored state in the same step as it writes (``BaseDb.upsert_run_if_session``,
``BaseDb.claim_run``): a run of a deleted session is never stored, and a paused run is continued once.

A final write that fails because the store is unreachable (a PostgreSQL restart) is not lost: it is kept and
retried in the background until the store answers, so the run ends up stored as it ended instead of reading,
later, as left by a process that died.
"""

from __future__ import annotations

import atexit
import contextlib
import threading
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from nbsessions.records.errors import RunNotPausedError, SessionNotFoundError, StorageError
from nbsessions.records.schema import RunOutput, RunStatus
from nbsessions.runs.core import run_log

if TYPE_CHECKING:
    from nbsessions.db.base import BaseDb

DELETED = "its session was deleted while it ran; the run was not stored"
RETRY_FIRST, RETRY_MOST = 0.25, 5.0  # seconds between attempts: doubling from the first up to the most


Emit = Callable[[str, str], None]  # the runner's ``_emit(event, session_id)``


def begin(db: BaseDb, run: RunOutput, emit: Emit, *, log: bool = False) -> None:
    """Store a new run as running, unless its session is gone (then the run is marked cancelled, not stored);
    ``log``: the runner's ``debug_mode``, which logs what the run sends."""
    if not db.upsert_run_if_session(run, durable=False):  # the outcome is written durably when the run ends
        run.status, run.error = RunStatus.cancelled, DELETED
        return
    emit("run", run.session_id)
    if log:
        run_log.log_sent(run)


def claim(db: BaseDb, run: RunOutput, emit: Emit) -> None:
    """paused -> running in one store step; the loser of two continues gets one clear error, nothing runs."""
    if not db.claim_run(run):
        raise RunNotPausedError(f"run {run.run_id[:8]} is no longer paused: another continue_run took it (or its "
                                "session was deleted); nothing was run")
    emit("run", run.session_id)


def store_outcome(db: BaseDb, run: RunOutput, changes: dict[str, Any], deleted: list[str]) -> bool:
    """The run's final write, then the session state its tools changed: False (nothing stored) when the session
    was deleted meanwhile.

    Unreachable store: both are retried in the background until it answers (``pending``), with one warning.
    """

    def after() -> None:
        if changes or deleted:
            with contextlib.suppress(SessionNotFoundError):  # deleted just after the run: it went with it
                db.update_session(run.session_id, state_patch=changes, state_delete=deleted)

    try:
        if not db.upsert_run_if_session(run):
            run.status, run.error = RunStatus.cancelled, DELETED
            return False
        after()
    except StorageError as exc:
        copy = RunOutput.from_dict(run.to_dict())  # as it ended, whatever the caller does with ``run`` now
        _retries.add(lambda: db.upsert_run_if_session(copy) and after())  # type: ignore[func-returns-value]
        warnings.warn(f"run {run.run_id[:8]} ended {run.status.value} but could not be stored ({exc}); it is "
                      "stored as soon as the store answers again", RuntimeWarning, stacklevel=2)
    return True


class _Retries:
    """Final writes waiting for the store: one daemon thread retries them, oldest first, with a backoff."""

    def __init__(self) -> None:
        self._jobs: list[Callable[[], object]] = []
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None

    def add(self, job: Callable[[], object]) -> None:
        with self._changed:
            self._jobs.append(job)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._work, name="nbsessions-final-writes", daemon=True)
                self._thread.start()

    def _work(self) -> None:
        wait = RETRY_FIRST
        while True:
            with self._changed:
                if not self._jobs:
                    self._thread = None
                    self._changed.notify_all()
                    return
                job = self._jobs[0]
            try:
                job()
            except StorageError:
                with self._changed:
                    self._changed.wait(wait)  # woken early by ``flush``
                wait = min(wait * 2, RETRY_MOST)
                continue
            except Exception as exc:  # noqa: BLE001 - a record the store refuses cannot be helped by retrying
                warnings.warn(f"a run's final write was given up: {exc}", RuntimeWarning, stacklevel=1)
            wait = RETRY_FIRST
            with self._changed:
                self._jobs.pop(0)

    def pending(self) -> int:
        with self._changed:
            return len(self._jobs)

    def flush(self, timeout: float | None = None) -> bool:
        """Retry now and wait until every kept write is stored (True) or ``timeout`` passes (False)."""
        with self._changed:
            self._changed.notify_all()
            return self._changed.wait_for(lambda: not self._jobs, timeout)


_retries = _Retries()
pending, flush = _retries.pending, _retries.flush
atexit.register(lambda: _retries.flush(timeout=RETRY_MOST))  # a kernel shut down gives the store a last chance
