"""Agno's session methods, written out once for Agent, Team and Workflow: each a documented delegation to the
runner's ``Sessions`` (``sessions.py``), and its ``a``-prefixed twin for async code.

The twins run the getter in a worker thread (``asyncio.to_thread``): a store that answers slowly (a remote
PostgreSQL, a busy disk) would otherwise stall every task of the event loop. A twin calls the runner's own sync
method, so a Team's additions (its members' runs) hold for both.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from nbsessions.llm.base import Model
from nbsessions.records.metrics import SessionMetrics
from nbsessions.records.schema import Message, Metrics, RunOutput, Session, SessionSummary
from nbsessions.runs.sessions import Listener, Sessions


class SessionsApi:
    """The session getters and changes every runner offers; ``sessions`` does the work."""

    sessions: Sessions

    # -- live updates ----------------------------------------------------------------------------
    def add_listener(self, listener: Listener, *, other_kernels: bool = False) -> None:
        """Call ``listener(event, session_id)`` after changes: "run", "session", "deleted", "active".

        This is how a panel stays live while cells run in the same kernel, without polling. With
        ``other_kernels=True`` it also hears other processes' changes to this user's sessions, on stores that
        can tell (PostgreSQL: LISTEN/NOTIFY), called from a background thread.
        """
        self.sessions.add_listener(listener, other_kernels=other_kernels)

    def remove_listener(self, listener: Listener) -> None:
        self.sessions.remove_listener(listener)

    @property
    def active_session_id(self) -> str | None:
        """The session that new notebook cells continue; remembered in the store across restarts."""
        return self.sessions.active_session_id

    def set_active_session(self, session_id: str | None) -> None:
        self.sessions.set_active_session(session_id)

    # -- reading ---------------------------------------------------------------------------------
    def get_session(self, session_id: str | None = None, user_id: str | None = None) -> Session:
        """The session (the runner's own when ``session_id`` is None); ``.runs`` reads its runs on first use."""
        return self.sessions.get_session(session_id, user_id)

    def get_sessions(self, user_id: str | None = None, *, limit: int | None = None, offset: int = 0,
                     sort: str = "updated_at", descending: bool = True) -> list[Session]:
        """Sessions of ``user_id`` (default: the runner's user; ``None`` on both means every user's)."""
        return self.sessions.get_sessions(user_id, limit=limit, offset=offset, sort=sort, descending=descending)

    def get_runs(self, session_id: str | None = None, *, last: int | None = None) -> list[RunOutput]:
        """Every run of the session — errors, cancelled, superseded and nested ones too — oldest first."""
        return self.sessions.get_runs(session_id, last=last)

    def get_chat_history(self, session_id: str | None = None, last_n_runs: int | None = None) -> list[Message]:
        """User and assistant messages of the session's runs, oldest first (Agno: every run status)."""
        return self.sessions.get_session_messages(session_id, last_n_runs=last_n_runs,
                                                  skip_roles=["system", "tool"], skip_statuses=[])

    def get_session_messages(self, session_id: str | None = None, last_n_runs: int | None = None,
                             limit: int | None = None, skip_roles: list[str] | None = None,
                             skip_statuses: list[Any] | None = None,
                             skip_history_messages: bool = True) -> list[Message]:
        """Messages the session's runs sent and received, one system message first (Agno's ``get_messages``)."""
        return self.sessions.get_session_messages(session_id, last_n_runs, limit, skip_roles, skip_statuses,
                                                  skip_history_messages)

    def get_session_state(self, session_id: str | None = None) -> dict[str, Any]:
        """The session's stored state."""
        return self.sessions.get_session_state(session_id)

    def get_session_summary(self, session_id: str | None = None) -> SessionSummary | None:
        """The running summary (``enable_session_summaries``) with its topics; None until the first refresh."""
        return self.sessions.get_session_summary(session_id)

    def get_session_metrics(self, session_id: str | None = None) -> SessionMetrics:
        """The session's completed runs' metrics summed (Agno's ``SessionMetrics``)."""
        return self.sessions.get_session_metrics(session_id)

    def get_session_totals(self, session_id: str | None = None) -> tuple[int, Metrics]:
        """Top-level runs and metrics summed over completed ones: one row of a session list, owner-checked."""
        return self.sessions.get_session_totals(session_id)

    def count_unowned_sessions(self) -> int:
        """Sessions that belong to no user: hidden while a user is set, so a list can say they exist."""
        return self.sessions.count_unowned_sessions()

    def get_session_name(self, session_id: str | None = None) -> str:
        """The session's name, "" when it has none (as Agno)."""
        return self.sessions.get_session_name(session_id)

    def get_last_run_output(self, session_id: str | None = None) -> RunOutput | None:
        """The newest top-level run of the session, whatever its status; None when it has none."""
        return self.sessions.get_last_run_output(session_id)

    def get_run_output(self, run_id: str, session_id: str | None = None) -> RunOutput | None:
        """The run, if it belongs to the session (the runner's own when None); None otherwise, as Agno."""
        return self.sessions.get_run_output(run_id, session_id)

    # -- changing --------------------------------------------------------------------------------
    def create_session(self, session_name: str | None = None, *, user_id: str | None = None,
                       session_state: dict[str, Any] | None = None, notebook: str | None = None,
                       metadata: dict[str, Any] | None = None) -> Session:
        """A new empty session (named uniquely by the store: "cleanup (2)" when "cleanup" is taken)."""
        return self.sessions.create_session(session_name, user_id=user_id, session_state=session_state,
                                            notebook=notebook, metadata=metadata)

    def update_session_state(self, session_state_updates: dict[str, Any], session_id: str | None = None, *,
                             remove: Iterable[str] = ()) -> dict[str, Any]:
        """Merge the updates over the stored state (top-level keys), drop the ``remove`` keys, in one write.

        Agno's argument order: the updates first, then the session (the runner's own when None).
        """
        return self.sessions.update_session_state(session_state_updates, session_id, remove=remove)

    def set_session_name(self, session_id: str | None = None, autogenerate: bool = False,
                         session_name: str | None = None, *, model: Model | None = None) -> Session:
        """Name the session, or let a model title it from its first prompt (``autogenerate=True``): ``model``
        (the one that ran the cell, in the magic), else the runner's."""
        return self.sessions.set_session_name(session_id, autogenerate, session_name, model=model)

    def fork_session(self, session_id: str | None = None, run_id: str | None = None, *,
                     source_session_id: str | None = None, user_id: str | None = None,
                     session_name: str | None = None, metadata: dict[str, Any] | None = None) -> Session | str:
        """Copy the session up to ``run_id`` (all runs when None) into a new session that remembers its origin.

        Agno's form, ``fork_session(source_session_id=..., user_id=...)`` (or no session at all: the runner's
        own), returns the new session's id as Agno does; ``fork_session(session_id, ...)`` returns the Session.
        """
        return self.sessions.fork_session(session_id, run_id, source_session_id=source_session_id,
                                          user_id=user_id, session_name=session_name, metadata=metadata)

    def delete_session(self, session_id: str) -> bool:
        """Delete the session and its runs; if it was the active one, no session is active afterwards."""
        return self.sessions.delete_session(session_id)

    # -- the same for async code -----------------------------------------------------------------
    async def aget_session(self, session_id: str | None = None, user_id: str | None = None) -> Session:
        """``get_session`` for async code."""
        return await asyncio.to_thread(self.get_session, session_id, user_id)

    async def aget_sessions(self, user_id: str | None = None, *, limit: int | None = None, offset: int = 0,
                            sort: str = "updated_at", descending: bool = True) -> list[Session]:
        """``get_sessions`` for async code."""
        return await asyncio.to_thread(self.get_sessions, user_id, limit=limit, offset=offset, sort=sort,
                                       descending=descending)

    async def aget_runs(self, session_id: str | None = None, *, last: int | None = None) -> list[RunOutput]:
        """``get_runs`` for async code."""
        return await asyncio.to_thread(self.get_runs, session_id, last=last)

    async def aget_chat_history(self, session_id: str | None = None,
                                last_n_runs: int | None = None) -> list[Message]:
        """``get_chat_history`` for async code."""
        return await asyncio.to_thread(self.get_chat_history, session_id, last_n_runs)

    async def aget_session_messages(self, session_id: str | None = None, last_n_runs: int | None = None,
                                    limit: int | None = None, skip_roles: list[str] | None = None,
                                    skip_statuses: list[Any] | None = None,
                                    skip_history_messages: bool = True) -> list[Message]:
        """``get_session_messages`` for async code."""
        return await asyncio.to_thread(self.get_session_messages, session_id, last_n_runs, limit, skip_roles,
                                       skip_statuses, skip_history_messages)

    async def aget_session_state(self, session_id: str | None = None) -> dict[str, Any]:
        """``get_session_state`` for async code."""
        return await asyncio.to_thread(self.get_session_state, session_id)

    async def aget_session_summary(self, session_id: str | None = None) -> SessionSummary | None:
        """``get_session_summary`` for async code."""
        return await asyncio.to_thread(self.get_session_summary, session_id)

    async def aget_session_metrics(self, session_id: str | None = None) -> SessionMetrics:
        """``get_session_metrics`` for async code."""
        return await asyncio.to_thread(self.get_session_metrics, session_id)

    async def aget_session_name(self, session_id: str | None = None) -> str:
        """``get_session_name`` for async code."""
        return await asyncio.to_thread(self.get_session_name, session_id)

    async def aget_last_run_output(self, session_id: str | None = None) -> RunOutput | None:
        """``get_last_run_output`` for async code."""
        return await asyncio.to_thread(self.get_last_run_output, session_id)

    async def aget_run_output(self, run_id: str, session_id: str | None = None) -> RunOutput | None:
        """``get_run_output`` for async code."""
        return await asyncio.to_thread(self.get_run_output, run_id, session_id)

    async def aupdate_session_state(self, session_state_updates: dict[str, Any], session_id: str | None = None,
                                    *, remove: Iterable[str] = ()) -> dict[str, Any]:
        """``update_session_state`` for async code."""
        return await asyncio.to_thread(self.update_session_state, session_state_updates, session_id, remove=remove)

    async def aset_session_name(self, session_id: str | None = None, autogenerate: bool = False,
                                session_name: str | None = None, *, model: Model | None = None) -> Session:
        """``set_session_name`` for async code."""
        return await asyncio.to_thread(self.set_session_name, session_id, autogenerate, session_name, model=model)

    async def afork_session(self, session_id: str | None = None, run_id: str | None = None, *,
                            source_session_id: str | None = None, user_id: str | None = None,
                            session_name: str | None = None,
                            metadata: dict[str, Any] | None = None) -> Session | str:
        """``fork_session`` for async code."""
        return await asyncio.to_thread(self.fork_session, session_id, run_id, source_session_id=source_session_id,
                                       user_id=user_id, session_name=session_name, metadata=metadata)

    async def adelete_session(self, session_id: str) -> bool:
        """``delete_session`` for async code."""
        return await asyncio.to_thread(self.delete_session, session_id)
