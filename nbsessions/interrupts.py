"""Ctrl-C during ``arun`` in a notebook: cancel the runs' tasks so each stores its run, then interrupt the cell.

A signal lands wherever the main thread is, usually in the event loop's ``select``: a plain ``KeyboardInterrupt``
there would leave the runs' tasks pending and their runs ``running``. While ``arun``s are in flight on the main
thread (and nobody else, like ``asyncio.run``, handles SIGINT), Ctrl-C instead cancels their tasks, as
``asyncio.run`` does for its main task; each run is stored cancelled, and the last of them to finish raises
``KeyboardInterrupt`` so the cell stops as it would for sync code. A second Ctrl-C interrupts at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import AsyncIterator
from typing import Any

_running: set[asyncio.Task[Any]] = set()  # tasks of aruns in flight on the main thread
_interrupted: set[asyncio.Task[Any]] = set()  # ...of which Ctrl-C cancelled these, not yet finished
_previous: Any = None


def _on_sigint(signum: int, frame: Any) -> None:
    if _interrupted or not _running:  # a second Ctrl-C, or nothing of ours left: the usual interrupt
        raise KeyboardInterrupt
    for task in list(_running):
        _interrupted.add(task)
        task.cancel()
        task.get_loop().call_soon_threadsafe(lambda: None)  # wake a loop blocked in select()


def _ours_to_handle() -> bool:
    if threading.current_thread() is not threading.main_thread():
        return False
    return signal.getsignal(signal.SIGINT) in (signal.default_int_handler, _on_sigint)


@contextlib.asynccontextmanager
async def ctrl_c_cancels() -> AsyncIterator[None]:
    """Around one ``arun``: while it runs, Ctrl-C cancels its task (see the module docstring)."""
    global _previous
    task = asyncio.current_task()
    if task is None or not _ours_to_handle():
        yield
        return
    if not _running:
        _previous = signal.signal(signal.SIGINT, _on_sigint)
    _running.add(task)
    try:
        yield
    except asyncio.CancelledError:
        if task not in _interrupted:
            raise
        _interrupted.discard(task)
        if _interrupted:  # others are still storing their runs: end quietly, the last one interrupts
            raise
        raise KeyboardInterrupt from None
    finally:
        _running.discard(task)
        _interrupted.discard(task)
        if not _running:
            signal.signal(signal.SIGINT, _previous if _previous is not None else signal.default_int_handler)
