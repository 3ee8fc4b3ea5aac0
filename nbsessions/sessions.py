"""Reading and managing sessions: listing, history, state, metrics, names, forks, deletion.

Split from the Agent so running a prompt and keeping sessions tidy can each be read on their own; every
method goes through ``self.db`` and checks the session's owner first.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from nbsessions.db.base import BaseDb, check_session_owner
from nbsessions.errors import InvalidInputError, SessionNotFoundError
from nbsessions.formatting import shorten
from nbsessions.llm.base import Model
from nbsessions.metrics import SessionMetrics
from nbsessions.schema import Message, Metrics, RunOutput, Session, SessionSummary, new_id
from nbsessions.transcript import session_messages
from nbsessions.validate import check_count, check_state, check_text, check_user_id

CELLS_KEY = "cells"  # session.metadata[CELLS_KEY] maps a notebook cell id to its newest run
Listener = Callable[[str, str], None]
TITLE_TOKENS = 24  # a title is a few words: a small model must not ramble for seconds
TITLE_REQUEST = "Give a title of at most 6 words, no quotes, for a chat that starts with:"
TITLE_WIDTH = 60
ACTIVE_SESSION_KEY = "active_session_id"  # in the store's meta table: the session new cells continue


class SessionsMixin:
    """Session management shared by everything that runs in sessions (the Agent today)."""

    db: BaseDb
    model: Model
    user_id: str | None
    session_id: str | None
    agent_id: str
    name: str | None
    session_state: dict[str, Any]
    _listeners: list[Listener]

    # -- events ---------------------------------------------------------------------------------
    def add_listener(self, listener: Listener, *, other_kernels: bool = False) -> None:
        """Call ``listener(event, session_id)`` after changes: "run", "session", "deleted", "active".

        This is how a panel stays live while cells run in the same kernel, without polling. With
        ``other_kernels=True`` it also hears other processes' changes to this user's sessions, on stores that
        can tell (PostgreSQL: LISTEN/NOTIFY), called from a background thread.
        """
        self._listeners.append(listener)
        if other_kernels:
            def relay(event: str, session_id: str, owner: str | None) -> None:
                user = self.user_id  # as it is now: `%agent user carol` makes the panel follow carol's writes
                if user is None or owner is None or owner == user:  # never another user's session
                    listener(event, session_id)

            if self.db.add_change_listener(relay):
                self._relays = [*getattr(self, "_relays", []), (listener, self.db, relay)]

    def remove_listener(self, listener: Listener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)
        relays = getattr(self, "_relays", [])
        for entry in [e for e in relays if e[0] == listener]:  # == : bound methods are made anew on each access
            relays.remove(entry)
            entry[1].remove_change_listener(entry[2])

    def _emit(self, event: str, session_id: str) -> None:
        for listener in list(self._listeners):
            listener(event, session_id)

    def _supersede_cell(self, run: RunOutput) -> None:
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

    @property
    def active_session_id(self) -> str | None:
        """The session that new notebook cells continue; remembered in the store across restarts."""
        return self.db.get_meta(ACTIVE_SESSION_KEY)

    def set_active_session(self, session_id: str | None) -> None:
        if session_id is not None:
            self._session(session_id)
        self.db.set_meta(ACTIVE_SESSION_KEY, session_id)
        self._emit("active", session_id or "")

    @staticmethod
    def _check_owner(session: Session, user_id: str | None) -> None:
        check_session_owner(session.user_id, session.session_id, user_id)

    def _session(self, session_id: str, user_id: str | None = None) -> Session:
        session = self.db.get_session(session_id)
        if session is None:
            raise SessionNotFoundError(f"no session {session_id!r} in {self.db!r}")
        self._check_owner(session, user_id if user_id is not None else self.user_id)
        return session

    def _run(self, run_id: str) -> RunOutput:
        run = self.db.get_run(run_id)
        if run is None:
            raise SessionNotFoundError(f"no run {run_id!r} in {self.db!r}")
        return run

    def _session_for_run(self, session_id: str | None) -> str:
        """The session a run goes to: the one given, else the runner's own, made and kept on first use (Agno)."""
        if session_id:
            return session_id
        if not self.session_id:
            self.session_id = new_id()
        return self.session_id

    def _check_parent(self, parent_run_id: Any, session_id: str | None) -> None:
        """A nested run's parent must be a run of the session it goes to, or nobody would ever see it."""
        if parent_run_id is None:
            return
        check_text(parent_run_id, "parent_run_id", empty=False)
        parent = self.db.get_run(parent_run_id)
        if parent is None or parent.session_id != (session_id or self.session_id):
            raise InvalidInputError(f"parent_run_id {parent_run_id!r} is not a run of this run's session: a nested "
                                    "run goes in its parent's session (pass that session_id)")

    def _open_session(self, session_id: str, user_id: str | None) -> Session:
        """Load the session or create it, in one step of the store; another user's is refused, never written."""
        return self.db.create_session(Session(session_id=session_id, user_id=user_id, agent_id=self.agent_id,
                                              agent_name=self.name, session_state=dict(self.session_state)))

    def _peek_session(self, session_id: str, user_id: str | None) -> Session:
        """Like ``_open_session`` but writes nothing: an absent session is the one a run would create."""
        session = self.db.get_session(session_id)
        if session is not None:
            self._check_owner(session, user_id)
            return session
        return Session(session_id=session_id, user_id=user_id, agent_id=self.agent_id, agent_name=self.name,
                       session_state=dict(self.session_state))

    def _current(self, session_id: str | None) -> str:
        """``session_id``, else the runner's own session (Agno's rule for every getter)."""
        sid = session_id or self.session_id
        if not sid:
            raise SessionNotFoundError("no session_id given and this agent has no session yet: "
                                       "run it once or pass session_id=...")
        return sid

    def get_session(self, session_id: str | None = None, user_id: str | None = None) -> Session:
        """The session (the agent's own when ``session_id`` is None); ``.runs`` reads its runs on first use."""
        session = self._session(self._current(session_id), user_id)
        session._load_runs = lambda: self.db.list_runs(session.session_id)
        return session

    def get_sessions(self, user_id: str | None = None, *, limit: int | None = None, offset: int = 0,
                     sort: str = "updated_at", descending: bool = True) -> list[Session]:
        """Sessions of ``user_id`` (default: the agent's user; ``None`` on both means every user's)."""
        user = user_id if user_id is not None else self.user_id
        check_count(limit, "limit")
        check_count(offset, "offset")
        return self.db.list_sessions(user_id=user, limit=limit, offset=offset, sort=sort,
                                     descending=descending)

    def create_session(self, session_name: str | None = None, *, user_id: str | None = None,
                       session_state: dict[str, Any] | None = None, notebook: str | None = None,
                       metadata: dict[str, Any] | None = None) -> Session:
        if session_state is not None:
            check_state(session_state, "session_state")
        if session_name is not None:
            check_text(session_name, "session_name")
        check_user_id(user_id)
        user_id = user_id if user_id is not None else self.user_id
        session = self.db.create_session(Session(  # the store names it: "cleanup (2)" if "cleanup" is taken
            session_name=session_name, user_id=user_id, agent_id=self.agent_id, agent_name=self.name,
            notebook=notebook, session_state={**self.session_state, **(session_state or {})},
            metadata=dict(metadata or {})))
        self._emit("session", session.session_id)
        return session

    def get_runs(self, session_id: str | None = None, *, last: int | None = None) -> list[RunOutput]:
        """Every run of the session — errors, cancelled, superseded and nested ones too — oldest first."""
        check_count(last, "last")
        sid = self._current(session_id)
        self._session(sid)
        return self.db.list_runs(sid, last=last)

    def get_chat_history(self, session_id: str | None = None, last_n_runs: int | None = None) -> list[Message]:
        """User and assistant messages of the session's runs, oldest first (Agno: every run status)."""
        return self.get_session_messages(session_id, last_n_runs=last_n_runs, skip_roles=["system", "tool"],
                                         skip_statuses=[])

    def get_session_messages(self, session_id: str | None = None, last_n_runs: int | None = None,
                             limit: int | None = None, skip_roles: list[str] | None = None,
                             skip_statuses: list[Any] | None = None,
                             skip_history_messages: bool = True) -> list[Message]:
        """Messages the session's runs sent and received, one system message first (Agno's ``get_messages``)."""
        check_count(last_n_runs, "last_n_runs")
        check_count(limit, "limit")
        return session_messages(self.get_runs(session_id), last_n_runs=last_n_runs, limit=limit,
                                skip_roles=skip_roles, skip_statuses=skip_statuses,
                                skip_history_messages=skip_history_messages)

    def get_session_state(self, session_id: str | None = None) -> dict[str, Any]:
        return self._session(self._current(session_id)).session_state

    def update_session_state(self, session_state_updates: dict[str, Any], session_id: str | None = None, *,
                             remove: Iterable[str] = ()) -> dict[str, Any]:
        """Merge the updates over the stored state (top-level keys), drop the ``remove`` keys, in one write.

        Agno's argument order: the updates first, then the session (the agent's own when None).
        """
        if not isinstance(session_state_updates, dict):
            raise TypeError("update_session_state(session_state_updates, session_id=None): "
                            "the updates come first and must be a dict")
        check_state(session_state_updates, "session_state")
        if isinstance(remove, str):
            raise TypeError("remove takes a collection of keys, not one string")
        sid = self._current(session_id)
        self._session(sid)
        merged = self.db.update_session(sid, state_patch=session_state_updates,
                                        state_delete=list(remove)).session_state
        self._emit("session", sid)
        return merged

    def get_session_summary(self, session_id: str | None = None) -> SessionSummary | None:
        """The running summary (``enable_session_summaries``) with its topics; None until the first refresh.

        A refresh already under way is waited for, so what the reply started is what the getter shows.
        """
        summarizer = getattr(self, "summarizer", None)
        if summarizer is not None:
            summarizer.wait()
        return self._session(self._current(session_id)).get_session_summary()

    def get_session_metrics(self, session_id: str | None = None) -> SessionMetrics:
        """The session's completed runs' metrics summed (Agno's ``SessionMetrics``)."""
        sid = self._current(session_id)
        self._session(sid)
        return SessionMetrics(**self.db.session_totals(sid)[1].__dict__)

    def get_session_totals(self, session_id: str | None = None) -> tuple[int, Metrics]:
        """Top-level runs and metrics summed over completed ones: one row of a session list, owner-checked."""
        sid = self._current(session_id)
        self._session(sid)
        return self.db.session_totals(sid)

    def count_unowned_sessions(self) -> int:
        """Sessions that belong to no user: hidden while a user is set, so a list can say they exist."""
        return sum(1 for s in self.db.list_sessions() if s.user_id is None)

    def get_session_name(self, session_id: str | None = None) -> str:
        """The session's name, "" when it has none (as Agno)."""
        return self._session(self._current(session_id)).session_name or ""

    def set_session_name(self, session_id: str | None = None, autogenerate: bool = False,
                         session_name: str | None = None, *, model: Model | None = None) -> Session:
        """Name the session, or let a model title it from its first prompt (``autogenerate=True``): ``model``
        (the one that ran the cell, in the magic), else the agent's."""
        sid = self._current(session_id)
        if autogenerate:
            session_name = self._generate_name(sid, model or self.model)
        if session_name is None or not check_text(session_name, "session_name").strip():
            raise InvalidInputError("a session name cannot be empty (or pass autogenerate=True)")
        self._session(sid)
        session = self.db.update_session(sid, session_name=session_name.strip())  # made unique by the store
        self._emit("session", sid)
        return session

    def get_last_run_output(self, session_id: str | None = None) -> RunOutput | None:
        """The newest top-level run of the session, whatever its status; None when it has none."""
        runs = [r for r in self.get_runs(session_id, last=20) if r.parent_run_id is None]
        if not runs:
            runs = [r for r in self.get_runs(session_id) if r.parent_run_id is None]
        return runs[-1] if runs else None

    def get_run_output(self, run_id: str, session_id: str | None = None) -> RunOutput | None:
        """The run, if it belongs to the session (the agent's own when None); None otherwise, as Agno."""
        sid = self._current(session_id)
        self._session(sid)
        run = self.db.get_run(run_id)
        return run if run is not None and run.session_id == sid else None

    def _generate_name(self, session_id: str, model: Model) -> str:
        """A short title from the first prompt, asked for in one small whole reply; offline models get the
        prompt's first words."""
        runs = self.get_runs(session_id, last=None)
        first = next((r.input for r in runs if r.input), "")
        if not first:
            raise ValueError("the session has no runs to name it from")
        if not model.is_scripted:
            ask = [Message(role="user", content=f"{TITLE_REQUEST}\n\n{first[:2000]}")]
            reply = model.with_max_tokens(TITLE_TOKENS).complete(ask)
            title = short_title("".join(x for x in reply if isinstance(x, str)))
            if title and not repeats_title_request(title):
                return title
        words = first.split()
        return " ".join(words[:6]) + ("…" if len(words) > 6 else "")

    def fork_session(self, session_id: str | None = None, run_id: str | None = None, *,
                     source_session_id: str | None = None, user_id: str | None = None,
                     session_name: str | None = None, metadata: dict[str, Any] | None = None) -> Session | str:
        """Copy the session up to ``run_id`` (all runs when None) into a new session that remembers its origin.

        Agno's form, ``fork_session(source_session_id=..., user_id=...)`` (or no session at all: the agent's
        own), returns the new session's id as Agno does; ``fork_session(session_id, ...)`` returns the Session.
        """
        agno_form = session_id is None
        session_id = session_id or source_session_id or self._current(None)
        source = self._session(session_id, user_id)
        runs = _runs_up_to(self.db.list_runs(session_id), run_id, session_id)
        if agno_form and not runs:
            raise ValueError("Source session has no runs to fork.")
        fork = self.db.create_session(Session(
            session_name=session_name or f"{source.label} (fork)", user_id=source.user_id,
            agent_id=source.agent_id, agent_name=source.agent_name, session_state=dict(source.session_state),
            notebook=source.notebook, summary=source.summary, metadata=dict(metadata or {}),
            forked_from={"session_id": session_id, "run_id": run_id or (runs[-1].run_id if runs else "")},
        ))
        new_ids = {r.run_id: new_id() for r in runs}
        for run in runs:
            copy = RunOutput.from_dict({**run.to_dict(), "run_id": new_ids[run.run_id],
                                        "session_id": fork.session_id})
            copy.superseded_by = new_ids.get(run.superseded_by or "")
            copy.variant_of = new_ids.get(run.variant_of or "")
            copy.parent_run_id = new_ids.get(run.parent_run_id or "")
            for step in copy.steps:  # from_dict made them copies: changing them leaves ``run`` as it was
                step.run_id = new_ids.get(step.run_id or "", step.run_id)
            copy.messages = [_in_fork(m, new_ids) for m in run.messages]
            self.db.upsert_run(copy)
        self._emit("session", fork.session_id)
        return fork.session_id if agno_form else fork

    def delete_session(self, session_id: str) -> bool:
        """Delete the session and its runs; if it was the active one, no session is active afterwards."""
        self._session(session_id)
        deleted = self.db.delete_session(session_id)
        if self.active_session_id == session_id:
            self.db.set_meta(ACTIVE_SESSION_KEY, None)
        self._emit("deleted", session_id)
        return deleted


