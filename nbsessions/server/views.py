"""What the sidebar receives: sessions and runs as plain JSON rows, and the search over names, prompts and replies.

Rows carry only what the sidebar shows. Replies go out as the stored Markdown text: the browser renders them with
JupyterLab's own sanitising renderer, as untrusted output.
"""

from __future__ import annotations

from typing import Any

from nbsessions.records import formatting as fmt
from nbsessions.records.metrics import Metrics
from nbsessions.records.schema import RunOutput, Session
from nbsessions.runs.agent import Agent
from nbsessions.runs.core.context import newest_top_level


def words(query: str | None) -> list[str]:
    """The search's words, lower-cased; every one must appear somewhere in a session for it to match."""
    return [w for w in (query or "").lower().split() if w]


def session_matches(agent: Agent, session: Session, wanted: list[str]) -> bool:
    """True when each word is in the session's name or in one of its runs' prompts or replies (any case)."""
    if not wanted:
        return True
    missing = [w for w in wanted if w not in (session.session_name or "").lower()]
    for run in agent.get_runs(session.session_id) if missing else ():
        text = f"{run.input}\n{run.content}".lower()
        missing = [w for w in missing if w not in text]
        if not missing:
            break
    return not missing


def shown(m: Metrics) -> dict[str, Any]:
    """Tokens, cost and duration spelled by ``records.formatting``, as the footer, CLI and panel spell them: the
    sidebar shows these strings rather than formatting the numbers again in TypeScript, so it cannot drift."""
    return {"tokens_estimated": m.tokens_estimated, "tokens_text": fmt.tokens(m.total_tokens, m.tokens_estimated),
            "cost_text": fmt.cost(m.cost), "duration_text": fmt.seconds(m.duration)}


def session_row(agent: Agent, session: Session) -> dict[str, Any]:
    count, metrics = agent.get_session_totals(session.session_id)
    return {"session_id": session.session_id, "name": session.session_name or "", "user_id": session.user_id,
            "agent_name": session.agent_name, "created_at": session.created_at, "updated_at": session.updated_at,
            "runs": count, "total_tokens": metrics.total_tokens, "cost": metrics.cost, **shown(metrics)}


def list_sessions(agent: Agent, query: str | None) -> list[dict[str, Any]]:
    """The user's sessions, most recently updated first, that match the query."""
    wanted = words(query)
    return [session_row(agent, s) for s in agent.get_sessions() if session_matches(agent, s, wanted)]


def run_row(run: RunOutput) -> dict[str, Any]:
    m = run.metrics
    return {"run_id": run.run_id, "created_at": run.created_at, "status": run.status.value, "input": run.input,
            "content": run.content, "model": run.model, "provider": run.provider, "error": run.error,
            "input_tokens": m.input_tokens, "output_tokens": m.output_tokens, "total_tokens": m.total_tokens,
            "cost": m.cost, "duration": m.duration, "cell_id": run.cell_id, "execution_count": run.execution_count,
            "superseded_by": run.superseded_by, "kind": run.kind, "agent_name": run.agent_name, **shown(m)}


def list_runs(agent: Agent, session_id: str, last: int) -> dict[str, Any]:
    """One session (owner-checked by the Agent) and its newest ``last`` top-level runs, newest first; ``more``
    says older ones exist. Only those runs are read: a session of thousands of runs costs what its page costs."""
    row = session_row(agent, agent.get_session(session_id))
    runs = newest_top_level(agent.db, session_id, last)  # team members' and steps' runs do not fill the page
    return {"session": row, "runs": [run_row(r) for r in reversed(runs)], "more": row["runs"] > len(runs)}
