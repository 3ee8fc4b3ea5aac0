"""A run shown in a notebook cell: one output updated in place while the reply streams, then the footer.

Every frame is built by ``render.reply_bundle``, so model text reaches the front end only as sanitised HTML (and
plain text). Failures end as one short line instead of a traceback through nbsessions' internals: the user needs
what happened, not where in our code it was noticed.
"""

from __future__ import annotations

import html
import time
from collections.abc import Callable

from IPython.display import DisplayHandle, clear_output, display

from nbsessions.presentation.render import reply_bundle
from nbsessions.records.errors import ModelError, NbSessionsError
from nbsessions.records.events import RunContentEvent, ToolCallStartedEvent
from nbsessions.records.schema import RunOutput, RunStatus
from nbsessions.runs.core.streams import RunStream

Bundle = dict[str, str]


def _one_red_line(kind: str, message: str) -> list[str]:
    return [f"\x1b[0;31m{kind}\x1b[0m: {message}"]


class CellError(NbSessionsError):
    """A run from a cell failed; IPython shows it as one line (``_render_traceback_``), not a traceback."""

    def __init__(self, message: str, *, kind: str = "ModelError", run: RunOutput | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.run = run

    def _render_traceback_(self) -> list[str]:
        return _one_red_line(self.kind, str(self))


class CellInterrupted(KeyboardInterrupt):
    """Ctrl-C during a reply or a batch: still an interrupt (so "Run all" stops), shown as one line."""

    def __init__(self, run: RunOutput | None,
                 message: str = "interrupted: the partial reply is kept as a cancelled run") -> None:
        super().__init__(message)
        self.run = run

    def _render_traceback_(self) -> list[str]:
        return _one_red_line("KeyboardInterrupt", str(self))


def waiting_bundle(text: str) -> Bundle:
    """What the output shows before the first words arrive (our own text, escaped)."""
    return {"text/html": f'<div class="nbsessions-reply" style="opacity:.6">… {html.escape(text)}</div>',
            "text/plain": f"… {text}"}


class LiveOutput:
    """One display slot: shown once, then updated in place, at most every ``interval`` seconds while streaming.

    With ``live=False`` nothing is shown until the final frame (``--no-stream``).
    """

    def __init__(self, *, live: bool = True, interval: float = 0.1,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.live = live
        self.interval = interval
        self.clock = clock
        self.handle: DisplayHandle | None = None
        self.updates = 0
        self._last = float("-inf")

    def show(self, bundle: Bundle) -> None:
        """Put ``bundle`` in the slot now (creating it on first use)."""
        if self.handle is None:
            self.handle = display(bundle, raw=True, display_id=True)
        else:
            self.handle.update(bundle, raw=True)
        self.updates += 1
        self._last = self.clock()

    def progress(self, make: Callable[[], Bundle]) -> None:
        """Show a streaming frame unless one was shown less than ``interval`` ago (``make`` is then not called)."""
        if self.live and self.clock() - self._last >= self.interval:
            self.show(make())

    def clear(self) -> None:
        """Remove the slot when a run failed before any words: the error line that follows is the cell's only
        output, with no empty frame above it (the protocol can only clear a cell's outputs, once the next comes)."""
        if self.handle is not None:
            clear_output(wait=True)
            self.handle = None


def show_run(stream: RunStream, label: str, *, waiting: str = "", live: bool = True, interval: float = 0.1,
             clock: Callable[[], float] = time.monotonic) -> RunOutput:
    """Stream ``stream`` into the cell and return the finished run.

    Raises ``CellError`` when the provider failed (the run is stored as error) and ``CellInterrupted`` on Ctrl-C
    (the run is stored as cancelled); in both cases what arrived stays visible, with the footer.
    """
    out = LiveOutput(live=live, interval=interval, clock=clock)
    try:
        if live:
            out.show(waiting_bundle(waiting))
        for event in stream.with_events():
            if isinstance(event, RunContentEvent):  # a team's is TeamRunContent: the same record
                out.progress(lambda: reply_bundle(stream.run))
            elif isinstance(event, ToolCallStartedEvent) and live and not stream.run.content:
                out.show(waiting_bundle(f"{waiting} · calling {event.tool.tool_name}"))  # escaped there
    except KeyboardInterrupt:
        stream.close()  # the Ctrl-C may have landed here rather than in the model: store the run as cancelled
        _final(out, stream.run, label)
        raise CellInterrupted(stream.run) from None
    except ModelError as exc:
        run = exc.run or stream.run
        _final(out, run, label)
        raise CellError(str(exc), run=run) from None
    _final(out, stream.run, label)
    return stream.run


def _final(out: LiveOutput, run: RunOutput, label: str) -> None:
    """The finished frame with its footer; a failure with no words at all leaves only the error line."""
    if run.content or run.status == RunStatus.completed:
        out.show(reply_bundle(run, label))
    else:
        out.clear()
