"""Workflows: steps run in order — agents, teams or plain Python functions — each fed the previous output.

A workflow run is stored like any run (``kind="workflow"``): its input, each step's input, output and status
(``steps``), and its final output as ``content``. Agent and team steps store their own runs nested under it.
Session state is shared by every step and every run of the session. History is run-based: a step can see the
inputs and outputs of the session's earlier workflow runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import inspect
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from typing import Any

from nbsessions.agent import Agent
from nbsessions.async_api import AsyncSessionsMixin
from nbsessions.db.base import BaseDb
from nbsessions.db.memory import InMemoryDb
from nbsessions.errors import InvalidInputError, NbSessionsError, exception_line
from nbsessions.liveness import current_writer
from nbsessions.llm.offline import OfflineModel
from nbsessions.schema import Message, RunOutput, RunStatus, new_id
from nbsessions.sessions import SessionsMixin
from nbsessions.validate import check_json, check_text, check_user_id


class WorkflowError(NbSessionsError):
    """A step failed; the workflow run was stored with ``status=error`` and is attached as ``.run``."""

    def __init__(self, message: str, run: RunOutput) -> None:
        super().__init__(message)
        self.run = run


@dataclass
class StepInput:
    """What a function step receives. Changes to ``session_state`` persist with the run."""

    input: str  # the workflow run's input
    previous_output: str  # the previous step's output (the input, for the first step)
    session_state: dict[str, Any]
    history: list[dict[str, str]] = field(default_factory=list)  # earlier runs: {"input", "output"}
    outputs: dict[str, str] = field(default_factory=dict)  # outputs of the steps so far, by step name


StepFunction = Callable[[StepInput], Any]
Step = Agent | StepFunction


@dataclass
class _Step:
    name: str
    target: Step


def _step_name(step: Step, index: int) -> str:
    if isinstance(step, Agent):
        return step.name or f"{step.kind}_{index + 1}"
    return getattr(step, "__name__", None) or f"step_{index + 1}"


class Workflow(AsyncSessionsMixin, SessionsMixin):
    """``Workflow(steps=[agent, team, fn, ...], db=...)``; ``workflow.run(input)`` runs them in order."""

    def __init__(self, steps: list[Step], db: BaseDb | None = None, *, name: str | None = None,
                 session_state: dict[str, Any] | None = None, user_id: str | None = None,
                 session_id: str | None = None, num_history_runs: int = 3,
                 add_workflow_history_to_steps: bool = False) -> None:
        if not steps:
            raise ValueError("a workflow needs at least one step")
        for step in steps:
            if not (isinstance(step, Agent) or callable(step)):
                raise TypeError(f"a step must be an Agent, a Team or a function, not {type(step).__name__}")
        if session_state is not None:
            check_json(session_state, "session_state")
        self.db = db if db is not None else InMemoryDb()
        self.name = name
        self.user_id = user_id
        self.session_id = session_id
        self.agent_id = new_id()
        self.session_state = dict(session_state or {})
        self.num_history_runs = num_history_runs
        self.add_workflow_history_to_steps = add_workflow_history_to_steps
        self.steps = [_Step(_step_name(s, i), self._bind(s)) for i, s in enumerate(steps)]
        agents = [s.target for s in self.steps if isinstance(s.target, Agent)]
        self.model = agents[0].model if agents else OfflineModel()  # names sessions (set_session_name)
        self._listeners = []

    def with_db(self, db: BaseDb) -> Workflow:
        """The same workflow on another store, as ``Agent.with_db``: its steps, name and settings, no listeners."""
        rebound = Workflow(steps=[step.target for step in self.steps], db=db, name=self.name,
                           session_state=dict(self.session_state), user_id=self.user_id,
                           num_history_runs=self.num_history_runs,
                           add_workflow_history_to_steps=self.add_workflow_history_to_steps)
        rebound.agent_id = self.agent_id
        return rebound

    def _bind(self, step: Step) -> Step:
        """Agent and team steps store their runs in the workflow's store, nested under its runs."""
        if not isinstance(step, Agent) or step.db is self.db:
            return step
        return step.with_db(self.db)

    def run(self, input: str, *, session_id: str | None = None, user_id: str | None = None,
            session_state: dict[str, Any] | None = None, cell_id: str | None = None) -> RunOutput:
        """Run every step in order; a failing step stops the run, which is stored with what was done.

        ``cell_id``: a completed run replaces the previous run of the same notebook cell in the history.
        """
        run, state, initial = self._begin(input, session_id, user_id, session_state, cell_id)
        with self._recording(run, state, initial):
            steps = self._run_steps(run, state, initial)
            reply: Any = None
            error: Exception | None = None
            while True:
                try:
                    call = steps.throw(error) if error is not None else steps.send(reply)
                except StopIteration:
                    break
                reply = error = None
                try:
                    reply = call.run()
                except Exception as exc:  # the step's failure goes back to the steps, which record it
                    error = exc
        return run

    async def arun(self, input: str, *, session_id: str | None = None, user_id: str | None = None,
                   session_state: dict[str, Any] | None = None, cell_id: str | None = None) -> RunOutput:
        """``run`` on the event loop: agent and team steps run with ``arun``, ``async def`` steps are awaited.

        Cancelling the task stores the run as cancelled with the steps done so far.
        """
        run, state, initial = self._begin(input, session_id, user_id, session_state, cell_id)
        with self._recording(run, state, initial):
            steps = self._run_steps(run, state, initial)
            reply: Any = None
            error: Exception | None = None
            while True:
                try:
                    call = steps.throw(error) if error is not None else steps.send(reply)
                except StopIteration:
                    break
                reply = error = None
                try:
                    reply = await call.arun()
                except Exception as exc:  # the step's failure goes back to the steps, which record it
                    error = exc
        return run

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
        self.db.upsert_run(run, durable=False)
        self._emit("run", run.session_id)
        state = copy.deepcopy(session.session_state)
        return run, state, copy.deepcopy(state)

    @contextlib.contextmanager
    def _recording(self, run: RunOutput, state: dict[str, Any], initial: dict[str, Any]) -> Iterator[None]:
        """Whatever ends the steps, the run is stored: Ctrl-C or a cancelled task as cancelled, with the steps
        done so far."""
        started = time.perf_counter()
        try:
            yield
        except (KeyboardInterrupt, asyncio.CancelledError):
            run.status, run.error = RunStatus.cancelled, "interrupted"
            for step in run.steps:
                if step.get("status") == "running":
                    step["status"], step["error"] = "cancelled", "interrupted"
            raise
        finally:
            run.metrics.duration = time.perf_counter() - started
            self.db.upsert_run(run)
            self._save_state(run.session_id, state, initial)
            if run.status == RunStatus.completed and run.cell_id:
                self._supersede_cell(run)
            self._emit("run", run.session_id)

    def _history(self, session_id: str, before: str) -> list[dict[str, str]]:
        runs = [r for r in self.db.list_runs(session_id, last=self.num_history_runs * 4 + 1)
                if r.kind == "workflow" and r.is_history and r.run_id != before]
        return [{"input": r.input, "output": r.content} for r in runs[-self.num_history_runs:]]

    def _save_state(self, session_id: str, state: dict[str, Any], initial: dict[str, Any]) -> None:
        """Write the keys steps set and delete the keys they removed, as one patch; ``initial`` becomes ``state``."""
        changes = {k: v for k, v in state.items() if initial.get(k, _MISSING) != v}
        deleted = [k for k in initial if k not in state]
        if changes or deleted:
            self.db.update_session(session_id, state_patch=changes, state_delete=deleted)
        initial.clear()
        initial.update(copy.deepcopy(state))

    def _run_steps(self, run: RunOutput, state: dict[str, Any], initial: dict[str, Any]
                   ) -> Generator[_StepCall, Any, None]:
        """The steps in order, as calls for ``run`` or ``arun`` to make (``yield``) — the logic is written once."""
        history = self._history(run.session_id, run.run_id)
        previous, outputs = run.input, {}
        for step in self.steps:
            record = {"name": step.name, "kind": _kind(step.target), "input": previous, "status": "running"}
            run.steps.append(record)
            try:
                output, child = yield from self._run_step(step, run, previous, state, initial, history, outputs)
            except Exception as exc:  # a step's failure is recorded, never lost
                record.update(status="error", error=exception_line(exc))
                child_run = getattr(exc, "run", None)
                if child_run is not None:
                    record["run_id"] = child_run.run_id
                    run.metrics.add_usage_of(child_run.metrics)
                run.status = RunStatus.error
                run.error = f"step {step.name!r} failed: {record['error']}"
                raise WorkflowError(run.error, run) from exc  # run() stores it, in its finally
            if child is not None:
                record["run_id"] = child.run_id
                run.metrics.add_usage_of(child.metrics)
            record.update(status="completed", output=output)
            outputs[step.name] = output
            previous = output
            self.db.upsert_run(run, durable=False)  # steps show as they finish, not only at the end
            self._emit("run", run.session_id)
        run.content = previous
        run.status = RunStatus.completed
        # as an exchange, so a later agent run in the same session can use it as history
        run.messages = [Message(role="user", content=run.input), Message(role="assistant", content=previous)]

    def _run_step(self, step: _Step, run: RunOutput, previous: str, state: dict[str, Any], initial: dict[str, Any],
                  history: list[dict[str, str]], outputs: dict[str, str]
                  ) -> Generator[_StepCall, Any, tuple[str, RunOutput | None]]:
        if isinstance(step.target, Agent):
            prompt = previous
            if self.add_workflow_history_to_steps and history:
                earlier = "\n\n".join(f"Input: {h['input']}\nOutput: {h['output']}" for h in history)
                prompt = f"Earlier runs of this workflow:\n{earlier}\n\nNow:\n{previous}"
            self._save_state(run.session_id, state, initial)  # the agent reads the state as steps left it
            child = yield _StepCall(step.target, prompt, {"session_id": run.session_id, "user_id": run.user_id,
                                                          "parent_run_id": run.run_id})
            stored = self.db.get_session(run.session_id).session_state  # with the agent's sets and deletions
            state.clear()
            state.update(stored)
            initial.clear()
            initial.update(copy.deepcopy(stored))
            if child.status != RunStatus.completed:
                raise RuntimeError(f"{step.name} ended {child.status.value}")
            return child.content, child
        result = yield _StepCall(step.target, StepInput(input=run.input, previous_output=previous,
                                                        session_state=state, history=history,
                                                        outputs=dict(outputs)))
        return ("" if result is None else str(result)), None


@dataclass
class _StepCall:
    """One step's work, made by ``run`` (``run()``) or ``arun`` (``await arun()``): the only part that differs."""

    target: Step
    given: Any  # the prompt for an agent or team, the StepInput for a function
    options: dict[str, Any] = field(default_factory=dict)

    def run(self) -> Any:
        if isinstance(self.target, Agent):
            return self.target.run(self.given, **self.options)
        result = self.target(self.given)
        if inspect.isawaitable(result):
            getattr(result, "close", lambda: None)()
            raise TypeError("this step is async: run the workflow with arun")
        return result

    async def arun(self) -> Any:
        if isinstance(self.target, Agent):
            return await self.target.arun(self.given, **self.options)
        result = self.target(self.given)
        return await result if inspect.isawaitable(result) else result


def _kind(target: Step) -> str:
    return target.kind if isinstance(target, Agent) else "function"


_MISSING = object()
