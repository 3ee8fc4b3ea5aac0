"""Agno's ``print_response`` / ``aprint_response``: run a prompt and print the exchange as plain text.

Plain text on stdout is never rendered as HTML by Jupyter, so a reply cannot inject markup; control
characters (terminal escape sequences) are still dropped from the model's text. The run is stored exactly as
``run`` stores it; like Agno's, the methods return None (the run is ``get_last_run_output()``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from nbsessions.records import formatting as fmt
from nbsessions.records.redact import StreamRedactor, redact
from nbsessions.records.schema import RunOutput, RunStatus


def printable(text: str) -> str:
    """Model text without control characters (newlines and tabs kept), and without secrets."""
    return redact(fmt.strip_control(text))


def footer(run: RunOutput) -> str:
    """``model · in / out tokens · duration · cost``, and the outcome when the run did not complete."""
    m = run.metrics
    parts = [run.model or "?", f"{fmt.tokens(m.input_tokens, m.tokens_estimated)} in / "
             f"{fmt.tokens(m.output_tokens, m.tokens_estimated)} out tokens", fmt.seconds(m.duration), fmt.cost(m.cost)]
    if run.status != RunStatus.completed:
        parts.append(run.status.value + (f": {run.error}" if run.error else ""))
    return "— " + printable(" · ".join(parts))


def _start(input: str, show_message: bool) -> None:
    if show_message:
        print(f"Message: {printable(input)}\n", flush=True)


def _show(item: Any, shown: StreamRedactor) -> RunOutput | None:
    """Print a streamed event's text; the run itself (the stream's last item) is returned, not printed."""
    if isinstance(item, RunOutput):
        return item
    print(shown.feed(fmt.strip_control(item)), end="", flush=True)
    return None


def _end(run: RunOutput, streamed: StreamRedactor | None) -> None:
    if streamed is None:
        print(printable(run.content), end="")
    else:
        print(streamed.flush(), end="")
    print(f"\n\n{footer(run)}", flush=True)


def print_reply(run: Callable[..., Any], input: str, *, stream: bool | None, show_message: bool,
                options: dict[str, Any]) -> None:
    """Agno's ``print_response`` through ``run`` (an agent's or a team's): the prompt (``show_message``), the
    reply (as it streams with ``stream=True``) and a footer."""
    _start(input, show_message)
    if not stream:
        return _end(run(input, **options), streamed=None)
    outcome, shown = None, StreamRedactor()
    for item in run(input, stream=True, yield_run_output=True, **options):
        outcome = _show(item, shown) or outcome
    return _end(outcome, streamed=shown) if outcome is not None else None


async def aprint_reply(arun: Callable[..., Any], input: str, *, stream: bool | None, show_message: bool,
                       options: dict[str, Any]) -> None:
    """``print_reply`` for async code, through ``arun``."""
    _start(input, show_message)
    if not stream:
        return _end(await arun(input, **options), streamed=None)
    outcome, shown = None, StreamRedactor()
    async for item in arun(input, stream=True, yield_run_output=True, **options):
        outcome = _show(item, shown) or outcome
    return _end(outcome, streamed=shown) if outcome is not None else None


_BLOCK_STARTS = ("ParallelExecutionStarted", "ConditionExecutionStarted", "LoopExecutionStarted",
                 "RouterExecutionStarted", "StepsExecutionStarted")


def print_workflow(workflow: Any, input: str, *, stream: bool, show_time: bool = True,
                   show_step_details: bool = True, **options: Any) -> None:
    """Agno's ``Workflow.print_response`` as plain text: the input, each step under its name (its reply as it
    streams with ``stream=True``), then the workflow's footer (``show_time`` keeps its duration in it)."""
    _start(input, True)
    if not stream:
        return print_workflow_run(workflow.run(input, **options), show_time, show_step_details)
    shown, streamed_text, run_id, number = StreamRedactor(), False, None, 0
    for event in workflow.run(input, stream=True, stream_events=True, **options):
        kind = getattr(event, "event", "")
        run_id = getattr(event, "run_id", None) if kind == "WorkflowStarted" else run_id
        if kind == "StepStarted" or kind in _BLOCK_STARTS:  # numbered as the stored steps are, blocks included
            number += 1
            if show_step_details:
                print(f"{shown.flush()}\nStep {number}: {printable(event.step_name or '')}", flush=True)
            streamed_text = False
        elif kind == "RunContent" and getattr(event, "parent_run_id", None) == run_id:
            streamed_text = True
            print(shown.feed(fmt.strip_control(event)), end="", flush=True)
        elif kind == "StepCompleted" and not streamed_text and (show_step_details or event.step_index is None):
            print(printable(str(event.content or "")), flush=True)  # a function step's output arrives whole
    print(shown.flush(), end="")
    _workflow_end(workflow.get_run_output(run_id, options.get("session_id")), show_time)


def print_workflow_run(run: RunOutput, show_time: bool = True, show_step_details: bool = True) -> None:
    """A finished workflow run as ``print_response`` shows it: each step under its name, then the footer."""
    for number, step in enumerate(run.steps, 1):
        if show_step_details:
            print(f"Step {number}: {printable(step.name or '')}\n{printable(step.output or step.error or '')}\n")
    if not show_step_details:
        print(printable(run.content))
    _workflow_end(run, show_time)


async def aprint_workflow(workflow: Any, input: str, *, stream: bool, show_time: bool = True,
                          show_step_details: bool = True, **options: Any) -> None:
    """``print_workflow`` for async code: the run made with ``arun``; a streamed one printed from a worker
    thread as its events come."""
    if stream:
        return await asyncio.to_thread(print_workflow, workflow, input, stream=True, show_time=show_time,
                                       show_step_details=show_step_details, **options)
    _start(input, True)
    print_workflow_run(await workflow.arun(input, **options), show_time, show_step_details)


def _workflow_end(run: RunOutput, show_time: bool) -> None:
    steps = f"{len(run.steps)} step{'s' * (len(run.steps) != 1)}"
    parts = [run.model or "workflow", steps] + ([fmt.seconds(run.metrics.duration)] if show_time else [])
    if run.status != RunStatus.completed:
        parts.append(run.status.value + (f": {run.error}" if run.error else ""))
    print("\n— " + printable(" · ".join(parts)), flush=True)
