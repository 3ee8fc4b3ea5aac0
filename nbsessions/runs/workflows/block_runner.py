"""How each block runs, as generators of calls like a step's (``step_runner.py`` drives them through the same
drivers): what Agno's ``Parallel.execute``, ``Condition.execute``, ``Loop.execute``, ``Router.execute`` and
``Steps.execute`` do, with the same outputs (contents, ``steps``, success, stop) and events.

A block is recorded as a step of its own (kind ``parallel``, ``condition``, ...) followed by its inner steps'
records, so the panel, ``%agent history`` and exports show them as any steps.
"""

from __future__ import annotations

import inspect
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

from nbsessions.records.errors import exception_line
from nbsessions.records.schema import RunStatus, StepOutput, StepRecord, new_id
from nbsessions.records.workflow_events import (
    ConditionExecutionCompletedEvent,
    ConditionExecutionStartedEvent,
    LoopExecutionCompletedEvent,
    LoopExecutionStartedEvent,
    LoopIterationCompletedEvent,
    LoopIterationStartedEvent,
    ParallelExecutionCompletedEvent,
    ParallelExecutionStartedEvent,
    RouterExecutionCompletedEvent,
    RouterExecutionStartedEvent,
    StepsExecutionCompletedEvent,
    StepsExecutionStartedEvent,
)
from nbsessions.runs.workflows.blocks import Condition, Loop, Parallel, Router, Steps, prepare
from nbsessions.runs.workflows.calls import Branches, StepCall
from nbsessions.runs.workflows.steps import agent_message, content_text

Runner = Any  # step_runner.StepsRun (which imports this module)
Outputs = dict[str, StepOutput]
Work = Generator[Any, Any, StepOutput]


@dataclass
class Scope:
    """Where a step's record goes (a Parallel branch keeps its own until the block ends, so records stay in
    order) and which block it is inside, for its events."""

    records: list[StepRecord]
    parent_step_id: str | None = None
    depth: int = 0

    def inside(self, block_id: str, records: list[StepRecord] | None = None) -> Scope:
        return Scope(self.records if records is None else records, block_id, self.depth + 1)


def failed_output(name: str | None, exc: Exception) -> StepOutput:
    """A step that failed inside a block that goes on (Agno's shape)."""
    error = getattr(exc, "error", None) or exception_line(exc)
    return StepOutput(step_name=name, content=f"Step {name} failed: {error}", success=False, error=error)


def run_block(runner: Runner, block: Any, outputs: Outputs, scope: Scope, index: int) -> Work:
    """The block recorded as a step (running, then how it ended), its own work in between."""
    last = list(outputs.values())[-1] if outputs else None
    record = StepRecord(name=block.name, kind=block.kind,
                        input=runner.query if last is None else content_text(agent_message(last)))
    scope.records.append(record)
    frame = _Frame(runner, block, scope, index, new_id(), record)
    work = {Parallel: _parallel, Condition: _condition, Loop: _loop, Router: _router, Steps: _steps}[type(block)]
    try:
        output = yield from work(frame, outputs)
    except Exception as exc:  # Ctrl-C and cancelling are the workflow's to record, as cancelled
        record.status, record.error = RunStatus.error, getattr(exc, "error", None) or exception_line(exc)
        raise
    output.step_name, output.step_id, output.step_type = block.name, frame.block_id, type(block).__name__
    output.executor_name = output.executor_name or block.name
    record.status = RunStatus.completed if output.success else RunStatus.error
    record.error = next((f"{r.step_name}: {r.error}" for r in output.steps or [] if not r.success), None)
    record.output = content_text(output.content)
    runner.save()
    return output


@dataclass
class _Frame:
    """One block's run: what its events carry and where its inner steps are recorded."""

    runner: Runner
    block: Any
    scope: Scope
    index: int
    block_id: str
    record: StepRecord

    def event(self, kind: type, **fields: Any) -> Any:
        return self.runner.event(kind, self.scope, step_name=self.block.name, step_index=self.index,
                                 step_id=self.block_id, **fields)

    def call(self, fn: Any, given: Any, **more: Any) -> Generator[Any, Any, Any]:
        """A user function of the block (evaluator, selector, end condition), sync or async, made by the driver."""
        options = self.runner.options(fn, given, **more) if hasattr(given, "session_state") else {}
        return (yield StepCall(fn, given, options))

    @property
    def inner(self) -> Scope:
        return self.scope.inside(self.block_id)


def _summary(results: list[StepOutput], content: str) -> StepOutput:
    return StepOutput(content=content, success=all(r.success for r in results),
                      stop=any(r.stop for r in results), steps=results)


def _parallel(frame: _Frame, outputs: Outputs) -> Work:
    block, runner = frame.block, frame.runner
    yield frame.event(ParallelExecutionStartedEvent, parallel_step_count=len(block.steps))
    scopes = [frame.scope.inside(frame.block_id, []) for _ in block.steps]
    works = [runner.branch(node, dict(outputs), scopes[i], i) for i, node in enumerate(block.steps)]
    def ended() -> None:  # the branches' records, in the block's order whichever finished first
        with runner.lock:
            runner.pending.pop(id(frame.record), None)
            for scope in scopes:
                frame.scope.records.extend(scope.records)

    with runner.lock:  # shown as they finish, under the block, until it ends
        runner.pending[id(frame.record)] = [scope.records for scope in scopes]

    results: list[StepOutput] = yield Branches(works, ended)
    output = _summary(results, _joined(results))
    output.executor_type = "parallel"
    yield frame.event(ParallelExecutionCompletedEvent, parallel_step_count=len(block.steps), step_results=results)
    return output


