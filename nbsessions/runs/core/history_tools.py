"""Tools through which the model reads history itself (Agno's ``read_chat_history`` and ``search_session_history``).

Instead of sending history with every prompt, the model may ask for it: the current session's messages, or the
user's other sessions (previews, then one in full). They never reach another user's sessions.
"""

from __future__ import annotations

import asyncio
import functools
import json
from typing import Any, Protocol

from nbsessions.db.base import BaseDb
from nbsessions.records.schema import RunOutput, Session
from nbsessions.records.transcript import session_messages
from nbsessions.runs.core.tools import RunContext, Tool, make_tool


class Owner(Protocol):
    """What the tools read of the agent that has them (the run engine passes the agent's ``Sessions``)."""

    @property
    def db(self) -> BaseDb: ...
    def get_runs(self, session_id: str | None = None, *, last: int | None = None) -> list[RunOutput]: ...

PREVIEW_CHARS = 200


def _store_tool(fn: Any) -> Tool:
    """A tool that reads the store: under ``arun`` it runs in a worker thread, never on the event loop."""
    tool = make_tool(fn)
    tool.async_function = functools.partial(asyncio.to_thread, fn)
    return tool


def _short(text: str | None) -> str:
    text = text or ""
    return text if len(text) <= PREVIEW_CHARS else text[:PREVIEW_CHARS] + "..."


def chat_history_tool(owner: Owner) -> Tool:
    def get_chat_history(run_context: RunContext, num_chats: int | None = None) -> str:
        """Use this function to get the chat history between the user and agent.

        num_chats: the number of chats to return (each chat is one user and one agent message); all when omitted
        """
        runs = [r for r in owner.get_runs(run_context.session_id) if r.run_id != run_context.run_id]
        messages = session_messages(runs, skip_roles=["system", "tool"])
        history = [{"role": m.role, "content": m.content} for m in messages]
        if num_chats is not None:
            history = history[-2 * num_chats:] if num_chats > 0 else []
        return json.dumps(history, ensure_ascii=False)

    return _store_tool(get_chat_history)


def _own_sessions(owner: Owner, user_id: str | None, limit: int) -> list[Session]:
    """The user's sessions, newest first; with no user, only sessions that have none (never someone else's)."""
    sessions = owner.db.list_sessions(user_id=user_id, limit=None if user_id is None else limit,
                                      sort="created_at", descending=True)
    if user_id is None:
        sessions = [s for s in sessions if s.user_id is None][:limit]
    return sessions


def past_session_tools(owner: Owner, num_sessions: int | None, num_runs: int = 3) -> list[Tool]:
    limit = num_sessions if num_sessions is not None else 20

    def search_past_sessions(run_context: RunContext) -> str:
        """List previous chat sessions with short previews.

        Use read_past_session to read the full conversation for a specific session.
        """
        results = []
        for session in _own_sessions(owner, run_context.user_id, limit + 1):
            if session.session_id == run_context.session_id:
                continue
            runs = [r for r in owner.db.list_runs(session.session_id) if r.is_history][:num_runs]
            if runs:
                results.append({"session_id": session.session_id, "session_name": session.session_name,
                                "created_at": session.created_at,
                                "runs": [{"user": _short(r.input), "assistant": _short(r.content)} for r in runs]})
        return json.dumps(results[:limit], ensure_ascii=False)

    def read_past_session(run_context: RunContext, session_id: str, num_runs: int | None = None) -> str:
        """Read the full conversation from a previous session (find it with search_past_sessions first).

        session_id: the session to read, from the search results
        num_runs: the most runs to include; all when omitted
        """
        session = owner.db.get_session(session_id)
        if session is None or session.user_id != run_context.user_id:
            return "No such session."
        runs = [r for r in owner.db.list_runs(session_id) if r.is_history]
        if num_runs is not None:
            runs = runs[:num_runs]
        return "\n\n".join(f"User: {r.input}\nAssistant: {r.content}" for r in runs) or "The session is empty."

    return [_store_tool(search_past_sessions), _store_tool(read_past_session)]
