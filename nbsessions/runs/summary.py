"""Running session summaries: after every run before the run returns (Agno's way, the default), or every N
runs on a background thread so they never delay a reply (``session_summary_every=N``).

A summary covers the session up to one run (``Session.metadata["summary_through"]``: that run's id and time);
with ``add_session_summary_to_context`` it stands in for every run it covers.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from nbsessions.db.base import BaseDb
from nbsessions.llm.base import Model
from nbsessions.records.errors import SessionNotFoundError, exception_line
from nbsessions.records.schema import SUMMARY_THROUGH_KEY, Message, RunOutput
from nbsessions.runs.core.context import newest_runs, own_messages

log = logging.getLogger(__name__)

SUMMARY_PROMPT = (
    "Update the running summary of this conversation in at most 120 words. Keep facts, decisions, names and "
    "open questions; drop pleasantries. Reply with the summary only."
)
TOPICS_REQUEST = "On a last line, write 'Topics:' and up to five topics of the conversation, comma-separated."
__all__ = ["SUMMARY_THROUGH_KEY", "SessionSummaryManager", "Summarizer", "write_summary"]


@dataclass
class SessionSummaryManager:
    """Agno's summary settings: which ``model`` writes the summaries, with what ``session_summary_prompt``, the
    ``summary_request_message`` that asks for it, from at most the newest ``last_n_runs`` runs and
    ``conversation_limit`` messages.

    Passing one to an Agent makes ``add_session_summary_to_context`` default to True, as in Agno; summaries are
    written when ``enable_session_summaries=True``.
    """

    model: Model | None = None
    session_summary_prompt: str | None = None
    summary_request_message: str = "Provide the summary of the conversation."
    last_n_runs: int | None = None
    conversation_limit: int | None = None

    def __post_init__(self) -> None:
        for name in ("last_n_runs", "conversation_limit"):  # Agno's checks, with Agno's words
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value}")


def _transcript(runs: list[RunOutput], limit: int | None = None) -> str:
    lines = [f"{m.role}: {m.content}" for r in runs for m in own_messages(r) if m.content]
    return "\n".join(lines[-limit:] if limit else lines)


def offline_summary(previous: str | None, runs: list[RunOutput]) -> str:
    """A deterministic summary for models without a network: the prompts, in order, shortened."""
    prompts = [" ".join(r.input.split()[:12]) for r in runs]
    lines = [previous] if previous else []
    lines += [f"- asked: {p}" for p in prompts]
    return "\n".join(lines)


SUMMARY_TOKENS = 500  # a running summary is a paragraph and a topics line, not an essay


def split_topics(text: str) -> tuple[str, list[str] | None]:
    """(summary, topics) from a reply whose last line may be ``Topics: a, b``."""
    head, _, last = text.strip().rpartition("\n")
    label, colon, names = last.partition(":")
    if not colon or label.strip().lower() != "topics":
        return text.strip(), None
    return head.strip(), [t.strip() for t in names.split(",") if t.strip()] or None


def write_summary(model: Model, previous: str | None, runs: list[RunOutput], prompt: str | None = None,
                  manager: SessionSummaryManager | None = None) -> tuple[str, list[str] | None]:
    """(summary, topics); ``prompt`` replaces the default instructions (Agno's ``session_summary_prompt``), the
    ``manager`` limits what is sent and says how to ask."""
    manager = manager or SessionSummaryManager()
    if manager.last_n_runs is not None:
        runs = runs[-manager.last_n_runs:]
    if not model.follows_prompts:
        return offline_summary(previous, runs), None
    context = (f"Summary so far:\n{previous}\n\n" if previous else "") + "New messages:\n" \
        + _transcript(runs, manager.conversation_limit) + f"\n\n{manager.summary_request_message}"
    system = f"{prompt or SUMMARY_PROMPT}\n\n{TOPICS_REQUEST}"
    messages = [Message(role="system", content=system), Message(role="user", content=context)]
    reply = model.with_max_tokens(SUMMARY_TOKENS).complete(messages)  # one bounded whole reply, off the reply path
    return split_topics("".join(x for x in reply if isinstance(x, str)))


def runs_after(db: BaseDb, session_id: str, after: str | None, window: int) -> list[RunOutput]:
    """Runs stored after the run ``after``, read from the newest end so cost follows what is new, not the session."""
    return newest_runs(db, session_id, window, lambda _: False, after=after)


class Summarizer:
    """Refreshes a session's summary every ``every`` completed runs, on one background thread — or, with
    ``background=False``, before ``after_run`` returns (Agno writes one after every run, on the run's path)."""

    def __init__(self, db: BaseDb, model: Model, every: int = 5, prompt: str | None = None, *,
                 background: bool = True, manager: SessionSummaryManager | None = None) -> None:
        if every < 1:
            raise ValueError("session summaries must be refreshed every 1 or more runs")
        self.db, self.model, self.every, self.prompt = db, model, every, prompt
        self.background, self.manager = background, manager
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._pending: list[Future] = []
        self.errors: list[str] = []  # why refreshes were skipped, newest last; shown by the magic and panel
        self._closed = False

    def on(self, db: BaseDb) -> Summarizer:
        """The same settings on another store."""
        return Summarizer(db, self.model, self.every, self.prompt, background=self.background, manager=self.manager)

    def after_run(self, session_id: str) -> Future | None:
        """Schedule a refresh when enough new runs have completed since the last summary (or refresh now)."""
        if not self.background:
            self._refresh_if_due(session_id)
            return None
        with self._lock:
            if self._closed:
                return None
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nbsessions-summary")
            future = self._pool.submit(self._refresh_if_due, session_id)
            self._pending.append(future)
            return future

    def close(self) -> None:
        """Stop: queued refreshes are dropped and one already running writes nothing."""
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    def wait(self, timeout: float | None = None) -> None:
        """Block until scheduled refreshes are done (for tests, exports and shutdown)."""
        with self._lock:
            pending, self._pending = self._pending, []
        for future in pending:
            future.exception(timeout=timeout)

    def _refresh_if_due(self, session_id: str) -> str | None:
        try:
            return self._refresh(session_id)
        except Exception as exc:  # a summary is a convenience: it must never break the session
            message = exception_line(exc)
            self.errors.append(message)
            log.warning("session summary skipped: %s", message)
            return None

    def _refresh(self, session_id: str) -> str | None:
        session = self.db.get_session(session_id)
        if session is None:
            return None
        after = (session.metadata.get(SUMMARY_THROUGH_KEY) or {}).get("run_id")
        runs = [r for r in runs_after(self.db, session_id, after, self.every) if r.is_history]
        if len(runs) < self.every or self._closed:
            return None
        summary, topics = write_summary(self.model, session.summary, runs, self.prompt, self.manager)
        if not summary or self._closed:
            return None
        mark = {"run_id": runs[-1].run_id, "created_at": runs[-1].created_at, "topics": topics,
                "updated_at": time.time()}
        try:  # a patch: cells re-run meanwhile keep their metadata["cells"] entries
            self.db.update_session(session_id, summary=summary, metadata_patch={SUMMARY_THROUGH_KEY: mark})
        except SessionNotFoundError:  # deleted while the summary was being written
            return None
        return summary