def _joined(results: list[StepOutput]) -> str:
    """Agno's ``Parallel._build_aggregated_content``: each branch under its name and status."""
    parts = ["## Parallel Execution Results\n\n"]
    for i, output in enumerate(results, 1):
        icon = "❌ FAILURE:" if output.success is False else "✅ SUCCESS:"
        content = output.content
        body = f"{content}\n\n" if content and str(content).strip() else "*(No content)*\n\n"
        parts.append(f"### {icon} {output.step_name or f'Step {i}'}\n{body}")
    return "".join(parts).strip()


def _condition(frame: _Frame, outputs: Outputs) -> Work:
    block, runner = frame.block, frame.runner
    met = block.evaluator
    if not isinstance(met, bool):
        met = yield from frame.call(met, runner.step_input(outputs))
        met = met if isinstance(met, bool) else False  # Agno: anything but a bool is False
    yield frame.event(ConditionExecutionStartedEvent, condition_result=met)
    chosen, branch = (block.steps, "if") if met else (block.else_steps, "else" if block.else_steps else None)
    if not chosen:
        results: list[StepOutput] = []
        output = StepOutput(content=f"Condition {block.name} not met - skipped {len(block.steps)} steps")
    else:
        results = yield from runner.sequence(chosen, outputs, frame.inner, tolerant=True)
        output = _summary(results, f"Condition {block.name} completed with {len(results)} results ({branch} branch)")
    yield frame.event(ConditionExecutionCompletedEvent, condition_result=met, executed_steps=len(results),
                      branch=branch, step_results=results)
    return output


def _loop(frame: _Frame, outputs: Outputs) -> Work:
    block, runner = frame.block, frame.runner
    yield frame.event(LoopExecutionStartedEvent, max_iterations=block.max_iterations)
    rounds: list[list[StepOutput]] = []
    start = outputs
    for iteration in range(1, block.max_iterations + 1):
        yield frame.event(LoopIterationStartedEvent, iteration=iteration, max_iterations=block.max_iterations)
        results = yield from runner.sequence(block.steps, start, frame.inner)
        rounds.append(results)
        done = False
        if block.end_condition is not None:
            done = bool((yield from frame.call(block.end_condition, results)))
        stop = any(r.stop for r in results)
        yield frame.event(LoopIterationCompletedEvent, iteration=iteration, max_iterations=block.max_iterations,
                          iteration_results=results, should_continue=not (done or stop))
        if done or stop:
            break
        if block.forward_iteration_output:
            start = {**start, **{r.step_name: r for r in results}}
    flat = [r for results in rounds for r in results]
    yield frame.event(LoopExecutionCompletedEvent, total_iterations=len(rounds),
                      max_iterations=block.max_iterations, all_results=rounds)
    return _summary(flat, f"Loop {block.name} completed {len(rounds)} iterations with {len(flat)} total steps")


def _router(frame: _Frame, outputs: Outputs) -> Work:
    block, runner = frame.block, frame.runner
    wants_choices = "step_choices" in _parameters(block.selector)
    more = {"step_choices": block.choices} if wants_choices else {}
    picked = yield from frame.call(block.selector, runner.step_input(outputs), **more)
    selected = _selected(block, picked)
    names = [node.name for node in selected]
    yield frame.event(RouterExecutionStartedEvent, selected_steps=names)
    if not selected:
        results: list[StepOutput] = []
        output = StepOutput(content=f"Router {block.name} completed with 0 results (no steps selected)")
    else:
        results = yield from runner.sequence(selected, outputs, frame.inner, tolerant=True)
        output = _summary(results, f"Router {block.name} completed with {len(results)} results")
    yield frame.event(RouterExecutionCompletedEvent, selected_steps=names, executed_steps=len(results),
                      step_results=results)
    return output


def _selected(block: Router, picked: Any) -> list[Any]:
    """The selector's answer as the router's own (bound) choices: a step, a block, a name, or a list of them."""
    if picked is None:
        return []
    if isinstance(picked, (list, tuple)):
        return [node for item in picked for node in _selected(block, item)]
    by_name = {node.name: node for node in block.choices}
    name = picked if isinstance(picked, str) else prepare(picked, 0).name
    if name not in by_name:
        raise ValueError(f"Router {block.name}: the selector chose {name!r}, which is not among its choices "
                         f"{list(by_name)}")
    return [by_name[name]]


def _steps(frame: _Frame, outputs: Outputs) -> Work:
    block, runner = frame.block, frame.runner
    yield frame.event(StepsExecutionStartedEvent, steps_count=len(block.steps))
    results = yield from runner.sequence(block.steps, outputs, frame.inner, tolerant=True)
    yield frame.event(StepsExecutionCompletedEvent, steps_count=len(block.steps), executed_steps=len(results),
                      step_results=results)
    return _summary(results, f"Steps {block.name} completed with {len(results)} results")


def _parameters(fn: Any) -> Any:
    try:
        return inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return {}
