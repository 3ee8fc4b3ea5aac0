"""Workflows: steps run in order — agents, teams or plain Python functions — each fed the previous output.

A workflow run is stored like any run (``kind="workflow"``): its input, each step's input, output and status
(``steps``), and its final output as ``content``. Agent and team steps store their own runs nested under it.
Session state is shared by every step and every run of the session. History is run-based: a step can see the
inputs and outputs of the session's earlier workflow runs.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

from nbsessions.agent import Agent
from nbsessions.arguments import DbLike, as_db
from nbsessions.async_api import AsyncSessionsMixin
from nbsessions.db.base import BaseDb
from nbsessions.errors import InvalidInputError, exception_line
from nbsessions.liveness import current_writer
from nbsessions.llm.offline import OfflineModel
from nbsessions.resumable import Cursor
from nbsessions.run_writes import DELETED
from nbsessions.schema import Message, RunOutput, RunStatus, StepOutput, StepRecord, new_id
from nbsessions.sessions import SessionsMixin
from nbsessions.steps import (
    Step,
    StepFunction,
    StepInput,
    WorkflowError,
    as_step,
    as_step_output,
    content_text,
    function_options,
)
from nbsessions.tools import RunContext
from nbsessions.validate import check_json, check_text, check_user_id
from nbsessions.workflow_agent import WorkflowAgent, agent_call, answer_with

__all__ = ["Step", "StepInput", "StepOutput", "Workflow", "WorkflowAgent", "WorkflowError"]


class Workflow(AsyncSessionsMixin, SessionsMixin):
    """``Workflow(steps=[Step(...), agent, team, fn, ...], db=...)``; ``workflow.run(input)`` runs them in order.

    With ``agent=WorkflowAgent(...)`` the agent decides per input whether to answer from the workflow's earlier
    runs or to run the steps; either way the answer is a run of the workflow's session.
    """

    def __init__(self, steps: list[Step | Agent | StepFunction] | None = None, db: DbLike | None = None, *,
                 name: str | None = None, description: str | None = None,
                 session_state: dict[str, Any] | None = None, user_id: str | None = None,
                 session_id: str | None = None, num_history_runs: int = 3,
                 add_workflow_history_to_steps: bool = False, agent: WorkflowAgent | None = None,
                 id: str | None = None) -> None:
        if not steps:
            raise ValueError("a workflow needs at least one step")
        prepared = [as_step(step, i) for i, step in enumerate(steps)]
        if session_state is not None:
            check_json(session_state, "session_state")
        self.db = as_db(db)
        self.name = name
        self.description = description
        self.user_id = user_id
        self.session_id = session_id
        self.agent_id = id or new_id()
        self.session_state = dict(session_state or {})
        self.num_history_runs = num_history_runs
        self.add_workflow_history_to_steps = add_workflow_history_to_steps
        self.steps = [self._bind(step) for step in prepared]
        self.agent = agent.with_db(self.db) if agent is not None else None
        agents = [s.target for s in self.steps if isinstance(s.target, Agent)]
        self.model = agent.model if agent is not None else agents[0].model if agents else OfflineModel()
        self._listeners = []

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
        return Step(name=step.name, description=step.description, agent=rebound if step.agent else None,
                    team=rebound if step.team else None)

    def run(self, input: str, *, session_id: str | None = None, user_id: str | None = None,
            session_state: dict[str, Any] | None = None, cell_id: str | None = None) -> RunOutput:
        """Run every step in order; a failing step stops the run, which is stored with what was done.

        ``cell_id``: a completed run replaces the previous run of the same notebook cell in the history.
        """
        run, state, initial = self._begin(input, self._session_for_run(session_id), user_id, session_state, cell_id)
        started = time.perf_counter()
        try:
            drive(self._work(run, state, initial, lambda query: drive(self._run_steps(run, state, initial, query))))
        except BaseException as exc:
            raise self._failed(run, exc) from exc
        finally:
            self._end(run, state, initial, started)
        return run

    async def arun(self, input: str, *, session_id: str | None = None, user_id: str | None = None,
                   session_state: dict[str, Any] | None = None, cell_id: str | None = None) -> RunOutput:
        """``run`` on the event loop: agent and team steps run with ``arun``, ``async def`` steps are awaited.

        Cancelling the task stores the run as cancelled with the steps done so far.
        """
        run, state, initial = await asyncio.to_thread(self._begin, input, self._session_for_run(session_id),
                                                      user_id, session_state, cell_id)

        async def run_steps(query: str) -> str:
            return await adrive(self._run_steps(run, state, initial, query))

        started = time.perf_counter()
        try:
            await adrive(self._work(run, state, initial, run_steps))
        except BaseException as exc:
            raise self._failed(run, exc) from exc
        finally:
            await asyncio.to_thread(self._end, run, state, initial, started)
        return run

    def _work(self, run: RunOutput, state: dict[str, Any], initial: dict[str, Any], run_steps: Any
              ) -> Generator[_StepCall, Any, Any]:
        """The steps on the run's input — or, with a workflow agent, the agent, which runs them if it decides to."""
        if self.agent is None:
            return (yield from self._run_steps(run, state, initial, run.input))
        child = yield agent_call(self, run, run_steps)
        return answer_with(run, child)

    def _begin(self, input: str, session_id: str | None, user_id: str | None,
               session_state: dict[str, Any] | None, cell_id: str | None
               ) -> tuple[RunOutput, dict[str, Any], dict[str, Any]]:
        """Check the input, open the session and store the new run: what ``run`` and ``arun`` share."""
        if not isinstance(input, str) or not input.strip():
            raise InvalidInputError("the workflow input is empty")
        check_text(input, "the workflow input")
        check_user_id(user_id)
        if session_state is not None:
            check_json(session_state, "session_state")
        user = user_id if user_id is not None else self.user_id
        session = self._open_session(self._session_for_run(session_id), user)
        if session_state:
            session = self.db.update_session(session.session_id, state_patch=session_state)
        run = RunOutput(session_id=session.session_id, user_id=session.user_id, status=RunStatus.running,
                        writer=current_writer(), input=input, kind="workflow", model=self.name or "workflow",
                        provider="workflow", cell_id=cell_id)
        self.db.upsert_run_if_session(run, durable=False)
        self._emit("run", run.session_id)
        state = copy.deepcopy(session.session_state)
        return run, state, copy.deepcopy(state)

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
        return WorkflowError(run.error or "the workflow failed", run)

    def _end(self, run: RunOutput, state: dict[str, Any], initial: dict[str, Any], started: float) -> None:
        """Whatever ended the steps, the run is stored as it ended — unless its session was deleted meanwhile."""
        run.metrics.duration = time.perf_counter() - started
        if not self.db.upsert_run_if_session(run):
            run.status, run.error = RunStatus.cancelled, DELETED
            return
        self._save_state(run.session_id, state, initial)
        if run.status == RunStatus.completed and run.cell_id:
            self._supersede_cell(run)
        self._emit("run", run.session_id)

    def _history(self, session_id: str, before: str, num_runs: int | None = None) -> list[dict[str, str]]:
        """The newest earlier workflow runs of the session: {"input", "output"}, oldest first."""
        count = self.num_history_runs if num_runs is None else num_runs
        runs = [r for r in self.db.list_runs(session_id, last=count * 4 + 1)
                if r.kind == "workflow" and r.is_history and r.run_id != before]
        return [{"input": r.input, "output": r.content} for r in runs[-count:]] if count > 0 else []

    def _save_state(self, session_id: str, state: dict[str, Any], initial: dict[str, Any]) -> None:
        """Write the keys steps set and delete the keys they removed, as one patch; ``initial`` becomes ``state``."""
        changes = {k: v for k, v in state.items() if initial.get(k, _MISSING) != v}
        deleted = [k for k in initial if k not in state]
        if changes or deleted:
            self.db.update_session(session_id, state_patch=changes, state_delete=deleted)
        initial.clear()
        initial.update(copy.deepcopy(state))

    def _run_steps(self, run: RunOutput, state: dict[str, Any], initial: dict[str, Any], query: str
                   ) -> Generator[_StepCall, Any, str]:
        """The steps in order on ``query``, as calls for ``run`` or ``arun`` to make (``yield``) — the logic is
        written once. The run records each step and ends with the last step's content."""
        history = self._history(run.session_id, run.run_id)
        outputs: dict[str, StepOutput] = {}
        previous: Any = None
        for step in self.steps:
            given = query if previous is None else content_text(previous)
            record = StepRecord(name=step.name, kind=step.kind, input=given)
            run.steps.append(record)
            try:
                output, child = yield from self._run_step(step, run, query, previous, state, initial, history,
                                                          outputs)
            except Exception as exc:  # a step's failure is recorded, never lost
                record.status, record.error = RunStatus.error, exception_line(exc)
                child_run = getattr(exc, "run", None)
                if child_run is not None:
                    record.run_id = child_run.run_id
                    run.metrics.add_usage_of(child_run.metrics)
                run.status = RunStatus.error
                run.error = f"step {step.name!r} failed: {record.error}"
                raise WorkflowError(run.error, run) from exc  # run() stores it, in its finally
            if child is not None:
                record.run_id = output.step_run_id = child.run_id
                run.metrics.add_usage_of(child.metrics)
            output.step_name = step.name
            record.status, record.output = RunStatus.completed, content_text(output.content)
            outputs[step.name] = output
            previous = output.content
            self.db.upsert_run_if_session(run, durable=False)  # steps show as they finish, not only at the end
            self._emit("run", run.session_id)
            if output.stop:
                break
        run.content = content_text(previous)
        run.status = RunStatus.completed
        # as an exchange, so a later agent run in the same session can use it as history
        run.messages = [Message(role="user", content=run.input), Message(role="assistant", content=run.content)]
        return run.content

    def _run_step(self, step: Step, run: RunOutput, query: str, previous: Any, state: dict[str, Any],
                  initial: dict[str, Any], history: list[dict[str, str]], outputs: dict[str, StepOutput]
                  ) -> Generator[_StepCall, Any, tuple[StepOutput, RunOutput | None]]:
        target = step.target
        if isinstance(target, Agent):
            prompt = query if previous is None else content_text(previous)
            if self.add_workflow_history_to_steps and history:
                earlier = "\n\n".join(f"Input: {h['input']}\nOutput: {h['output']}" for h in history)
                prompt = f"Earlier runs of this workflow:\n{earlier}\n\nNow:\n{prompt}"
            self._save_state(run.session_id, state, initial)  # the agent reads the state as steps left it
            child = yield _StepCall(target, prompt, {"session_id": run.session_id, "user_id": run.user_id,
                                                     "parent_run_id": run.run_id})
            stored = self.db.get_session(run.session_id).session_state  # with the agent's sets and deletions
            state.clear()
            state.update(stored)
            initial.clear()
            initial.update(copy.deepcopy(stored))
            if child.status != RunStatus.completed:
                raise RuntimeError(f"{step.name} ended {child.status.value}")
            return StepOutput(content=child.content, step_type=step.kind, executor_name=target.name), child
        step_input = StepInput(input=query, previous_step_content=previous, previous_step_outputs=dict(outputs),
                               session_state=state, history=history)
        context = RunContext(session_id=run.session_id, run_id=run.run_id, user_id=run.user_id, session_state=state)
        output = as_step_output((yield _StepCall(target, step_input, function_options(target, step_input, context))))
        if not output.success:
            raise RuntimeError(output.error or f"{step.name} reported failure")
        output.step_type = "function"
        return output, None


