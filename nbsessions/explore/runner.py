"""Many runs at once on a bounded pool of threads: what ``compare`` and ``batch`` share.

The caller's thread hands out work only when a worker is free, so the bound is exact and an interrupt leaves
everything not yet handed out untouched (no run, no session). Each worker streams its run, so on Ctrl-C the
runs in flight can be cancelled through ``Agent.cancel_run`` and are stored as cancelled with what had arrived.
Retries wait on an ``Event`` rather than sleeping, so an interrupt also ends a backoff at once.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING

from nbsessions.explore.checks import Check, CheckResult, run_checks
from nbsessions.llm.base import Model
from nbsessions.records.errors import ModelError
from nbsessions.records.schema import Metrics, RunOutput, RunStatus

if TYPE_CHECKING:
    from nbsessions.runs.agent import Agent

STOP_GRACE = 1.0
"""Seconds an interrupt waits for cancelled runs in flight to store their partial replies."""


class JobStatus(str, Enum):
    """What happened to one cell or row; ``not_run`` means it was never started (no run was stored)."""

    completed = "completed"
    error = "error"
    cancelled = "cancelled"
    paused = "paused"  # a tool call waits for a human (``Agent.continue_run``)
    not_run = "not_run"


@dataclass
class Job:
    """One run to make. ``session`` is called in the worker to get the session id (e.g. by forking)."""

    prompt: str
    session: Callable[[], str]
    model: Model | None = None
    instructions: str | None = None
    history: bool | None = None
    tags: list[str] = field(default_factory=list)


@dataclass
class Outcome:
    """How a job ended: its last run (errors included), the number of attempts and the waits between them."""

    status: JobStatus = JobStatus.not_run
    run: RunOutput | None = None
    error: str | None = None
    session_id: str | None = None
    attempts: int = 0
    delays: list[float] = field(default_factory=list)


class CheckedRun:
    """What a batch row and a comparison cell share: a run, its status and the checks of its reply."""

    run: RunOutput | None
    status: JobStatus
    error: str | None
    attempts: int
    checks: list[CheckResult]

    def update(self, outcome: Outcome, checks: list[Check]) -> None:
        """Take the outcome's state now (a cancelled run may still be finishing in the background) and check
        its reply; a job that never started keeps no checks."""
        self.status, self.run, self.error = outcome.status, outcome.run, outcome.error
        self.attempts = outcome.attempts
        if outcome.status != JobStatus.not_run:
            reply = self.content if outcome.status == JobStatus.completed else None
            self.checks = run_checks(checks, reply, f"no reply ({outcome.status.value}: {outcome.error})")

    @property
    def content(self) -> str | None:
        return self.run.content if self.run is not None else None

    @property
    def metrics(self) -> Metrics:
        return self.run.metrics if self.run is not None else Metrics()

    @property
    def passed(self) -> bool:
        """Completed, and every check passed."""
        return self.status == JobStatus.completed and all(c.passed for c in self.checks)


@dataclass(frozen=True)
class RetryPolicy:
    """Retry rate limits (429) and timeouts with exponential backoff: ``base_delay * 2**attempt``, capped.

    A 429 that says when to come back (``Retry-After``, carried in the error) is retried after exactly that long.
    Quota errors are not retried: waiting does not restore a budget.
    """

    retries: int = 0
    base_delay: float = 1.0
    max_delay: float = 60.0

    def delay(self, exc: ModelError, attempt: int) -> float | None:
        """Seconds to wait before attempt ``attempt + 1``, or None when this error is not worth retrying."""
        if attempt >= self.retries or not is_retryable(exc):
            return None
        wait_for = retry_after(exc)
        if wait_for is None:
            wait_for = self.base_delay * 2 ** attempt
        return min(max(wait_for, 0.0), self.max_delay)


def is_retryable(exc: ModelError) -> bool:
    """A rate limit (but not an exhausted quota) or a timeout: errors that waiting can fix (``ModelError.kind``)."""
    return exc.retryable


def retry_after(exc: ModelError) -> float | None:
    """The server's ``Retry-After`` in seconds, as the provider put it on the error."""
    return exc.retry_after


def _status_of(run: RunOutput) -> JobStatus:
    if run.status in (RunStatus.completed, RunStatus.cancelled, RunStatus.paused):
        return JobStatus(run.status.value)
    return JobStatus.error


