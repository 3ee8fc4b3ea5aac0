"""The two transports that drive the one run engine: a sync one (``Model.stream``) and an async one
(``Model.astream``), and the event streams users iterate.

Each driver only fulfils the engine's requests — open the model stream, fetch the next item, run a tool — and
passes every failure back into the engine, which decides what is stored. Closing a stream early, Ctrl-C or a
cancelled task close the engine, which stores the run as cancelled with what had arrived.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

from nbsessions.llm.base import Model
from nbsessions.records.events import ALWAYS_STREAMED, BaseAgentRunEvent
from nbsessions.records.schema import RunOutput
from nbsessions.runs.core.execution import (
    END,
    NEXT_ITEM,
    PREPARE,
    Execution,
    ModelRequest,
    Steps,
    StoreCall,
    StreamClosed,
    ToolRequest,
)
from nbsessions.runs.core.interrupts import ctrl_c_cancels
from nbsessions.runs.core.resumable import Cursor

Event = BaseAgentRunEvent


def drive(steps: Steps, execution: Execution) -> Iterator[Event]:
    """Run the engine on the calling thread: the model through ``Model.stream``, tools through ``Tool.call``."""
    port = _Port(execution.model)
    cursor = Cursor(steps)
    try:
        for need in cursor:
            if isinstance(need, BaseAgentRunEvent):
                yield need
                continue
            with cursor.answering():  # the model's failure, or Ctrl-C inside it: the engine stores it
                cursor.reply(_serve(need, port))
    finally:
        try:
            port.close()
        finally:
            for need in _closing(steps):  # a stream closed mid-run: the engine stores it as cancelled
                need.call()


async def adrive(steps: Steps, execution: Execution) -> AsyncIterator[Event]:
    """The same, on the event loop: the model through ``Model.astream``, tools through ``Tool.acall``, and the
    store in a worker thread."""
    port = _AsyncPort(execution.model)
    cursor = Cursor(steps)
    try:
        for need in cursor:
            if isinstance(need, BaseAgentRunEvent):
                yield need
                continue
            with cursor.answering():  # the model's failure, or a cancelled task: the engine stores it
                cursor.reply(await _serve(need, port))
    finally:
        try:
            await port.close()
        finally:
            for need in _closing(steps):
                await asyncio.to_thread(need.call)


def _closing(steps: Steps) -> Iterator[StoreCall]:
    """Stop the engine as ``steps.close()`` would, giving the store writes it makes on the way (the run stored
    as cancelled) to the caller, which makes them where it makes every store call; an ended engine gives none."""
    try:
        need = steps.throw(StreamClosed())
        while True:
            if isinstance(need, StoreCall):
                yield need
            need = steps.send(None)  # events of a closed stream have nobody to go to
    except (StreamClosed, StopIteration):
        return
    finally:
        steps.close()


def _serve(need: Any, port: Any) -> Any:
    """The engine's request as a call on the port: its answer from ``_Port``, an awaitable of it from
    ``_AsyncPort``."""
    if need is NEXT_ITEM:
        return port.next_item()
    if isinstance(need, StoreCall):
        return port.store(need)
    if isinstance(need, ModelRequest):
        return port.open(need)
    if need is PREPARE:
        return port.prepare()
    if isinstance(need, ToolRequest):
        return port.call_tool(need)
    raise TypeError(f"the run engine asked for {need!r}, which no driver serves")


def _ask(request: ModelRequest, streaming: Callable[..., Any], whole: Callable[..., Any]) -> Any:
    """The model's stream for a request: deltas (``streaming``) or one whole reply (``whole``)."""
    ask = streaming if request.streamed else whole
    return ask(request.messages, request.tools) if request.tools else ask(request.messages)


class _Port:
    """The sync transport: the open model stream, ``Model.stream`` / ``complete``, ``Tool.call``."""

    def __init__(self, model: Model) -> None:
        self.model = model
        self.stream: Any = None

    def next_item(self) -> Any:
        return next(self.stream, END)

    def open(self, request: ModelRequest) -> None:
        self.close()
        self.stream = iter(_ask(request, self.model.stream, self.model.complete))

    def prepare(self) -> None:
        self.model.prepare()

    def call_tool(self, request: ToolRequest) -> Any:
        return request.tool.call(request.arguments, request.context)

    def store(self, request: StoreCall) -> Any:
        return request.call()

    def close(self) -> None:
        close = getattr(self.stream, "close", None)
        if close is not None:
            close()


