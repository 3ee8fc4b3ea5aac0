"""A workflow run's steps in order, written once as a generator of calls (and of events) that a driver makes
(``calls.py``: ``drive`` in the thread, ``adrive`` on the event loop, ``drive_stream`` yielding the events).

Split from ``workflow.py`` so the step loop (retries, skips, history, what each step is given) reads at once.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Generator
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
from nbsessions.runs.core.tools import RunContext
from nbsessions.runs.workflows.block_runner import Scope, failed_output, run_block
from nbsessions.runs.workflows.blocks import is_block
from nbsessions.runs.workflows.calls import StepCall
from nbsessions.runs.workflows.steps import (
    Step,
    StepFunction,
    StepInput,
    WorkflowError,
    agent_message,
    as_step_output,
    content_text,
    deepest,
    function_options,
    history_context,
)

Workflow = Any  # the workflow whose steps run (``workflow.py`` imports this module, not the reverse)
_MISSING = object()


class ReportedFailure(RuntimeError):
    """A function step returned ``StepOutput(success=False)``: its own verdict, not retried."""


class StepFailed(RuntimeError):
    """A step failed after its retries: the run fails — unless a block around it records the failure and goes
    on, as Agno's Parallel, Condition, Router and Steps do."""

    def __init__(self, message: str, error: str | None) -> None:
        super().__init__(message)
        self.error = error


