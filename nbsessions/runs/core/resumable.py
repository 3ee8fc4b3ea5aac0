"""Stepping a generator that asks its driver for work (the run engine, a workflow's steps), written once.

A sync and an async driver differ only in how they do the work asked for (a call or an awaited call); how the
answer or the failure goes back into the generator, and how its end is noticed, lives here, so the twins cannot
drift apart. Pure Python, no I/O, no event loop.
"""

from __future__ import annotations

from collections.abc import Generator
from types import TracebackType
from typing import Any, Generic, TypeVar

Need = TypeVar("Need")


class Cursor(Generic[Need]):
    """``for need in Cursor(work)`` gives what ``work`` asks for, one request at a time.

    Inside ``with cursor.answering():`` the driver does the work and calls ``reply(result)``; the result is sent
    into ``work`` at the next step, or, when the block raises one of ``throws_back``, the failure is thrown in
    instead, so ``work`` decides what it means. ``value`` is what ``work`` returned when it ended.
    """

    __slots__ = ("_work", "_throws_back", "_reply", "_error", "value")

    def __init__(self, work: Generator[Need, Any, Any],
                 throws_back: type[BaseException] = BaseException) -> None:
        self._work = work
        self._throws_back = throws_back
        self._reply: Any = None
        self._error: BaseException | None = None
        self.value: Any = None

    def __iter__(self) -> Cursor[Need]:
        return self

    def __next__(self) -> Need:
        reply, error = self._reply, self._error
        self._reply = self._error = None
        try:
            return self._work.throw(error) if error is not None else self._work.send(reply)
        except StopIteration as done:
            self.value = done.value
            raise

    def reply(self, value: Any) -> None:
        """What to send into ``work`` at its next step."""
        self._reply = value

    def answering(self) -> Cursor[Need]:
        """The block that does one request's work: a failure in it goes back into ``work``, not to the driver."""
        return self

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> bool:
        if error is None or not isinstance(error, self._throws_back):
            return False
        self._error = error
        return True
