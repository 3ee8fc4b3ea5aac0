"""Changes other processes make to a PostgreSQL store, delivered to listeners as they happen (LISTEN/NOTIFY).

Triggers on the tables (see ``postgres_schema``) notify every write with the session it touched, its user and
the writer's origin. One thread per store holds a dedicated connection, LISTENs, and calls each listener with
``(event, session_id, user_id)``: "run", "session", "deleted" or "active". A store's own writes are skipped (its
Agent already told its listeners). When the server goes away the thread reconnects and then reports a change of
unknown session (``session_id=""``), since notifications sent meanwhile are lost.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import Any

from nbsessions.db.postgres_schema import CHANNEL

log = logging.getLogger(__name__)

ChangeListener = Callable[[str, str, "str | None"], None]
ACTIVE_KEY = "active_session_id"  # the meta key whose change is an "active" event (see sessions.py)


def event_of(payload: dict[str, Any], meta_scope: str) -> tuple[str, str, str | None] | None:
    """Map one notification to a listener event, or None when it is not for us."""
    table, op = payload.get("table"), payload.get("op")
    if table == "meta":
        if payload.get("scope") != meta_scope or payload.get("key") != ACTIVE_KEY:
            return None
        value = payload.get("value")
        return "active", value if isinstance(value, str) else "", None
    session_id, user_id = payload.get("session_id") or "", payload.get("user_id")
    if table == "runs":
        return "run", session_id, user_id
    if table == "sessions":
        return ("deleted" if op == "DELETE" else "session"), session_id, user_id
    return None


class ChangeFeed:
    """The listening thread of one store; started with the first listener, stopped by ``close``."""

    def __init__(self, connect: Callable[[], Any], origin: str, meta_scope: str) -> None:
        self._connect = connect
        self._origin = origin
        self._meta_scope = meta_scope
        self._listeners: list[ChangeListener] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, listener: ChangeListener) -> None:
        with self._lock:
            self._listeners.append(listener)
            if self._thread is None:
                self._thread = threading.Thread(target=self._listen, name="nbsessions-pg-listen", daemon=True)
                self._thread.start()
        self._ready.wait(timeout=10)  # so a write made right after subscribing is seen

    def remove(self, listener: ChangeListener) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def close(self) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=5)

    def _listen(self) -> None:
        delay, reconnected = 0.2, False
        while not self._stop.is_set():
            try:
                with self._connect() as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self._ready.set()
                    delay = 0.2
                    if reconnected:
                        self._deliver("session", "", None)  # what happened while we were away is unknown
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=0.5):
                            self._dispatch(note.payload)
            except Exception as exc:  # the server restarted or is unreachable: try again shortly
                self._ready.set()
                log.info("nbsessions: listening for changes paused: %s", type(exc).__name__)
                reconnected = True
                self._stop.wait(delay)
                delay = min(delay * 2, 5.0)

    def _dispatch(self, raw: str) -> None:
        try:
            payload = json.loads(raw)
        except ValueError:
            return
        if payload.get("origin") == self._origin:
            return
        event = event_of(payload, self._meta_scope)
        if event is not None:
            self._deliver(*event)

    def _deliver(self, event: str, session_id: str, user_id: str | None) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(event, session_id, user_id)
            except Exception:  # one broken listener must not silence the others
                log.exception("nbsessions: a change listener failed")
