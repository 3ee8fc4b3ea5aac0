"""Workflows: steps run in order — agents, teams or plain Python functions — each fed the previous output.

A workflow run is stored like any run (``kind="workflow"``): its input, each step's input, output and status
(``steps``), and its final output as ``content``. Agent and team steps store their own runs nested under it.
Session state is shared by every step and every run of the session. History is run-based: a step can see the
inputs and outputs of the session's earlier workflow runs.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import time
from collections.abc import AsyncIterator, Coroutine, Generator, Iterator
from typing import Any

from nbsessions.db.base import BaseDb
from nbsessions.llm.offline import OfflineModel
from nbsessions.records.errors import InvalidInputError, exception_line
from nbsessions.records.liveness import current_writer
from nbsessions.records.schema import RunOutput, RunStatus, StepOutput, new_id
from nbsessions.records.validate import check_state, check_text, check_user_id
from nbsessions.records.workflow_events import (
    WorkflowCancelledEvent,
    WorkflowCompletedEvent,
    WorkflowErrorEvent,
    WorkflowStartedEvent,
)
from nbsessions.runs.agent import Agent
from nbsessions.runs.arguments import DbLike, as_db
from nbsessions.runs.core import run_writes
from nbsessions.runs.core.context import newest_runs
from nbsessions.runs.core.run_writes import DELETED
from nbsessions.runs.printing import aprint_workflow, print_workflow
from nbsessions.runs.session_api import SessionsApi
from nbsessions.runs.sessions import Sessions
from nbsessions.runs.workflows.blocks import Condition, Loop, Parallel, Router, Steps, bound, leaves, prepare
from nbsessions.runs.workflows.calls import adrive, drive, drive_stream
from nbsessions.runs.workflows.step_runner import StepsRun
from nbsessions.runs.workflows.steps import Step, StepFunction, StepInput, WorkflowError
from nbsessions.runs.workflows.workflow_agent import WorkflowAgent, agent_call, answer_with

__all__ = ["Condition", "Loop", "Parallel", "Router", "Step", "StepInput", "StepOutput", "Steps", "Workflow",
           "WorkflowAgent", "WorkflowError"]


class Workflow(SessionsApi):
    """``Workflow(steps=[Step(...), agent, team, fn, ...], db=...)``; ``workflow.run(input)`` runs them in order.

    With ``agent=WorkflowAgent(...)`` the agent decides per input whether to answer from the workflow's earlier
    runs or to run the steps; either way the answer is a run of the workflow's session.
    """

    def __init__(self, steps: list[Step | Agent | StepFunction | Parallel | Condition | Loop | Router | Steps]
                 | None = None, db: DbLike | None = None, *,
                 name: str | None = None, description: str | None = None,
                 session_state: dict[str, Any] | None = None, user_id: str | None = None,
                 session_id: str | None = None, num_history_runs: int = 3,
                 add_workflow_history_to_steps: bool = False, agent: WorkflowAgent | None = None,
                 id: str | None = None, telemetry: bool = False) -> None:
        """``telemetry`` is Agno's switch, accepted as nbsessions sends no telemetry either way."""
        if not steps:
            raise ValueError("a workflow needs at least one step")
        prepared = [prepare(step, i) for i, step in enumerate(steps)]
        if session_state is not None:
            check_state(session_state, "session_state")
        self.db = as_db(db)
        run_writes.replay_kept(self.db)  # what an earlier process could not store in it, stored now
        self.name = name
        self.description = description
        self.user_id = user_id
        self.session_id = session_id
        self.agent_id = id or new_id()
        self.session_state = dict(session_state or {})
        self.num_history_runs = num_history_runs
        self.add_workflow_history_to_steps = add_workflow_history_to_steps
        self.steps = [bound(step, self._bind) for step in prepared]
        self.agent = agent.with_db(self.db) if agent is not None else None
        agents = [s.target for s in leaves(self.steps) if isinstance(s.target, Agent)]
        self.model = agent.model if agent is not None else agents[0].model if agents else OfflineModel()
        self.summarizer = None  # a workflow's runs are not summarised
        self.sessions = Sessions(self)

    def with_db(self, db: BaseDb) -> Workflow:
        """The same workflow on another store, as ``Agent.with_db``: its steps, name and settings, no listeners."""
        rebound = Workflow(steps=list(self.steps), db=db, name=self.name, description=self.description,
                           session_state=dict(self.session_state), user_id=self.user_id,
                           num_history_runs=self.num_history_runs,
                           add_workflow_history_to_steps=self.add_workflow_history_to_steps, agent=self.agent)
        rebound.agent_id = self.agent_id
        return rebound

    def _bind(self, step: Step) -> Step:
        """Agent and team steps store their runs in the workflow's store, nested under its runs."""
        target = step.target
        if not isinstance(target, Agent) or target.db is self.db:
            return step
        rebound = target.with_db(self.db)
        return dataclasses.replace(step, agent=rebound if step.agent else None, team=rebound if step.team else None)

    def run(self, input: str, *, session_id: str | None = None, user_id: str | None = None,
            session_state: dict[str, Any] | None = None, cell_id: str | None = None,
            additional_data: dict[str, Any] | None = None, stream: bool = False,
            stream_events: bool = False) -> RunOutput | Iterator[Any]:
        """Run every step in order; a failing step (after its retries) stops the run, which is stored with what
        was done. ``stream=True`` returns the run's events instead (see ``workflow_events``), as Agno does.

        ``additional_data`` reaches every function step as ``step_input.additional_data``; ``cell_id``: a
        completed run replaces the previous run of the same notebook cell in the history.
        """
        if stream:
            return self._stream(input, session_id, user_id, session_state, cell_id, additional_data, stream_events)
        steps = self._steps_run(input, session_id, user_id, session_state, cell_id, additional_data)
        started, failure = time.perf_counter(), None
        try:
            drive(self._work(steps, lambda query: drive(steps.steps(query))))
        except BaseException as exc:
            failure = self._failed(steps.run, exc)
        self._end(steps, started)
        return self._outcome(steps.run, failure)

    def arun(self, input: str, *, session_id: str | None = None, user_id: str | None = None,
             session_state: dict[str, Any] | None = None, cell_id: str | None = None,
             additional_data: dict[str, Any] | None = None, stream: bool = False,
             stream_events: bool = False) -> Coroutine[Any, Any, RunOutput] | AsyncIterator[Any]:
        """``run`` on the event loop: ``await workflow.arun(...)`` runs agent and team steps with ``arun`` and
        awaits ``async def`` steps; cancelling the task stores the run as cancelled with the steps done so far.
        ``async for event in workflow.arun(..., stream=True)`` yields ``run``'s events (its steps run in a worker
        thread)."""
        if stream:
            return self._astream(self._stream(input, session_id, user_id, session_state, cell_id, additional_data,
                                              stream_events))
        return self._arun(input, session_id, user_id, session_state, cell_id, additional_data)

    @staticmethod
    async def _astream(events: Iterator[Any]) -> AsyncIterator[Any]:
        try:
            while (event := await asyncio.to_thread(next, events, _MISSING)) is not _MISSING:
                yield event
        finally:
            await asyncio.to_thread(events.close)

    async def _arun(self, input: str, session_id: str | None, user_id: str | None,
                    session_state: dict[str, Any] | None, cell_id: str | None,
                    additional_data: dict[str, Any] | None) -> RunOutput:
        steps = await asyncio.to_thread(self._steps_run, input, session_id, user_id, session_state, cell_id,
                                        additional_data)

        async def run_steps(query: str) -> str:
            return await adrive(steps.steps(query))

        started, failure = time.perf_counter(), None
        try:
            await adrive(self._work(steps, run_steps))
        except BaseException as exc:
            failure = self._failed(steps.run, exc)
        await asyncio.to_thread(self._end, steps, started)
        return self._outcome(steps.run, failure)

    def _stream(self, input: str, session_id: str | None, user_id: str | None, session_state: dict[str, Any] | None,
                cell_id: str | None, additional_data: dict[str, Any] | None, stream_events: bool) -> Iterator[Any]:
        """The run as Agno's events; nothing is stored until the stream is iterated."""
        steps = self._steps_run(input, session_id, user_id, session_state, cell_id, additional_data)
        run, started = steps.run, time.perf_counter()
        yield steps.event(WorkflowStartedEvent)
        failure: BaseException | None = None
        try:
            yield from drive_stream(self._work(steps, lambda query: drive(steps.steps(query))), stream_events)
        except BaseException as exc:
            failure = self._failed(run, exc)
        self._end(steps, started)
        if failure is None:
            yield steps.event(WorkflowCompletedEvent, content=run.content, step_results=run.step_results,
                              metrics=run.metrics)
        elif not isinstance(failure, Exception):
            raise failure  # Ctrl-C or a closed stream: stored as cancelled, nothing more to say
        elif run.error == DELETED:
            yield steps.event(WorkflowCancelledEvent, reason=run.error)
        else:
            cause = failure.__cause__ or failure
            yield steps.event(WorkflowErrorEvent, error=run.error, error_type=type(cause).__name__)
            raise failure

    def print_response(self, input: str, *, stream: bool | None = None, markdown: bool = True,
                       show_time: bool = True, show_step_details: bool = True, **options: Any) -> None:
        """Agno's ``print_response``: the input, each step's output (``show_step_details``), the reply and a
        footer, as plain text (``markdown`` only changes display in Agno). Options are ``run``'s."""
        print_workflow(self, input, stream=bool(stream), show_time=show_time, show_step_details=show_step_details,
                       **options)

    async def aprint_response(self, input: str, *, stream: bool | None = None, markdown: bool = True,
                              show_time: bool = True, show_step_details: bool = True, **options: Any) -> None:
        """``print_response`` for async code: the steps run with ``arun`` (``async def`` steps, evaluators and
        selectors awaited); ``stream=True`` prints the streamed run as its events come."""
        await aprint_workflow(self, input, stream=bool(stream), show_time=show_time,
                              show_step_details=show_step_details, **options)

    def _work(self, steps: StepsRun, run_steps: Any) -> Generator[Any, Any, Any]:
        """The steps on the run's input — or, with a workflow agent, the agent, which runs them if it decides to."""
        if self.agent is None:
            return (yield from steps.steps(steps.run.input))
        agent, run = self.agent, steps.run
        history = self._history(run.session_id, run.run_id, agent.num_history_runs) \
            if agent.add_workflow_history else []
        child = yield agent_call(agent, self.db, history, run, run_steps)
        return answer_with(run, child)

    def _steps_run(self, input: str, session_id: str | None, user_id: str | None,
                   session_state: dict[str, Any] | None, cell_id: str | None,
                   additional_data: dict[str, Any] | None) -> StepsRun:
        if additional_data is not None:
            check_state(additional_data, "additional_data")
        run, state, initial = self._begin(input, self.sessions.for_run(session_id), user_id, session_state, cell_id)
        return StepsRun(self, run, state, initial, additional_data)

    def _begin(self, input: str, session_id: str | None, user_id: str | None,
               session_state: dict[str, Any] | None, cell_id: str | None
               ) -> tuple[RunOutput, dict[str, Any], dict[str, Any]]:
        """Check the input, open the session and store the new run: what ``run`` and ``arun`` share."""
        if not isinstance(input, str) or not input.strip():
            raise InvalidInputError("the workflow input is empty")
        check_text(input, "the workflow input")
        check_user_id(user_id)
        if session_state is not None:
            check_state(session_state, "session_state")
        user = user_id if user_id is not None else self.user_id
        session = self.sessions.open_session(self.sessions.for_run(session_id), user)
        if session_state:
            session = self.db.update_session(session.session_id, state_patch=session_state)
        run = RunOutput(session_id=session.session_id, user_id=session.user_id, status=RunStatus.running,
                        writer=current_writer(), input=input, kind="workflow", model=self.name or "workflow",
                        provider="workflow", cell_id=cell_id, workflow_id=self.agent_id)
        self.db.upsert_run_if_session(run, durable=False)
        self.sessions.emit("run", run.session_id)
        state = copy.deepcopy(session.session_state)
        return run, state, copy.deepcopy(state)

    @staticmethod
    def _outcome(run: RunOutput, failure: BaseException | None) -> RunOutput:
        """The stored run, or what ended it raised — but a run whose session was deleted under it just ends
        cancelled (what failed then was the steps finding their session gone)."""
        if failure is None or (run.error == DELETED and isinstance(failure, Exception)):
            return run
        raise failure

    @staticmethod
    def _failed(run: RunOutput, exc: BaseException) -> BaseException:
        """What ended the steps, recorded on the run: Ctrl-C or a cancelled task as cancelled (and raised as they
        are); any other failure — a step, the workflow agent's model, the workflow's own code — as ``error``,
        raised as ``WorkflowError``."""
        if not isinstance(exc, Exception):
            run.status, run.error = RunStatus.cancelled, "interrupted"
        elif run.status != RunStatus.error:
            run.status, run.error = RunStatus.error, exception_line(exc)
        for step in run.steps:
            if step.status == RunStatus.running:
                step.status, step.error = run.status, run.error
        if isinstance(exc, WorkflowError) or not isinstance(exc, Exception):
            return exc
        failure = WorkflowError(run.error or "the workflow failed", run)
        failure.__cause__ = exc
        return failure

    def _end(self, steps: StepsRun, started: float) -> None:
        """Whatever ended the steps, the run is stored as it ended — unless its session was deleted meanwhile."""
        run, state, initial = steps.run, steps.state, steps.initial
        run.metrics.duration = time.perf_counter() - started
        changes, deleted = _state_patch(state, initial)
        outcome = run_writes.store_outcome(self.db, run, changes, deleted)  # kept and retried if the store is down
        if outcome is run_writes.Outcome.deleted:
            return  # its session was deleted meanwhile: nothing of it is stored
        if outcome is run_writes.Outcome.stored and run.status == RunStatus.completed and run.cell_id:
            self.sessions.supersede_cell(run)
        self.sessions.emit("run", run.session_id)

    def _history(self, session_id: str, before: str, num_runs: int | None = None) -> list[dict[str, str]]:
        """The newest earlier workflow runs of the session: {"input", "output"}, oldest first."""
        count = self.num_history_runs if num_runs is None else num_runs
        if count <= 0:
            return []

        def wanted(r: RunOutput) -> bool:
            return r.kind == "workflow" and r.is_history and r.run_id != before

        recent = newest_runs(self.db, session_id, count + 1, lambda runs: sum(map(wanted, runs)) >= count)
        return [{"input": r.input, "output": r.content} for r in recent if wanted(r)][-count:]

    def _save_state(self, session_id: str, state: dict[str, Any], initial: dict[str, Any]) -> None:
        """Write the keys steps set and delete the keys they removed, as one patch (before an agent reads them)."""
        changes, deleted = _state_patch(state, initial)
        if changes or deleted:
            self.db.update_session(session_id, state_patch=changes, state_delete=deleted)


def _state_patch(state: dict[str, Any], initial: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The keys steps set and the keys they removed since ``initial``, which then becomes ``state``."""
    now = copy.deepcopy(dict(state))  # one copy, written and kept: a Parallel branch may be changing ``state``
    changes = {k: v for k, v in now.items() if initial.get(k, _MISSING) != v}
    deleted = [k for k in initial if k not in now]
    initial.clear()
    initial.update(now)
    return changes, deleted


_MISSING = object()
