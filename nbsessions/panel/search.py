"""Finding sessions by what was said in them: the panel's filter also matches words in prompts and replies.

Each session's prompts and replies are read once, through the Agent (owner-checked), and kept as one lower-cased
text, remembered with the session's ``updated_at``: a session that has not changed since is never read again, so
after the first search each keystroke is a substring test per session (see ``benchmarks/bench_search.py``).
"""

from __future__ import annotations

from nbsessions.agent import Agent
from nbsessions.errors import NbSessionsError
from nbsessions.schema import Session


class ContentIndex:
    """Lower-cased prompts and replies per session, refreshed when a session's ``updated_at`` moves on."""

    def __init__(self, agent: Agent) -> None:
        self._agent = agent
        self._texts: dict[str, tuple[float, str]] = {}

    def text(self, session: Session) -> str:
        known = self._texts.get(session.session_id)
        if known is not None and known[0] == session.updated_at:
            return known[1]
        runs = self._agent.get_runs(session.session_id)
        text = "\n".join(part for run in runs for part in (run.input or "", run.content or "") if part).lower()
        self._texts[session.session_id] = (session.updated_at, text)
        return text

    def matches(self, session: Session, needle: str) -> bool:
        """``needle`` (lower case) in a prompt or reply of ``session`` (not when it went meanwhile)."""
        try:
            return needle in self.text(session)
        except NbSessionsError:  # deleted by another kernel since it was listed
            return False

    def forget(self, keep: set[str]) -> None:
        """Drop what is kept of sessions no longer listed (deleted, or another user's now)."""
        for session_id in set(self._texts) - keep:
            del self._texts[session_id]