@dataclass
class _StepCall:
    """One step's work, made by ``run`` (``run()``) or ``arun`` (``await arun()``): the only part that differs."""

    target: Agent | StepFunction
    given: Any  # the prompt for an agent or team, the StepInput for a function
    options: dict[str, Any] = field(default_factory=dict)

    def run(self) -> Any:
        if isinstance(self.target, Agent):
            return self.target.run(self.given, **self.options)
        result = self.target(self.given, **self.options)
        if inspect.isawaitable(result):
            getattr(result, "close", lambda: None)()
            raise TypeError("this step is async: run the workflow with arun")
        return result

    async def arun(self) -> Any:
        if isinstance(self.target, Agent):
            return await self.target.arun(self.given, **self.options)
        result = self.target(self.given, **self.options)
        return await result if inspect.isawaitable(result) else result


def drive(work: Generator[_StepCall, Any, Any]) -> Any:
    """Make the calls ``work`` yields, in this thread; a call's failure is thrown back into ``work``."""
    cursor = Cursor(work, throws_back=Exception)  # the step's failure goes back to the steps, which record it
    for call in cursor:
        with cursor.answering():
            cursor.reply(call.run())
    return cursor.value


async def adrive(work: Generator[_StepCall, Any, Any]) -> Any:
    """``drive`` on the event loop: agents with ``arun``, ``async def`` steps awaited. The steps' own code
    between calls (it records the run in the store) is stepped in a worker thread, never on the loop."""
    cursor = Cursor(work, throws_back=Exception)
    while (call := await asyncio.to_thread(next, cursor, _MISSING)) is not _MISSING:
        with cursor.answering():
            cursor.reply(await call.arun())
    return cursor.value


_MISSING = object()
