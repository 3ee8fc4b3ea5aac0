"""Agno's ``print_response`` / ``aprint_response``: run a prompt and print the exchange as plain text.

Plain text on stdout is never rendered as HTML by Jupyter, so a reply cannot inject markup; control
characters (terminal escape sequences) are still dropped from the model's text. The run is stored exactly as
``run`` stores it; like Agno's, the methods return None (the run is ``get_last_run_output()``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nbsessions import formatting as fmt
from nbsessions.redact import StreamRedactor, redact
from nbsessions.run_options import RunOptions, given_options, spelled_out
from nbsessions.schema import RunOutput, RunStatus

if TYPE_CHECKING:
    from typing_extensions import Unpack


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


class PrintingMixin:
    """What ``Agent`` (and so ``Team``) adds for Agno's cookbook examples."""

    if TYPE_CHECKING:
        def run(self, input: str, **options: Any) -> Any: ...
        def arun(self, input: str, **options: Any) -> Any: ...

    @spelled_out(RunOptions)
    def print_response(self, input: str, *, stream: bool | None = None, markdown: bool | None = None,
                       show_message: bool = True, **options: Unpack[RunOptions]) -> None:
        """Print the prompt (``show_message``), the reply (as it streams with ``stream=True``) and a footer.

        ``markdown`` is accepted as in Agno, where it only changes the display: here the reply is always
        printed as the plain text the model wrote.
        """
        given = given_options(RunOptions, options, f"{type(self).__name__}.print_response")
        _start(input, show_message)
        if not stream:
            return _end(self.run(input, **given), streamed=None)
        run, shown = None, StreamRedactor()
        for item in self.run(input, stream=True, yield_run_output=True, **given):
            run = _show(item, shown) or run
        return _end(run, streamed=shown) if run is not None else None

    @spelled_out(RunOptions)
    async def aprint_response(self, input: str, *, stream: bool | None = None, markdown: bool | None = None,
                              show_message: bool = True, **options: Unpack[RunOptions]) -> None:
        """``print_response`` for async code, through ``arun``."""
        given = given_options(RunOptions, options, f"{type(self).__name__}.aprint_response")
        _start(input, show_message)
        if not stream:
            return _end(await self.arun(input, **given), streamed=None)
        run, shown = None, StreamRedactor()
        async for item in self.arun(input, stream=True, yield_run_output=True, **given):
            run = _show(item, shown) or run
        return _end(run, streamed=shown) if run is not None else None


def print_workflow(workflow: Any, input: str, *, stream: bool, show_time: bool = True,
                   show_step_details: bool = True, **options: Any) -> None:
    """Agno's ``Workflow.print_response`` as plain text: the input, each step under its name (its reply as it
    streams with ``stream=True``), then the workflow's footer (``show_time`` keeps its duration in it)."""
    _start(input, True)
    if not stream:
        run = workflow.run(input, **options)
        for number, step in enumerate(run.steps, 1):
            if show_step_details:
                print(f"Step {number}: {printable(step.name or '')}\n{printable(step.output or step.error or '')}\n")
        if not show_step_details:
            print(printable(run.content))
        return _workflow_end(run, show_time)
    shown, streamed_text, run_id = StreamRedactor(), False, None
    for event in workflow.run(input, stream=True, stream_events=True, **options):
        kind = getattr(event, "event", "")
        run_id = getattr(event, "run_id", None) if kind == "WorkflowStarted" else run_id
        if kind == "StepStarted" and show_step_details:
            print(f"{shown.flush()}\nStep {event.step_index + 1}: {printable(event.step_name or '')}", flush=True)
            streamed_text = False
        elif kind == "RunContent" and getattr(event, "parent_run_id", None) == run_id:
            streamed_text = True
            print(shown.feed(fmt.strip_control(event)), end="", flush=True)
        elif kind == "StepCompleted" and not streamed_text and (show_step_details or event.step_index is None):
            print(printable(str(event.content or "")), flush=True)  # a function step's output arrives whole
    print(shown.flush(), end="")
    _workflow_end(workflow.get_run_output(run_id, options.get("session_id")), show_time)


def _workflow_end(run: RunOutput, show_time: bool) -> None:
    steps = f"{len(run.steps)} step{'s' * (len(run.steps) != 1)}"
    parts = [run.model or "workflow", steps] + ([fmt.seconds(run.metrics.duration)] if show_time else [])
    if run.status != RunStatus.completed:
        parts.append(run.status.value + (f": {run.error}" if run.error else ""))
    print("\n— " + printable(" · ".join(parts)), flush=True)
