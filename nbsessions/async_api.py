"""The async face of agents and teams: ``arun``, ``acontinue_run`` and the ``aget_*`` session getters.

``arun`` is not a second run loop: it opens the run as ``run`` does and drives the same engine through the
model's async transport (``streams.adrive``). Every store call — opening the run, its writes, the getters —
runs in a worker thread (``asyncio.to_thread``), never on the event loop: a store that answers slowly (a remote
PostgreSQL, a busy disk) would otherwise stall every task of the loop.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from nbsessions.interrupts import caller_task
from nbsessions.run_options import ContinueOptions, RunOptions, given_options, spelled_out
from nbsessions.sessions import SessionsMixin
from nbsessions.streams import AsyncRunStream, acomplete

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from nbsessions.execution import Execution
    from nbsessions.schema import RunOutput

SESSION_GETTERS = ("get_session", "get_sessions", "get_chat_history", "get_session_messages", "get_session_state",
                   "update_session_state", "get_session_summary", "get_session_metrics", "get_session_name",
                   "set_session_name", "get_last_run_output", "get_run_output", "delete_session", "get_runs",
                   "fork_session")


def _async_twin(name: str) -> Callable[..., Coroutine[Any, Any, Any]]:
    """``a<name>``: awaitable, with the same arguments and result as the sync getter of that name."""

    async def twin(self: Any, *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(getattr(self, name), *args, **kwargs)

    sync = getattr(SessionsMixin, name, None)
    if sync is not None:
        twin = functools.wraps(sync)(twin)
    twin.__name__ = twin.__qualname__ = f"a{name}"
    twin.__doc__ = f"``{name}`` for async code: the same arguments and result."
    return twin


class AsyncSessionsMixin:
    """``aget_session``, ``aget_chat_history``, ``aupdate_session_state``…: every session getter's ``a`` twin,
    for agents, teams and workflows."""


class AsyncRunsMixin(AsyncSessionsMixin):
    """What ``Agent`` (and so ``Team``) adds for asyncio code."""

    if TYPE_CHECKING:
        def _begin(self, input: str, **options: Any) -> Execution: ...
        def _resume(self, run_response: Any = None, **answers: Any) -> Execution: ...
        def _session_for_run(self, session_id: str | None) -> str: ...

    @spelled_out(RunOptions)
    def arun(self, input: str, *, stream: bool = False, stream_events: bool = False, yield_run_output: bool = False,
             **options: Unpack[RunOptions]) -> Coroutine[Any, Any, RunOutput] | AsyncRunStream:
        """``run`` on the event loop: ``await agent.arun(...)``, or ``async for event in agent.arun(...,
        stream=True)``. The same engine, driven by the model's async transport; cancelling the task stores the
        run as cancelled.
        """
        given = given_options(RunOptions, options, f"{type(self).__name__}.arun")
        given["session_id"] = self._session_for_run(given.get("session_id"))  # here, not racing in threads
        start = functools.partial(self._begin, input, **given)
        if stream:
            return AsyncRunStream(start, stream_events=stream_events, yield_run_output=yield_run_output)
        return acomplete(start, caller_task())

    @spelled_out(ContinueOptions)
    def acontinue_run(self, run_response: RunOutput | str | None = None, *, stream: bool | None = None,
                      stream_events: bool | None = None, yield_run_output: bool = False,
                      **answers: Unpack[ContinueOptions]) -> Coroutine[Any, Any, RunOutput] | AsyncRunStream:
        """``continue_run`` on the event loop, as ``arun`` is ``run``'s twin (the same arguments)."""
        given = given_options(ContinueOptions, answers, f"{type(self).__name__}.acontinue_run")
        start = functools.partial(self._resume, run_response, **given)
        if stream:
            return AsyncRunStream(start, stream_events=bool(stream_events), yield_run_output=yield_run_output)
        return acomplete(start, caller_task())


for _name in SESSION_GETTERS:
    setattr(AsyncSessionsMixin, f"a{_name}", _async_twin(_name))
