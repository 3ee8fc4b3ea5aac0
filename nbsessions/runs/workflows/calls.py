"""The calls a workflow run's steps ask their driver to make, and the three drivers that make them: ``drive`` in
the thread, ``adrive`` on the event loop, ``drive_stream`` yielding the events as they come.

A call is one step's work (``StepCall``) or a Parallel block's branches (``Branches``): the only parts that differ
between ``run`` and ``arun``; the steps themselves are written once, as generators (``step_runner.py``).
"""

from __future__ import annotations

import asyncio
import inspect
import queue
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextvars import copy_context
from dataclasses import dataclass, field
from typing import Any

from nbsessions.records.schema import RunOutput
from nbsessions.records.workflow_events import BaseWorkflowRunOutputEvent
from nbsessions.runs.agent import Agent
from nbsessions.runs.core.resumable import Cursor
from nbsessions.runs.workflows.steps import StepFunction

_MISSING = object()
_DONE = object()


@dataclass
class StepCall:
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


@dataclass
class Branches:
    """A Parallel block's branches, each a generator of calls like the workflow's steps: run at once in threads
    (``run``) or as tasks (``arun``); the answer is each branch's result, in order."""

    works: list[Generator[Any, Any, Any]]
    ended: Callable[[], None] = lambda: None  # called however the branches end, even interrupted or cancelled

    def run(self) -> list[Any]:
        try:
            with ThreadPoolExecutor(max_workers=len(self.works), thread_name_prefix="parallel-step") as pool:
                futures = [pool.submit(copy_context().run, drive, work) for work in self.works]
                return [future.result() for future in futures]
        finally:
            self.ended()

    async def arun(self) -> list[Any]:
        try:
            return list(await asyncio.gather(*(adrive(work) for work in self.works)))
        finally:
            self.ended()

    def stream(self, stream_events: bool) -> Generator[Any, Any, list[Any]]:
        """``run`` that yields every branch's events as they come, from one queue."""
        try:
            return (yield from self._stream(stream_events))
        finally:
            self.ended()

    def _stream(self, stream_events: bool) -> Generator[Any, Any, list[Any]]:
        box: queue.Queue[Any] = queue.Queue()

        def one(work: Generator[Any, Any, Any]) -> Any:
            events = drive_stream(work, stream_events)
            try:
                while True:
                    try:
                        box.put(next(events))
                    except StopIteration as done:
                        return done.value
            finally:
                box.put(_DONE)

        with ThreadPoolExecutor(max_workers=len(self.works), thread_name_prefix="parallel-step") as pool:
            futures = [pool.submit(copy_context().run, one, work) for work in self.works]
            finished = 0
            while finished < len(futures):
                item = box.get()
                if item is _DONE:
                    finished += 1
                else:
                    yield item
            return [future.result() for future in futures]


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
            if isinstance(call, Branches):
                cursor.reply((yield from call.stream(stream_events)))
            elif isinstance(call, StepCall) and isinstance(call.target, Agent):
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
