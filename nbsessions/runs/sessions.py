"""The sessions of one runner (an agent, a team, a workflow): every read owner-checked, every change announced.

Agent, Team and Workflow each hold one ``Sessions`` and write their Agno-named getters as delegations to it
(``session_api.py``); the run engine opens and checks sessions through it too. It reads the runner's ``db``,
``user_id`` and ``session_id`` at each call, as the magic changes them (``%agent user``, a new session).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol

from nbsessions.db.base import BaseDb, check_session_owner
from nbsessions.llm.base import Model
from nbsessions.records.errors import InvalidInputError, SessionNotFoundError
from nbsessions.records.metrics import SessionMetrics
from nbsessions.records.schema import Message, Metrics, RunOutput, Session, SessionSummary, new_id
from nbsessions.records.transcript import session_messages
from nbsessions.records.validate import check_count, check_state, check_text, check_user_id
from nbsessions.runs.forks import fork_runs, runs_up_to
from nbsessions.runs.naming import generate_name
from nbsessions.runs.summary import Summarizer

CELLS_KEY = "cells"  # session.metadata[CELLS_KEY] maps a notebook cell id to its newest run
ACTIVE_SESSION_KEY = "active_session_id"  # in the store's meta table: the session new cells continue
Listener = Callable[[str, str], None]


class Runner(Protocol):
    """What ``Sessions`` reads from the agent, team or workflow it serves, at each call."""

    db: BaseDb
    model: Model | None
    user_id: str | None
    session_id: str | None
    agent_id: str
    name: str | None
    session_state: dict[str, Any]
    summarizer: Summarizer | None


class Sessions:
    """One runner's sessions in its store: reads refuse another user's session, changes tell the listeners."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        self.listeners: list[Listener] = []
        self.relays: list[tuple[Listener, BaseDb, Callable[[str, str, str | None], None]]] = []

    @property
    def db(self) -> BaseDb:
        return self.runner.db

    # -- listeners -------------------------------------------------------------------------------
    def add_listener(self, listener: Listener, *, other_kernels: bool = False) -> None:
        self.listeners.append(listener)
        if other_kernels:
            def relay(event: str, session_id: str, owner: str | None) -> None:
                user = self.runner.user_id  # as it is now: `%agent user carol` makes the panel follow carol's
                if user is None or owner is None or owner == user:  # never another user's session
                    listener(event, session_id)

            if self.db.add_change_listener(relay):
                self.relays.append((listener, self.db, relay))

    def remove_listener(self, listener: Listener) -> None:
        if listener in self.listeners:
            self.listeners.remove(listener)
        for entry in [e for e in self.relays if e[0] == listener]:  # == : bound methods are made anew each time
            self.relays.remove(entry)
            entry[1].remove_change_listener(entry[2])

    def emit(self, event: str, session_id: str) -> None:
        for listener in list(self.listeners):
            listener(event, session_id)

    # -- finding and opening ---------------------------------------------------------------------
    def owned(self, session_id: str, user_id: str | None = None) -> Session:
        """The stored session, refused unless it is ``user_id``'s (default: the runner's user)."""
        session = self.db.get_session(session_id)
        if session is None:
            raise SessionNotFoundError(f"no session {session_id!r} in {self.db!r}")
        check_session_owner(session.user_id, session.session_id,
                            user_id if user_id is not None else self.runner.user_id)
        return session

    def stored_run(self, run_id: str) -> RunOutput:
        run = self.db.get_run(run_id)
        if run is None:
            raise SessionNotFoundError(f"no run {run_id!r} in {self.db!r}")
        return run

    def current(self, session_id: str | None) -> str:
        """``session_id``, else the runner's own session (Agno's rule for every getter)."""
        sid = session_id or self.runner.session_id
        if not sid:
            raise SessionNotFoundError("no session_id given and this agent has no session yet: "
                                       "run it once or pass session_id=...")
        return sid

    def for_run(self, session_id: str | None) -> str:
        """The session a run goes to: the one given, else the runner's own, made and kept on first use (Agno)."""
        if session_id:
            return session_id
        if not self.runner.session_id:
            self.runner.session_id = new_id()
        return self.runner.session_id

    def check_parent(self, parent_run_id: Any, session_id: str | None) -> None:
        """A nested run's parent must be a run of the session it goes to, or nobody would ever see it."""
        if parent_run_id is None:
            return
        check_text(parent_run_id, "parent_run_id", empty=False)
        parent = self.db.get_run(parent_run_id)
        if parent is None or parent.session_id != (session_id or self.runner.session_id):
            raise InvalidInputError(f"parent_run_id {parent_run_id!r} is not a run of this run's session: a nested "
                                    "run goes in its parent's session (pass that session_id)")

    def open_session(self, session_id: str, user_id: str | None) -> Session:
        """Load the session or create it, in one step of the store; another user's is refused, never written."""
        return self.db.create_session(self._new(session_id, user_id))

    def peek_session(self, session_id: str, user_id: str | None) -> Session:
        """Like ``open_session`` but writes nothing: an absent session is the one a run would create."""
        session = self.db.get_session(session_id)
        if session is None:
            return self._new(session_id, user_id)
        check_session_owner(session.user_id, session.session_id, user_id)
        return session

    def _new(self, session_id: str, user_id: str | None) -> Session:
        runner = self.runner
        return Session(session_id=session_id, user_id=user_id, agent_id=runner.agent_id, agent_name=runner.name,
                       session_state=dict(runner.session_state))

    def supersede_cell(self, run: RunOutput) -> None:
        """A re-run cell replaces its previous run in the history; the old run is kept and marked."""
        session = self.db.get_session(run.session_id)
        if session is None:
            return
        previous_id = (session.metadata.get(CELLS_KEY) or {}).get(run.cell_id)
        if previous_id and previous_id != run.run_id:
            previous = self.db.get_run(previous_id)
            if previous is not None and previous.superseded_by is None:
                previous.superseded_by = run.run_id
                self.db.upsert_run(previous)
        # a merge patch: other cells' entries, written meanwhile by other threads or kernels, survive
        self.db.update_session(run.session_id, metadata_patch={CELLS_KEY: {run.cell_id: run.run_id}})

    # -- the active session ----------------------------------------------------------------------
    @property
    def active_session_id(self) -> str | None:
        return self.db.get_meta(ACTIVE_SESSION_KEY)

    def set_active_session(self, session_id: str | None) -> None:
        if session_id is not None:
            self.owned(session_id)
        self.db.set_meta(ACTIVE_SESSION_KEY, session_id)
        self.emit("active", session_id or "")

    # -- Agno's getters and changes --------------------------------------------------------------
    def get_session(self, session_id: str | None = None, user_id: str | None = None) -> Session:
        session = self.owned(self.current(session_id), user_id)
        session._load_runs = lambda: self.db.list_runs(session.session_id)
        return session

    def get_sessions(self, user_id: str | None = None, *, limit: int | None = None, offset: int = 0,
                     sort: str = "updated_at", descending: bool = True) -> list[Session]:
        check_count(limit, "limit")
        check_count(offset, "offset")
        user = user_id if user_id is not None else self.runner.user_id
        return self.db.list_sessions(user_id=user, limit=limit, offset=offset, sort=sort, descending=descending)

    def create_session(self, session_name: str | None = None, *, user_id: str | None = None,
                       session_state: dict[str, Any] | None = None, notebook: str | None = None,
                       metadata: dict[str, Any] | None = None) -> Session:
        if session_state is not None:
            check_state(session_state, "session_state")
        if session_name is not None:
            check_text(session_name, "session_name")
        check_user_id(user_id)
        runner = self.runner
        session = self.db.create_session(Session(  # the store names it: "cleanup (2)" if "cleanup" is taken
            session_name=session_name, user_id=user_id if user_id is not None else runner.user_id,
            agent_id=runner.agent_id, agent_name=runner.name, notebook=notebook,
            session_state={**runner.session_state, **(session_state or {})}, metadata=dict(metadata or {})))
        self.emit("session", session.session_id)
        return session

    def get_runs(self, session_id: str | None = None, *, last: int | None = None) -> list[RunOutput]:
        check_count(last, "last")
        sid = self.current(session_id)
        self.owned(sid)
        return self.db.list_runs(sid, last=last)

    def get_session_messages(self, session_id: str | None = None, last_n_runs: int | None = None,
                             limit: int | None = None, skip_roles: list[str] | None = None,
                             skip_statuses: list[Any] | None = None,
                             skip_history_messages: bool = True) -> list[Message]:
        check_count(last_n_runs, "last_n_runs")
        check_count(limit, "limit")
        return session_messages(self.get_runs(session_id), last_n_runs=last_n_runs, limit=limit,
                                skip_roles=skip_roles, skip_statuses=skip_statuses,
                                skip_history_messages=skip_history_messages)

    def get_session_state(self, session_id: str | None = None) -> dict[str, Any]:
        return self.owned(self.current(session_id)).session_state

    def update_session_state(self, session_state_updates: dict[str, Any], session_id: str | None = None, *,
                             remove: Iterable[str] = ()) -> dict[str, Any]:
        if not isinstance(session_state_updates, dict):
            raise TypeError("update_session_state(session_state_updates, session_id=None): "
                            "the updates come first and must be a dict")
        check_state(session_state_updates, "session_state")
        if isinstance(remove, str):
            raise TypeError("remove takes a collection of keys, not one string")
        sid = self.current(session_id)
        self.owned(sid)
        merged = self.db.update_session(sid, state_patch=session_state_updates,
                                        state_delete=list(remove)).session_state
        self.emit("session", sid)
        return merged

    def get_session_summary(self, session_id: str | None = None) -> SessionSummary | None:
        """A refresh already under way is waited for, so what the reply started is what the getter shows."""
        if self.runner.summarizer is not None:
            self.runner.summarizer.wait()
        return self.owned(self.current(session_id)).get_session_summary()

    def get_session_totals(self, session_id: str | None = None) -> tuple[int, Metrics]:
        sid = self.current(session_id)
        self.owned(sid)
        return self.db.session_totals(sid)

    def get_session_metrics(self, session_id: str | None = None) -> SessionMetrics:
        return SessionMetrics(**self.get_session_totals(session_id)[1].__dict__)

    def count_unowned_sessions(self) -> int:
        return sum(1 for s in self.db.list_sessions() if s.user_id is None)

    def get_session_name(self, session_id: str | None = None) -> str:
        return self.owned(self.current(session_id)).session_name or ""

    def set_session_name(self, session_id: str | None = None, autogenerate: bool = False,
                         session_name: str | None = None, *, model: Model | None = None) -> Session:
        sid = self.current(session_id)
        if autogenerate:
            session_name = generate_name(self.get_runs(sid), model or self.runner.model)
        if session_name is None or not check_text(session_name, "session_name").strip():
            raise InvalidInputError("a session name cannot be empty (or pass autogenerate=True)")
        self.owned(sid)
        session = self.db.update_session(sid, session_name=session_name.strip())  # made unique by the store
        self.emit("session", sid)
        return session

    def get_last_run_output(self, session_id: str | None = None) -> RunOutput | None:
        runs = [r for r in self.get_runs(session_id, last=20) if r.parent_run_id is None]
        if not runs:
            runs = [r for r in self.get_runs(session_id) if r.parent_run_id is None]
        return runs[-1] if runs else None

    def get_run_output(self, run_id: str, session_id: str | None = None) -> RunOutput | None:
        sid = self.current(session_id)
        self.owned(sid)
        run = self.db.get_run(run_id)
        return run if run is not None and run.session_id == sid else None

    def fork_session(self, session_id: str | None = None, run_id: str | None = None, *,
                     source_session_id: str | None = None, user_id: str | None = None,
                     session_name: str | None = None, metadata: dict[str, Any] | None = None) -> Session | str:
        agno_form = session_id is None
        session_id = session_id or source_session_id or self.current(None)
        source = self.owned(session_id, user_id)
        runs = runs_up_to(self.db.list_runs(session_id), run_id, session_id)
        if agno_form and not runs:
            raise ValueError("Source session has no runs to fork.")
        fork = self.db.create_session(Session(
            session_name=session_name or f"{source.label} (fork)", user_id=source.user_id,
            agent_id=source.agent_id, agent_name=source.agent_name, session_state=dict(source.session_state),
            notebook=source.notebook, summary=source.summary, metadata=dict(metadata or {}),
            forked_from={"session_id": session_id, "run_id": run_id or (runs[-1].run_id if runs else "")},
        ))
        for copied in fork_runs(runs, fork.session_id):
            self.db.upsert_run(copied)
        self.emit("session", fork.session_id)
        return fork.session_id if agno_form else fork

    def delete_session(self, session_id: str) -> bool:
        self.owned(session_id)
        deleted = self.db.delete_session(session_id)
        if self.active_session_id == session_id:
            self.db.set_meta(ACTIVE_SESSION_KEY, None)
        self.emit("deleted", session_id)
        return deleted
