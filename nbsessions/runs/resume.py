"""Resuming a paused run: every answer checked against the stored run before anything runs again.

Split from the engine so the rules for continuing (which run, whose answers, on which model) read at once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from nbsessions.records.errors import RunNotPausedError, SessionNotFoundError
from nbsessions.records.schema import RunOutput, RunStatus, Session
from nbsessions.runs.core.hitl import apply_shortcuts, check_answered, merge_answers, paused_run_reference
from nbsessions.runs.sessions import Sessions

if TYPE_CHECKING:
    from nbsessions.llm.base import Model
    from nbsessions.records.requirement import RunRequirement


def answered_run(sessions: Sessions, run_response: RunOutput | str | None = None, *,
                 default_model: Callable[[RunOutput], Model], run_id: str | None = None,
                 requirements: list[RunRequirement] | None = None, session_id: str | None = None,
                 approve: bool | None = None, user_input: dict[str, Any] | None = None,
                 results: dict[str, str] | None = None, model: Model | None = None
                 ) -> tuple[RunOutput, Model, Session]:
    """The paused run with every answer applied, the model it continues on, and its session; refused — with
    nothing run and the run still paused — unless it is paused, the caller's, and fully answered."""
    run_id, given = paused_run_reference(run_response, run_id, requirements)
    run = sessions.stored_run(run_id)
    if session_id and session_id != run.session_id:
        raise SessionNotFoundError(f"run {run_id[:8]} is not in session {session_id[:8]}")
    session = sessions.owned(run.session_id)
    if run.status == RunStatus.running:
        raise RunNotPausedError(f"run {run_id[:8]} is no longer paused: another continue_run is running it")
    if run.status != RunStatus.paused:
        raise RunNotPausedError(f"run {run_id[:8]} is {run.status.value}, not paused: nothing to continue")
    pending = [r for r in run.requirements if not r.resolved]
    merge_answers(run.requirements, given)
    apply_shortcuts(pending, approve, user_input or {}, results or {})
    check_answered(pending, run.run_id)
    model = model or default_model(run)
    run.model, run.provider, run.model_origin = model.id, model.provider, model.origin()
    return run, model, session