@dataclass
class StepsRun:
    """One workflow run's steps: the run being recorded, the session state the steps share (``initial`` is what
    the store holds), and the ``additional_data`` every function step receives. ``lock`` guards the run and the
    state where Parallel branches meet."""

    workflow: Workflow
    run: RunOutput
    state: dict[str, Any]
    initial: dict[str, Any]
    additional_data: dict[str, Any] | None = None
    query: str = ""
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    pending: dict[int, list[list[StepRecord]]] = field(default_factory=dict, repr=False)  # running branches'
    _legacy: list[dict[str, str]] | None = field(default=None, init=False, repr=False)

    def steps(self, query: str) -> Generator[Any, Any, str]:
        """The steps in order on ``query``, as calls (and events) for a driver to make. The run records each
        step and ends with the last step's content (a block's: its last inner step's, as in Agno)."""
        run, self.query = self.run, query
        try:
            results = yield from self.sequence(self.workflow.steps, {}, Scope(run.steps))
        except StepFailed as exc:
            run.status, run.error = RunStatus.error, str(exc)
            raise WorkflowError(run.error, run) from exc.__cause__  # the workflow stores it, in its finally
        run.content = content_text(deepest(results[-1]))
        run.status = RunStatus.completed
        # as an exchange, so a later agent run in the same session can use it as history
        run.messages = [Message(role="user", content=run.input), Message(role="assistant", content=run.content)]
        return run.content

    def sequence(self, nodes: list[Any], given: dict[str, StepOutput], scope: Scope, tolerant: bool = False
                 ) -> Generator[Any, Any, list[StepOutput]]:
        """``nodes`` in order, each seeing ``given`` and the outputs before it; stops after one that says
        ``stop``. ``tolerant`` (Condition, Router, Steps): a failure is recorded as a failed output and ends
        the sequence instead of the run."""
        outputs, results = dict(given), []
        for index, node in enumerate(nodes):
            caught = False
            try:
                output = yield from self.node(node, outputs, scope, index)
            except Exception as exc:
                if not tolerant:
                    raise
                output, caught = failed_output(node.name, exc), True
            outputs[node.name] = output
            results.append(output)
            if output.stop or caught:
                break
        return results

    def node(self, node: Any, outputs: dict[str, StepOutput], scope: Scope, index: int
             ) -> Generator[Any, Any, StepOutput]:
        if is_block(node):
            return (yield from run_block(self, node, outputs, scope, index))
        return (yield from self._step(node, outputs, scope, index))

    def branch(self, node: Any, outputs: dict[str, StepOutput], scope: Scope, index: int
               ) -> Generator[Any, Any, StepOutput]:
        """One Parallel branch: its failure is its failed output, as in Agno."""
        try:
            return (yield from self.node(node, outputs, scope, index))
        except Exception as exc:
            return failed_output(node.name, exc)

    def _step(self, step: Step, outputs: dict[str, StepOutput], scope: Scope, index: int
              ) -> Generator[Any, Any, StepOutput]:
        run = self.run
        last = list(outputs.values())[-1] if outputs else None
        record = StepRecord(name=step.name, kind=step.kind,
                            input=self.query if last is None else content_text(agent_message(last)))
        scope.records.append(record)
        yield self.event(StepStartedEvent, scope, step_name=step.name, step_index=index)
        output, child = yield from self._attempts(step, record, outputs)
        with self.lock:
            if child is not None:
                record.run_id = output.step_run_id = child.run_id
                record.metrics = child.metrics.to_dict()
                output.metrics = child.metrics
                run.metrics.add_usage_of(child.metrics)
            output.step_name = step.name
            if output.success:
                record.status = RunStatus.completed
            record.output = content_text(output.content)
        if not output.success:  # skipped after failing: recorded as failed, and the workflow goes on
            yield self.event(StepErrorEvent, scope, step_name=step.name, step_index=index, error=output.error)
        self.save()
        yield self.event(StepCompletedEvent, scope, step_name=step.name, step_index=index, content=output.content,
                         step_response=output)
        return output

    def save(self) -> None:
        """The run as it is now: steps show as they finish, not only at the end — a running Parallel's branches
        too, under the block's record."""
        run = self.run
        with self.lock:
            kept, run.steps = run.steps, self._shown(run.steps)
            try:
                self.workflow.db.upsert_run_if_session(run, durable=False)
            finally:
                run.steps = kept
        self.workflow.sessions.emit("run", run.session_id)

    def _shown(self, records: list[StepRecord]) -> list[StepRecord]:
        if not self.pending:
            return records
        shown = []
        for record in list(records):
            shown.append(record)
            for branch in self.pending.get(id(record), ()):
                shown.extend(self._shown(branch))
        return shown

    def event(self, kind: type[BaseWorkflowRunOutputEvent], scope: Scope | None = None,
              **fields: Any) -> BaseWorkflowRunOutputEvent:
        if scope is not None:
            fields.update(parent_step_id=scope.parent_step_id, nested_depth=scope.depth)
        return kind(workflow_id=self.workflow.agent_id, workflow_name=self.workflow.name,
                    session_id=self.run.session_id, run_id=self.run.run_id, **fields)

    def _attempts(self, step: Step, record: StepRecord, outputs: dict[str, StepOutput]
                  ) -> Generator[Any, Any, tuple[StepOutput, RunOutput | None]]:
        """Agno's retries: up to ``max_retries`` more tries, then fail the run or (``skip_on_failure``) go on."""
        for attempt in range(step.max_retries + 1):
            record.attempts = attempt + 1 if attempt else None
            try:
                return (yield from self._one(step, outputs))
            except Exception as exc:  # a step's failure is recorded, never lost
                record.status, record.error = RunStatus.error, exception_line(exc)
                child_run = getattr(exc, "run", None)
                if child_run is not None:
                    record.run_id = child_run.run_id
                    with self.lock:
                        self.run.metrics.add_usage_of(child_run.metrics)
                if attempt < step.max_retries and not isinstance(exc, ReportedFailure):
                    continue
                if step.skip_on_failure:
                    return StepOutput(content=f"Step {step.name} failed but skipped", success=False,
                                      error=record.error, step_type=step.kind), None
                raise StepFailed(f"step {step.name!r} failed: {record.error}", record.error) from exc
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

    def step_input(self, outputs: dict[str, StepOutput]) -> StepInput:
        """What a function step, an evaluator or a selector is given after ``outputs``."""
        if self._legacy is None:
            self._legacy = [{"input": i, "output": o} for i, o in self.history(self.workflow.num_history_runs)]
        last = list(outputs.values())[-1] if outputs else None
        return StepInput(input=self.query, previous_step_content=None if last is None else deepest(last),
                         previous_step_outputs=dict(outputs), session_state=self.state,
                         history=list(self._legacy), additional_data=self.additional_data, history_of=self.history)

    def options(self, fn: StepFunction, step_input: StepInput, **more: Any) -> dict[str, Any]:
        """What ``fn`` asks for by name besides its input: ``run_context``, ``session_state`` (and ``more``)."""
        run = self.run
        context = RunContext(session_id=run.session_id, run_id=run.run_id, user_id=run.user_id,
                             session_state=self.state)
        return function_options(fn, step_input, context) | more

    def _one(self, step: Step, outputs: dict[str, StepOutput]
             ) -> Generator[Any, Any, tuple[StepOutput, RunOutput | None]]:
        target = step.target
        if isinstance(target, Agent):
            return (yield from self._agent_step(step, target, outputs))
        step_input = self.step_input(outputs)
        output = as_step_output((yield StepCall(target, step_input, self.options(target, step_input))))
        if not output.success:
            raise ReportedFailure(output.error or f"{step.name} reported failure")
        output.step_type = output.executor_type = "function"
        return output, None

    def _agent_step(self, step: Step, target: Agent, outputs: dict[str, StepOutput]
                    ) -> Generator[Any, Any, tuple[StepOutput, RunOutput | None]]:
        wf, run, state, initial = self.workflow, self.run, self.state, self.initial
        message = agent_message(list(outputs.values())[-1]) if outputs else None
        prompt = self.query if message is None else content_text(message)
        with_history = wf.add_workflow_history_to_steps if step.add_workflow_history is None \
            else step.add_workflow_history
        if with_history:  # Agno's text, before the step's input
            count = step.num_history_runs or wf.num_history_runs  # Agno: the step's own count first
            prompt = (history_context(self.history(count)) or "") + prompt
        with self.lock:
            wf._save_state(run.session_id, state, initial)  # the agent reads the state as steps left it
        child = yield StepCall(target, prompt, {"session_id": run.session_id, "user_id": run.user_id,
                                                 "parent_run_id": run.run_id})
        with self.lock:  # the agent's sets and deletions, leaving what parallel branches changed meanwhile
            stored = wf.db.get_session(run.session_id).session_state
            for key in [k for k in initial if k not in stored]:
                state.pop(key, None)
            state.update({k: v for k, v in stored.items() if not _same(initial.get(k, _MISSING), v)})
            initial.clear()
            initial.update(copy.deepcopy(stored))
        if child.status != RunStatus.completed:
            raise RuntimeError(f"{step.name} ended {child.status.value}")
        return StepOutput(content=child.content, step_type=step.kind, executor_type=step.kind,
                          executor_name=target.name), child


def _same(before: Any, stored: Any) -> bool:
    """Whether a stored value is the one the workflow last wrote, as the store gives it back (JSON turns tuples
    into lists): a value only looks changed when an agent step changed it."""
    if before is _MISSING:
        return False
    try:
        return json.dumps(before, sort_keys=True) == json.dumps(stored, sort_keys=True)
    except (TypeError, ValueError):
        return before == stored
