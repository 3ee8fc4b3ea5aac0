"""The keywords ``run`` / ``arun`` / ``preview_context`` and ``continue_run`` / ``acontinue_run`` share, each
list declared once.

A list is a ``TypedDict``: type checkers read it from ``**options: Unpack[RunOptions]`` (PEP 692), and
``spelled_out`` writes the same keywords into the method's runtime signature, so ``help()``, Jupyter's Shift-Tab
and IPython's completion show each one as if it were written out. ``given_options`` refuses an unknown keyword
with Python's own ``TypeError`` when the method is called (before ``arun`` makes its coroutine) and gives every
keyword not passed its default, None.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar

if TYPE_CHECKING:
    from nbsessions.llm.base import Model
    from nbsessions.records.requirement import RunRequirement

Method = TypeVar("Method", bound=Callable[..., Any])


class ContextOptions(TypedDict, total=False):
    """What decides a run's context: ``run`` and ``preview_context`` take the same, so a preview cannot drift
    from what a run sends."""

    user_id: str | None
    session_state: dict[str, Any] | None
    add_history_to_context: bool | None
    num_history_runs: int | None
    num_history_messages: int | None
    max_history_tokens: int | None
    instructions: str | None
    model: Model | None
    cell_id: str | None
    add_session_state_to_context: bool | None
    metadata: dict[str, Any] | None


class RunOptions(ContextOptions, total=False):
    """What a run takes besides its prompt and the streaming switches (Agno's names, nbsessions' additions)."""

    session_id: str | None
    debug_mode: bool | None
    execution_count: int | None
    tags: list[str] | None
    parent_run_id: str | None


class ContinueOptions(TypedDict, total=False):
    """What continuing a paused run takes besides the run itself and the streaming switches."""

    run_id: str | None
    requirements: list[RunRequirement] | None
    session_id: str | None
    approve: bool | None
    user_input: dict[str, Any] | None
    results: dict[str, str] | None
    model: Model | None


def _hints(options: type) -> dict[str, Any]:
    """Each keyword's annotation as written (``TypedDict`` keeps postponed annotations as ``ForwardRef``s)."""
    return {name: getattr(hint, "__forward_arg__", hint) for name, hint in options.__annotations__.items()}


def spelled_out(options: type, defaults: Mapping[str, Any] | None = None) -> Callable[[Method], Method]:
    """Decorator: the method's signature lists ``options``' keywords in place of ``**options``, each with its
    default from ``defaults`` (None when not there)."""

    def decorate(method: Method) -> Method:
        signature = inspect.signature(method)
        parameters = [p for p in signature.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
        parameters += [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=(defaults or {}).get(name),
                                         annotation=hint) for name, hint in _hints(options).items()]
        method.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
        return method

    return decorate


def given_options(options: type, given: Mapping[str, Any], caller: str) -> dict[str, Any]:
    """Every keyword of ``options``, None where not given; an unknown one raises as a misspelt argument does."""
    for name in given:
        if name not in options.__annotations__:
            raise TypeError(f"{caller}() got an unexpected keyword argument {name!r}")
    return {name: given.get(name) for name in options.__annotations__}
