"""A workflow run's steps in order, written once as a generator of calls (and of events) that a driver makes:
``drive`` in the thread, ``adrive`` on the event loop, ``drive_stream`` yielding the events as they come.

Split from ``workflow.py`` so the step loop (retries, skips, history, what each step is given) reads at once.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from typing import Any

from nbsessions.records.errors import exception_line
from nbsessions.records.schema import Message, RunOutput, RunStatus, StepOutput, StepRecord
from nbsessions.records.workflow_events import (
    BaseWorkflowRunOutputEvent,
    StepCompletedEvent,
    StepErrorEvent,
    StepStartedEvent,
)
from nbsessions.runs.agent import Agent
from nbsessions.runs.core.context import newest_runs
from nbsessions.runs.core.resumable import Cursor
from nbsessions.runs.core.tools import RunContext
from nbsessions.runs.workflows.steps import (
    Step,
    StepFunction,
    StepInput,
    WorkflowError,
    as_step_output,
    content_text,
    function_options,
    history_context,
)

Workflow = Any  # the workflow whose steps run (``workflow.py`` imports this module, not the reverse)
_MISSING = object()


class ReportedFailure(RuntimeError):
    """A function step returned ``StepOutput(success=False)``: its own verdict, not retried."""


@dataclass
class StepsRun:
    """One workflow run's steps: the run being recorded, the session state the steps share (``initial`` is what
    the store holds), and the ``additional_data`` every function step receives."""

    workflow: Workflow
    run: RunOutput
    state: dict[str, Any]
    initial: dict[str, Any]
    additional_data: dict[str, Any] | None = None
    _legacy: list[dict[str, str]] | None = field(default=None, init=False, repr=False)

    def steps(self, query: str) -> Generator[Any, Any, str]:
        """The steps in order on ``query``, as calls (and events) for a driver to make. The run records each
        step and ends with the last step's content."""
        wf, run = self.workflow, self.run
        outputs: dict[str, StepOutput] = {}
        previous: Any = None
        for index, step in enumerate(wf.steps):
            record = StepRecord(name=step.name, kind=step.kind, input=query if previous is None
                                else content_text(previous))
            run.steps.append(record)
            yield self.event(StepStartedEvent, step_name=step.name, step_index=index)
            output, child = yield from self._attempts(step, record, query, previous, outputs)
            if child is not None:
                record.run_id = output.step_run_id = child.run_id
                record.metrics = child.metrics.to_dict()
                output.metrics = child.metrics
                run.metrics.add_usage_of(child.metrics)
            output.step_name = step.name
            if output.success:
                record.status = RunStatus.completed
            else:  # skipped after failing: recorded as failed, and the workflow goes on
                yield self.event(StepErrorEvent, step_name=step.name, step_index=index, error=output.error)
            record.output = content_text(output.content)
            outputs[step.name] = output
            previous = output.content
            wf.db.upsert_run_if_session(run, durable=False)  # steps show as they finish, not only at the end
            wf.sessions.emit("run", run.session_id)
            yield self.event(StepCompletedEvent, step_name=step.name, step_index=index, content=output.content,
                              step_response=output)
            if output.stop:
                break
        run.content = content_text(previous)
        run.status = RunStatus.completed
        # as an exchange, so a later agent run in the same session can use it as history
        run.messages = [Message(role="user", content=run.input), Message(role="assistant", content=run.content)]
        return run.content

    def event(self, kind: type[BaseWorkflowRunOutputEvent], **fields: Any) -> BaseWorkflowRunOutputEvent:
        return kind(workflow_id=self.workflow.agent_id, workflow_name=self.workflow.name,
                    session_id=self.run.session_id, run_id=self.run.run_id, **fields)

    def _attempts(self, step: Step, record: StepRecord, query: str, previous: Any, outputs: dict[str, StepOutput]
                  ) -> Generator[Any, Any, tuple[StepOutput, RunOutput | None]]:
        """Agno's retries: up to ``max_retries`` more tries, then fail the run or (``skip_on_failure``) go on."""
        for attempt in range(step.max_retries + 1):
            record.attempts = attempt + 1 if attempt else None
            try:
                return (yield from self._one(step, query, previous, outputs))
            except Exception as exc:  # a step's failure is recorded, never lost
                record.status, record.error = RunStatus.error, exception_line(exc)
                child_run = getattr(exc, "run", None)
                if child_run is not None:
                    record.run_id = child_run.run_id
                    self.run.metrics.add_usage_of(child_run.metrics)
                if attempt < step.max_retries and not isinstance(exc, ReportedFailure):
                    continue
                if step.skip_on_failure:
                    return StepOutput(content=f"Step {step.name} failed but skipped", success=False,
                                      error=record.error, step_type=step.kind), None
                self.run.status = RunStatus.error
                self.run.error = f"step {step.name!r} failed: {record.error}"
                raise WorkflowError(self.run.error, self.run) from exc  # the workflow stores it, in its finally
        raise AssertionError("unreachable: the last attempt returns or raises")

    def history(self, num_runs: int | None) -> list[tuple[str, str]]:
        """The session's earlier completed workflow runs as (input, output); all of them when ``num_runs`` is
        None. Read from the newest end, so the cost follows what is asked for."""
        def wanted(r: RunOutput) -> bool:
            return r.kind == "workflow" and r.is_history and r.run_id != self.run.run_id

        db, sid = self.workflow.db, self.run.session_id
        if num_runs is None:
            runs = [r for r in db.list_runs(sid) if wanted(r)]
        elif num_runs <= 0:
            runs = []
        else:
            recent = newest_runs(db, sid, num_runs + 1, lambda rs: sum(map(wanted, rs)) >= num_runs)
            runs = [r for r in recent if wanted(r)][-num_runs:]
        return [(r.input, r.content) for r in runs]

    def _one(self, step: Step, query: str, previous: Any, outputs: dict[str, StepOutput]
             ) -> Generator[Any, Any, tuple[StepOutput, RunOutput | None]]:
        wf, run, state, initial = self.workflow, self.run, self.state, self.initial
        target = step.target
        if isinstance(target, Agent):
            prompt = query if previous is None else content_text(previous)
            with_history = wf.add_workflow_history_to_steps if step.add_workflow_history is None \
                else step.add_workflow_history
            if with_history:  # Agno's text, before the step's input
                count = step.num_history_runs or wf.num_history_runs  # Agno: the step's own count first
                prompt = (history_context(self.history(count)) or "") + prompt
            wf._save_state(run.session_id, state, initial)  # the agent reads the state as steps left it
            child = yield _StepCall(target, prompt, {"session_id": run.session_id, "user_id": run.user_id,
                                                     "parent_run_id": run.run_id})
            stored = wf.db.get_session(run.session_id).session_state  # with the agent's sets and deletions
            state.clear()
            state.update(stored)
            initial.clear()
            initial.update(copy.deepcopy(stored))
            if child.status != RunStatus.completed:
                raise RuntimeError(f"{step.name} ended {child.status.value}")
            return StepOutput(content=child.content, step_type=step.kind, executor_type=step.kind,
                              executor_name=target.name), child
        if self._legacy is None:
            self._legacy = [{"input": i, "output": o} for i, o in self.history(wf.num_history_runs)]
        step_input = StepInput(input=query, previous_step_content=previous, previous_step_outputs=dict(outputs),
                               session_state=state, history=list(self._legacy),
                               additional_data=self.additional_data,
                               history_of=self.history)
        context = RunContext(session_id=run.session_id, run_id=run.run_id, user_id=run.user_id, session_state=state)
        output = as_step_output((yield _StepCall(target, step_input, function_options(target, step_input, context))))
        if not output.success:
            raise ReportedFailure(output.error or f"{step.name} reported failure")
        output.step_type = output.executor_type = "function"
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

    def stream(self, stream_events: bool) -> Iterator[Any]:
        """An agent or team step's own events as they come, its stored run last."""
        return self.target.run(self.given, stream=True, stream_events=stream_events, yield_run_output=True,
                               **self.options)


