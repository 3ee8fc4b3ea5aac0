"""Agno's ``print_response`` / ``aprint_response``: run a prompt and print the exchange as plain text.

Plain text on stdout is never rendered as HTML by Jupyter, so a reply cannot inject markup; control
characters (terminal escape sequences) are still dropped from the model's text. The run is stored exactly as
``run`` stores it; like Agno's, the methods return None (the run is ``get_last_run_output()``).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from nbsessions import formatting as fmt
from nbsessions.redact import StreamRedactor, redact
from nbsessions.run_options import RunOptions, given_options, spelled_out
from nbsessions.schema import RunOutput, RunStatus

if TYPE_CHECKING:
    from typing_extensions import Unpack

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """Model text without control characters (newlines and tabs kept), and without secrets."""
    return redact(_CONTROL.sub("", text))


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
    print(shown.feed(_CONTROL.sub("", str(item))), end="", flush=True)
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
