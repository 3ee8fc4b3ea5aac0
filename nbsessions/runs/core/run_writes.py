"""A run's writes to the store, each a conditional write: the first (``begin``), a continue's claim, the last.

The run engine asks for these through its driver (``execution.StoreCall``), so the async driver makes them in a
worker thread. Each checks the stored state in the same step as it writes (``BaseDb.upsert_run_if_session``,
``BaseDb.claim_run``): a run of a deleted session is never stored, and a paused run is continued once.

A final write that fails because the store is unreachable (a PostgreSQL restart, a full disk) is not lost: it is
kept and retried in the background until the store answers, and, when the process exits first, kept on disk for
the next process that opens the store (``spool.py``). So the run ends up stored as it ended instead of reading,
later, as left by a process that died.
"""

from __future__ import annotations

import atexit
import contextlib
import threading
import warnings
from collections.abc import Callable
from enum import Enum
from typing import TYPE_CHECKING, Any

from nbsessions.records.errors import RunNotPausedError, SessionNotFoundError, StorageError
from nbsessions.records.schema import RunOutput, RunStatus, new_id
from nbsessions.runs.core import run_log, spool

if TYPE_CHECKING:
    from nbsessions.db.base import BaseDb

DELETED = "its session was deleted while it ran; the run was not stored"
RETRY_FIRST, RETRY_MOST = 0.25, 5.0  # seconds between attempts: doubling from the first up to the most

Emit = Callable[[str, str], None]  # the runner's ``Sessions.emit(event, session_id)``


class Outcome(Enum):
    """What became of a run's final write: what follows it (a superseded cell, a summary) needs it stored."""

    stored = "stored"
    kept = "kept"  # the store did not answer: retried in the background, spooled at exit
    deleted = "deleted"  # its session was deleted meanwhile: nothing of it is stored


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


def store_outcome(db: BaseDb, run: RunOutput, changes: dict[str, Any], deleted: list[str]) -> Outcome:
    """The run's final write, then the session state its tools changed: ``Outcome.deleted`` (nothing stored) when
    the session was deleted meanwhile, ``Outcome.kept`` when the store did not answer.

    Unreachable store: both are retried in the background until it answers (``pending``), with one warning; what
    is still waiting when the process exits is kept on disk for the next process that opens the store
    (``spool.py``).
    """
    final = FinalWrite(db, run, changes, deleted)
    try:
        if not final.attempt():
            run.status, run.error = RunStatus.cancelled, DELETED
            return Outcome.deleted
    except StorageError as exc:
        final.run = RunOutput.from_dict(run.to_dict())  # as it ended, whatever the caller does with ``run`` now
        _retries.add(final)
        warnings.warn(f"run {run.run_id[:8]} ended {run.status.value} but could not be stored ({exc}); it is "
                      "stored as soon as the store answers again", RuntimeWarning, stacklevel=2)
        return Outcome.kept
    return Outcome.stored


def replay_kept(db: BaseDb) -> None:
    """Store the final writes earlier processes kept for ``db`` (an ``Agent`` opening a store calls this)."""
    spool.replay(db)


class FinalWrite:
    """A run's final write and its state changes, in two steps, remembering which one is done."""

    def __init__(self, db: BaseDb, run: RunOutput, changes: dict[str, Any], deleted: list[str]) -> None:
        self.db, self.run, self.changes, self.deleted = db, run, changes, deleted
        self.run_stored = False
        self.entry_id = new_id()

    def attempt(self) -> bool:
        """Write what is not written yet; False when the run's session is gone (nothing stored)."""
        if not self.run_stored:
            if not self.db.upsert_run_if_session(self.run):
                return False
            self.run_stored = True
        if self.changes or self.deleted:
            with contextlib.suppress(SessionNotFoundError):  # deleted just after the run: it went with it
                self.db.update_session(self.run.session_id, state_patch=self.changes, state_delete=self.deleted)
        return True

    def keep(self) -> None:
        """On disk for the next process that opens the store (saying where, as the process exits)."""
        key = self.db.spool_key()
        if key is None:
            where = f"{self.db!r} cannot be opened by another process: it is lost"
        else:
            try:
                record = spool.entry(key, self.entry_id, self.run, self.changes, self.deleted, self.run_stored)
                where = f"it is kept in {spool.append(key, [record])} until a process opens {self.db.path} again"
            except (OSError, TypeError, ValueError) as exc:
                where = f"it could not be kept on disk either ({exc}): it is lost"
        warnings.warn(f"run {self.run.run_id[:8]} ended {self.run.status.value} but the store never answered; "
                      f"{where}", RuntimeWarning, stacklevel=1)


class _Retries:
    """Final writes waiting for the store: one daemon thread retries them, oldest first, with a backoff."""

    def __init__(self) -> None:
        self._jobs: list[FinalWrite] = []
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None
        self._trying = False  # an attempt is under way (outside the lock)
        self._closed = False

    def add(self, job: FinalWrite) -> None:
        with self._changed:
            self._jobs.append(job)
            if not self._closed and (self._thread is None or not self._thread.is_alive()):
                self._thread = threading.Thread(target=self._work, name="nbsessions-final-writes", daemon=True)
                self._thread.start()

    def _work(self) -> None:
        wait = RETRY_FIRST
        while True:
            with self._changed:
                if not self._jobs or self._closed:
                    self._thread = None
                    self._changed.notify_all()
                    return
                job, self._trying = self._jobs[0], True
            try:
                job.attempt()
            except StorageError:
                with self._changed:
                    self._trying = False
                    self._changed.notify_all()
                    self._changed.wait(wait)  # woken early by ``flush``
                wait = min(wait * 2, RETRY_MOST)
                continue
            except Exception as exc:  # noqa: BLE001 - a record the store refuses cannot be helped by retrying
                warnings.warn(f"a run's final write was given up: {exc}", RuntimeWarning, stacklevel=1)
            wait = RETRY_FIRST
            with self._changed:
                if job in self._jobs:  # not handed over by ``close`` meanwhile
                    self._jobs.remove(job)
                self._trying = False
                self._changed.notify_all()

    def pending(self) -> int:
        with self._changed:
            return len(self._jobs)

    def flush(self, timeout: float | None = None) -> bool:
        """Retry now and wait until every kept write is stored (True) or ``timeout`` passes (False)."""
        with self._changed:
            self._changed.notify_all()
            return self._changed.wait_for(lambda: not self._jobs, timeout)

    def close(self, timeout: float) -> list[FinalWrite]:
        """Stop retrying and hand over what is still waiting, once the attempt under way (if any) has ended or
        ``timeout`` has passed."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()
            self._changed.wait_for(lambda: not self._trying, timeout)
            jobs, self._jobs = self._jobs, []
            return jobs


def _at_exit() -> None:
    """A kernel shut down gives the store a last chance; what it still refuses is kept on disk."""
    if not _retries.pending():
        return
    _retries.flush(timeout=RETRY_MOST)
    for job in _retries.close(timeout=RETRY_MOST):
        job.keep()


_retries = _Retries()
pending, flush = _retries.pending, _retries.flush
atexit.register(_at_exit)