class Runner:
    """Runs ``jobs`` with at most ``concurrency`` at a time; ``run()`` returns outcomes in job order."""

    def __init__(self, agent: Agent, jobs: Sequence[Job], *, concurrency: int = 4,
                 retry: RetryPolicy | None = None, on_done: Callable[[int, Outcome], None] | None = None) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, not {concurrency}")
        self.agent = agent
        self.jobs = list(jobs)
        self.concurrency = concurrency
        self.retry = retry or RetryPolicy()
        self.on_done = on_done
        self.interrupted = False
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._live: dict[int, str] = {}  # job index -> run id of the attempt streaming now
        self._started: dict[int, tuple[Outcome, threading.Event]] = {}  # the event is set when the job ends

    def run(self) -> list[Outcome]:
        outcomes = [Outcome() for _ in self.jobs]
        pending = deque(range(len(self.jobs)))
        running: dict[Future[Outcome], int] = {}
        pool = ThreadPoolExecutor(max_workers=min(self.concurrency, max(len(self.jobs), 1)),
                                  thread_name_prefix="nbsessions-explore")
        try:
            while pending or running:
                while pending and len(running) < self.concurrency:
                    index = pending.popleft()
                    running[pool.submit(self._work, index)] = index
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in sorted(done, key=running.__getitem__):
                    index = running.pop(future)
                    outcomes[index] = future.result()  # a KeyboardInterrupt raised inside a run surfaces here
                    if self.on_done is not None:
                        self.on_done(index, outcomes[index])
        except KeyboardInterrupt:
            self.interrupted = True
            self._stop(outcomes)
        finally:
            pool.shutdown(wait=not self.interrupted, cancel_futures=True)
        return outcomes

    def _stop(self, outcomes: list[Outcome]) -> None:
        """Cancel runs in flight, give them a moment to store their partial replies, keep what finished.

        Works from what the workers recorded rather than from the futures: the interrupt may land anywhere in
        the loop, even between handing out a job and noting its future.
        """
        with self._lock:  # after this, no job starts and every started one is in the snapshot
            self._stopping.set()
            started = dict(self._started)
            for run_id in self._live.values():
                self.agent.cancel_run(run_id)
        deadline = time.monotonic() + STOP_GRACE
        for index, (outcome, ended) in sorted(started.items()):
            ended.wait(max(0.0, deadline - time.monotonic()))
            unfinished = not ended.is_set() and outcome.status in (JobStatus.not_run, JobStatus.error)
            if unfinished or (outcome.status == JobStatus.not_run and outcome.attempts):
                outcome.status = JobStatus.cancelled  # still running, waiting to retry, or interrupted inside
                outcome.error = outcome.error or "interrupted"
            outcomes[index] = outcome

    # -- in a worker thread --------------------------------------------------------------------------

    def _work(self, index: int) -> Outcome:
        job, out, ended = self.jobs[index], Outcome(), threading.Event()
        with self._lock:
            if self._stopping.is_set():
                return out
            self._started[index] = (out, ended)
        try:
            return self._attempts(job, index, out)
        finally:
            ended.set()

    def _attempts(self, job: Job, index: int, out: Outcome) -> Outcome:
        try:
            out.session_id = job.session()
        except Exception as exc:  # e.g. the base session is gone: this cell fails, the others go on
            out.status, out.error = JobStatus.error, f"{type(exc).__name__}: {exc}"
            return out
        for attempt in range(self.retry.retries + 1):
            if self._stopping.is_set():
                return out
            out.attempts += 1
            try:
                self._attempt(index, job, out)
                return out
            except ModelError as exc:
                out.run = exc.run or out.run
                out.status, out.error = JobStatus.error, str(exc)
                delay = self.retry.delay(exc, attempt)
                if delay is None:
                    return out
                out.delays.append(delay)
                if self._stopping.wait(delay):
                    out.status, out.error = JobStatus.cancelled, f"interrupted before retrying: {exc}"
                    return out
            except Exception as exc:  # not the model: storage, templating... shown on the row, never hidden
                out.status, out.error = JobStatus.error, f"{type(exc).__name__}: {exc}"
                return out
        return out

    def _attempt(self, index: int, job: Job, out: Outcome) -> None:
        model = job.model or self.agent.model
        if self.retry.retries:  # one retry loop, ours: the SDK's own retries would multiply it
            model = model.without_retries()
        stream = self.agent.run(job.prompt, session_id=out.session_id, model=model,
                                instructions=job.instructions, add_history_to_context=job.history,
                                tags=job.tags, stream=True)
        out.run = stream.run
        with self._lock:  # either _stop sees this run, or this worker sees the stop: never neither
            self._live[index] = stream.run.run_id
            if self._stopping.is_set():
                self.agent.cancel_run(stream.run.run_id)
        try:
            for _ in stream:
                pass
        finally:
            with self._lock:
                self._live.pop(index, None)
        out.status = _status_of(stream.run)
        out.error = stream.run.error