def _is_event(need: Any) -> bool:
    return isinstance(need, BaseWorkflowRunOutputEvent)


def drive(work: Generator[Any, Any, Any]) -> Any:
    """Make the calls ``work`` yields, in this thread (its events are dropped); a call's failure is thrown back
    into ``work``."""
    cursor = Cursor(work, throws_back=Exception)  # the step's failure goes back to the steps, which record it
    for call in cursor:
        if not _is_event(call):
            with cursor.answering():
                cursor.reply(call.run())
    return cursor.value


async def adrive(work: Generator[Any, Any, Any]) -> Any:
    """``drive`` on the event loop: agents with ``arun``, ``async def`` steps awaited. The steps' own code
    between calls (it records the run in the store) is stepped in a worker thread, never on the loop."""
    cursor = Cursor(work, throws_back=Exception)
    while (call := await asyncio.to_thread(next, cursor, _MISSING)) is not _MISSING:
        if not _is_event(call):
            with cursor.answering():
                cursor.reply(await call.arun())
    return cursor.value


def drive_stream(work: Generator[Any, Any, Any], stream_events: bool) -> Iterator[Any]:
    """``drive`` that yields as it goes: step events with ``stream_events``, and agent steps' own events (their
    reply always, their milestones with ``stream_events``). Returns what ``work`` returned."""
    cursor = Cursor(work, throws_back=Exception)
    for call in cursor:
        if _is_event(call):
            if stream_events:
                yield call
            continue
        with cursor.answering():
            if isinstance(call, _StepCall) and isinstance(call.target, Agent):
                result = None
                for item in call.stream(stream_events):
                    if isinstance(item, RunOutput):
                        result = item
                    else:
                        yield item
                cursor.reply(result)
            else:
                cursor.reply(call.run())
    return cursor.value
