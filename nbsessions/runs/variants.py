"""Variants: the same prompt asked again in its slot (``regenerate``), and choosing which answer history keeps.

Every variant is an ordinary run in the same session; the engine launches it (``RunEngine.regenerate``).
"""

from __future__ import annotations

from nbsessions.llm.base import Model
from nbsessions.records.liveness import current_writer
from nbsessions.records.schema import RunOutput, RunStatus
from nbsessions.runs.sessions import Sessions


def regenerate_target(sessions: Sessions, session_id: str | None, run_id: str | None) -> RunOutput:
    """``run_id``'s run, else the newest run of the session (``session_id``, the runner's or the active one)."""
    if run_id is not None:
        run = sessions.stored_run(run_id)
        sessions.owned(run.session_id)
        return run
    sid = session_id or sessions.runner.session_id or sessions.active_session_id
    if sid is None:
        raise ValueError("no session given and no active session: nothing to regenerate")
    runs = [r for r in sessions.get_runs(sid, last=20) if r.superseded_by is None and r.input]
    if not runs:
        raise ValueError(f"session {sid[:8]} has no run to regenerate")
    return runs[-1]


def variant_run(target: RunOutput, model: Model, kind: str, agent_name: str | None, agent_id: str) -> RunOutput:
    """A new run of ``target``'s slot: its context up to the prompt, as it was sent, on ``model``."""
    prompt_at = max(i for i, m in enumerate(target.messages) if m.role == "user" and not m.from_history)
    return RunOutput(
        session_id=target.session_id, user_id=target.user_id, status=RunStatus.running, input=target.input,
        writer=current_writer(),
        messages=[m.copy() for m in target.messages[: prompt_at + 1]],  # copies keep history references
        model=model.id, provider=model.provider, model_origin=model.origin(), cell_id=target.cell_id,
        kind=kind, agent_name=agent_name, agent_id=agent_id,
        variant_of=target.variant_of or target.run_id, tags=list(target.tags),
    )


def variants(sessions: Sessions, run_id: str) -> list[RunOutput]:
    """Every answer to one prompt slot (the original and its regenerations), oldest first."""
    run = sessions.stored_run(run_id)
    slot = run.variant_of or run.run_id
    return [r for r in sessions.get_runs(run.session_id) if slot in (r.run_id, r.variant_of)]


def choose_variant(sessions: Sessions, run_id: str) -> RunOutput:
    """Keep this variant in the history; its siblings stay stored, marked as superseded by it."""
    group = variants(sessions, run_id)
    chosen = next(r for r in group if r.run_id == run_id)
    if chosen.status != RunStatus.completed:
        raise ValueError(f"run {run_id[:8]} is {chosen.status.value}: only a completed variant can be kept")
    for run in group:
        wanted = None if run.run_id == run_id else run_id
        if run.superseded_by != wanted:
            run.superseded_by = wanted
            sessions.db.upsert_run(run)
    sessions.emit("run", chosen.session_id)
    return sessions.db.get_run(run_id)