class _AsyncPort:
    """The async transport: ``Model.astream`` / ``acomplete``, ``Tool.acall``, each awaited by ``adrive``."""

    def __init__(self, model: Model) -> None:
        self.model = model
        self.stream: Any = None

    def next_item(self) -> Awaitable[Any]:  # anext's own awaitable: no coroutine per item
        return anext(self.stream, END)

    async def open(self, request: ModelRequest) -> None:
        await self.close()
        self.stream = aiter(_ask(request, self.model.astream, self.model.acomplete))

    async def prepare(self) -> None:
        await self.model.aprepare()

    async def call_tool(self, request: ToolRequest) -> Any:
        return await request.tool.acall(request.arguments, request.context)

    def store(self, request: StoreCall) -> Awaitable[Any]:
        return asyncio.to_thread(request.call)  # never on the loop: a slow store would stall every task

    async def close(self) -> None:
        close = getattr(self.stream, "aclose", None)
        if close is not None:
            await close()


def _wanted(event: Event, stream_events: bool, run_id: str | None = None) -> bool:
    """With ``stream_events`` every event; else the reply and how the run ended — never a nested run's (a team
    member's events are forwarded only with ``stream_events``)."""
    if stream_events:
        return True
    return event.event in ALWAYS_STREAMED and (run_id is None or event.run_id == run_id)


class RunStream:
    """The events of a streaming run (``for event in agent.run(..., stream=True)``).

    ``.run`` is the RunOutput, final once iteration ends. Nothing is stored until the first event is asked for,
    so a stream nobody iterates leaves no run behind; ``close()`` stops early and stores the run as cancelled
    with what had arrived.
    """

    def __init__(self, execution: Execution, *, stream_events: bool = False, yield_run_output: bool = False) -> None:
        self._execution = execution
        self.run = execution.run
        self.stream_events = stream_events
        self._events = self._select(yield_run_output)

    def _select(self, yield_run_output: bool) -> Iterator[Event | RunOutput]:
        events = drive(self._execution.steps(), self._execution)
        try:
            for event in events:
                if _wanted(event, self.stream_events, self.run.run_id):
                    yield event
        finally:
            events.close()
        if yield_run_output:
            yield self.run

    def __iter__(self) -> Iterator[Event | RunOutput]:
        return self._events

    def __next__(self) -> Event | RunOutput:
        return next(self._events)

    def with_events(self) -> RunStream:
        """Also yield the run's milestones (as ``stream_events=True``): how the notebook shows tool calls."""
        self.stream_events = True
        return self

    def whole_replies(self) -> RunStream:
        """Ask the model for whole replies (``stream: false``) while still iterating here (``--no-stream``)."""
        self._execution.streamed = False
        return self

    def close(self) -> None:
        self._events.close()


class AsyncRunStream:
    """The async twin of ``RunStream`` (``async for event in agent.arun(..., stream=True)``); ``aclose()`` stops.

    Opening the run (session, context) is a store call too, so it waits for the first ``__anext__``, which
    makes it in a worker thread; ``.run`` is None until then.
    """

    def __init__(self, start: Callable[[], Execution], *, stream_events: bool = False,
                 yield_run_output: bool = False) -> None:
        self._start = start
        self._execution: Execution | None = None
        self._events = self._select(stream_events, yield_run_output)

    @property
    def run(self) -> RunOutput | None:
        return self._execution.run if self._execution is not None else None

    async def _select(self, stream_events: bool, yield_run_output: bool) -> AsyncIterator[Event | RunOutput]:
        self._execution = execution = await asyncio.to_thread(self._start)
        events = adrive(execution.steps(), execution)
        async with ctrl_c_cancels():
            try:
                async for event in events:
                    if _wanted(event, stream_events, execution.run.run_id):
                        yield event
            finally:
                await events.aclose()
        if yield_run_output:
            yield execution.run

    def __aiter__(self) -> AsyncIterator[Event | RunOutput]:
        return self

    async def __anext__(self) -> Event | RunOutput:
        return await self._events.__anext__()

    async def aclose(self) -> None:
        await self._events.aclose()


def complete(execution: Execution) -> RunOutput:
    """Run to the end on this thread and return the stored run (``stream=False``)."""
    execution.streamed = False  # nobody reads the deltas: one whole reply per request, as servers prefer
    for _ in drive(execution.steps(), execution):
        pass
    return execution.run


async def acomplete(start: Callable[[], Execution], caller: asyncio.Task[Any] | None = None) -> RunOutput:
    """Open the run (``start``, in a worker thread), run it to the end on the event loop and return the stored
    run (``await agent.arun(...)``); ``caller`` is the task that called ``arun``, stopped too by Ctrl-C."""
    execution = await asyncio.to_thread(start)
    execution.streamed = False
    events = adrive(execution.steps(), execution)
    async with ctrl_c_cancels(caller):
        try:
            async for _ in events:
                pass
        finally:
            await events.aclose()
    return execution.run
