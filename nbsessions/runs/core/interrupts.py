"""Ctrl-C during ``arun`` in IPython: cancel the runs' tasks so each stores its run, and stop the cell cleanly.

A signal lands wherever the main thread is, usually in the event loop's ``select``: a plain ``KeyboardInterrupt``
there would leave the runs' tasks pending and their runs ``running``. While ``arun``s are in flight on the main
thread (and nobody else handles SIGINT: ``asyncio.run`` and ipykernel do, by cancelling tasks themselves), Ctrl-C
instead cancels their tasks, and the tasks that called ``arun`` (a cell awaiting ``asyncio.gather``), as
``asyncio.run`` cancels its main task. Each run is stored cancelled; a cell that awaited one ``arun`` ends with
``KeyboardInterrupt``, one that awaited several with ``CancelledError``, and nothing is left pending. A second
Ctrl-C interrupts at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import AsyncIterator
from typing import Any

_running: dict[asyncio.Task[Any], asyncio.Task[Any] | None] = {}  # task of an arun -> the task that called it
_interrupted: set[asyncio.Task[Any]] = set()
_previous: Any = None


def caller_task() -> asyncio.Task[Any] | None:
    """The task calling ``arun`` now (before its coroutine runs, perhaps in another task under ``gather``)."""
    try:
        return asyncio.current_task()
    except RuntimeError:  # no running loop: the coroutine will be run by someone else
        return None


def _on_sigint(signum: int, frame: Any) -> None:
    if _interrupted or not _running:  # a second Ctrl-C, or nothing of ours left: the usual interrupt
        raise KeyboardInterrupt
    tasks = set(_running) | {c for c in _running.values() if c is not None}
    for task in tasks:
        if not task.done():
            _interrupted.add(task)
            task.cancel()
            task.get_loop().call_soon_threadsafe(lambda: None)  # wake a loop blocked in select()


def _ours_to_handle() -> bool:
    if threading.current_thread() is not threading.main_thread():
        return False
    return signal.getsignal(signal.SIGINT) in (signal.default_int_handler, _on_sigint)


@contextlib.asynccontextmanager
async def ctrl_c_cancels(caller: asyncio.Task[Any] | None = None) -> AsyncIterator[None]:
    """Around one ``arun`` (called from ``caller``): while it runs, Ctrl-C cancels it (see the module docstring)."""
    global _previous
    task = asyncio.current_task()
    if task is None or not _ours_to_handle():
        yield
        return
    if not _running:
        _previous = signal.signal(signal.SIGINT, _on_sigint)
    _running[task] = caller
    try:
        yield
    except asyncio.CancelledError:
        if task in _interrupted and caller in (None, task):  # the cell awaited just this run: interrupt it
            raise KeyboardInterrupt from None
        raise
    finally:
        _running.pop(task, None)
        _interrupted.discard(task)
        if not _running:
            _interrupted.clear()
            signal.signal(signal.SIGINT, _previous if _previous is not None else signal.default_int_handler)
