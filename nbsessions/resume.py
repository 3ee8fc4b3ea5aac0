"""Resuming a paused run: every answer checked against the stored run before anything runs again.

Split from the Agent so the rules for continuing (which run, whose answers, on which model) read at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nbsessions import run_writes
from nbsessions.errors import RunNotPausedError, SessionNotFoundError
from nbsessions.execution import Execution
from nbsessions.hitl import apply_shortcuts, check_answered, merge_answers, paused_run_reference
from nbsessions.liveness import current_writer
from nbsessions.schema import RunOutput, RunStatus

if TYPE_CHECKING:
    from nbsessions.llm.base import Model
    from nbsessions.requirement import RunRequirement


def resume(agent: Any, run_response: RunOutput | str | None = None, *, run_id: str | None = None,
           requirements: list[RunRequirement] | None = None, session_id: str | None = None,
           approve: bool | None = None, user_input: dict[str, Any] | None = None,
           results: dict[str, str] | None = None, model: Model | None = None) -> Execution:
    """The execution that continues ``agent``'s paused run; nothing runs unless every answer is there."""
    run_id, given = paused_run_reference(run_response, run_id, requirements)
    run = agent._run(run_id)
    if session_id and session_id != run.session_id:
        raise SessionNotFoundError(f"run {run_id[:8]} is not in session {session_id[:8]}")
    session = agent._session(run.session_id)
    if run.status == RunStatus.running:
        raise RunNotPausedError(f"run {run_id[:8]} is no longer paused: another continue_run is running it")
    if run.status != RunStatus.paused:
        raise RunNotPausedError(f"run {run_id[:8]} is {run.status.value}, not paused: nothing to continue")
    pending = [r for r in run.requirements if not r.resolved]
    merge_answers(run.requirements, given)
    apply_shortcuts(pending, approve, user_input or {}, results or {})
    check_answered(pending, run.run_id)
    model = model or agent.model_of(run)
    run.model, run.provider, run.model_origin = model.id, model.provider, model.origin()
    execution = agent._start(run, model, session.session_state)
    execution.resolve()
    execution.continued = True
    run.status, run.writer = RunStatus.running, current_writer()
    execution.begin = lambda e: run_writes.claim(agent.db, e.run, agent._emit)  # once, as the stream starts
    return execution