def _in_fork(message: Message, new_ids: dict[str, str]) -> Message:
    """History from a copied run refers to the copy (stored as a reference); from any other run, stored in full."""
    if message.origin is None:
        return message
    run_id, index = message.origin
    return message.copy(origin=(new_ids[run_id], index) if run_id in new_ids else None)


def _runs_up_to(runs: list[RunOutput], run_id: str | None, session_id: str) -> list[RunOutput]:
    """Top-level runs up to ``run_id`` (all when None), with the runs nested under them (members, steps)."""
    if run_id is None:
        return runs
    top = [r.run_id for r in runs if r.parent_run_id is None]
    if run_id not in top:
        raise SessionNotFoundError(f"run {run_id!r} is not a top-level run of session {session_id[:8]}")
    kept = set(top[: top.index(run_id) + 1])
    for run in runs:  # parents are stored before their nested runs, so one pass finds every level
        if run.parent_run_id in kept:
            kept.add(run.run_id)
    return [r for r in runs if r.run_id in kept]


def repeats_title_request(title: str) -> bool:
    """Whether a title repeats four words in a row of the request for it (an echoing server, a model that
    misread it): such a title names nothing, and the prompt's first words are used instead."""
    asked = re.findall(r"\w+", TITLE_REQUEST.lower())
    said = " " + " ".join(re.findall(r"\w+", title.lower())) + " "
    return any(f" {' '.join(asked[i:i + 4])} " in said for i in range(len(asked) - 3))


def short_title(reply: str) -> str:
    """The first line of a model's title, without Markdown, quotes or a "Title:" label, at most 60 characters."""
    line = next((x for x in reply.splitlines() if x.strip()), "")
    line = re.sub(r"^\s*(#+|[-*]\s)?\s*(\*\*)?(title\s*:)?", "", line, flags=re.I)
    while line != (trimmed := line.strip().strip("*_`\"'“”‘’").rstrip(".")):
        line = trimmed
    return shorten(line, TITLE_WIDTH) if line else ""
