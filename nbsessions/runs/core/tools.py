"""Python functions as tools: a JSON schema from the signature and docstring, and a safe way to call them.

A tool may ask for a human first (``requires_confirmation``, ``requires_user_input``) or be run outside
(``external_execution``): the run then pauses and ``Agent.continue_run`` resumes it.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

RUN_CONTEXT_PARAM = "run_context"
RUNTIME_KEYS = ("current_user_id", "current_session_id", "current_run_id")
"""What Agno adds to a run's session state while it runs (tools and ``{current_user_id}`` read them); never
stored."""


def runtime_state(run_id: str, session_id: str, user_id: str | None) -> dict[str, Any]:
    """The run's own keys in its session state, as Agno's ``_inject_run_ids`` sets them."""
    return {**({"current_user_id": user_id} if user_id else {}), "current_session_id": session_id,
            "current_run_id": run_id}


def stored_part(state: dict[str, Any]) -> dict[str, Any]:
    """The state without the run's own keys: what may be written to the store."""
    return {k: v for k, v in state.items() if k not in RUNTIME_KEYS}

_JSON_TYPES: dict[Any, str] = {str: "string", int: "integer", float: "number", bool: "boolean",
                               list: "array", dict: "object"}


@dataclass
class RunContext:
    """What a tool that asks for ``run_context`` receives: changes to ``session_state`` persist with the run."""

    session_id: str
    run_id: str
    user_id: str | None
    session_state: dict[str, Any]
    metadata: dict[str, Any] | None = None


@dataclass
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]
    function: Callable[..., Any]
    wants_context: bool = False
    requires_confirmation: bool = False
    requires_user_input: bool = False
    user_input_fields: list[str] = field(default_factory=list)
    external_execution: bool = False
    async_function: Callable[..., Any] | None = None  # what ``arun`` awaits instead of ``function``, if given
    stop_after_tool_call: bool = False  # Agno's: the tool's result is the run's reply, the model is not asked again

    @property
    def pauses(self) -> bool:
        return self.requires_confirmation or self.requires_user_input or self.external_execution

    def spec(self) -> dict[str, Any]:
        """The provider-neutral description sent to the model; ``user_input_fields`` are the human's to fill,
        so the model is not asked for them (as in Agno)."""
        parameters = self.parameters
        hidden = set(self.user_input_fields) if self.requires_user_input else set()
        if hidden:
            parameters = {**parameters, "required": [n for n in parameters.get("required", []) if n not in hidden],
                          "properties": {n: p for n, p in parameters.get("properties", {}).items()
                                         if n not in hidden}}
        return {"name": self.name, "description": self.description, "parameters": parameters}

    def call(self, arguments: dict[str, Any], context: RunContext | None) -> str:
        """Run the function; its result (or its error) becomes text for the model, never a crashed run."""
        try:
            result = self.function(**self._kwargs(arguments, context))
            if inspect.isawaitable(result):
                _discard(result)
                return f"error: {self.name} is an async tool: run the agent with arun"
        except Exception as exc:  # the model sees the error and can try again
            return f"error: {type(exc).__name__}: {exc}"
        return _text(result)

    async def acall(self, arguments: dict[str, Any], context: RunContext | None) -> str:
        """As ``call``, from ``arun``: async tools (and ``async_function``) are awaited; a plain function runs in
        a worker thread, so a slow one (a web request, a query) does not stall the loop's other runs."""
        kwargs = self._kwargs(arguments, context)
        try:
            if self.async_function is not None or inspect.iscoroutinefunction(self.function):
                result = (self.async_function or self.function)(**kwargs)
            else:
                result = await asyncio.to_thread(self.function, **kwargs)
            if inspect.isawaitable(result):
                result = await result
        except Exception as exc:
            return f"error: {type(exc).__name__}: {exc}"
        return _text(result)

    def _kwargs(self, arguments: dict[str, Any], context: RunContext | None) -> dict[str, Any]:
        kwargs = dict(arguments)
        if self.wants_context:
            kwargs[RUN_CONTEXT_PARAM] = context
        return kwargs


def _text(result: Any) -> str:
    return result if isinstance(result, str) else json.dumps(result, default=repr)


def _discard(awaitable: Any) -> None:
    close = getattr(awaitable, "close", None)
    if close is not None:
        close()  # no "never awaited" warning for a coroutine we refuse to run


def _json_type(annotation: Any) -> dict[str, Any]:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _json_type(options[0]) if len(options) == 1 else {}
    if origin in (list, tuple, set):
        args = typing.get_args(annotation)
        return {"type": "array", **({"items": _json_type(args[0])} if args else {})}
    if origin is typing.Literal:
        return {"enum": list(typing.get_args(annotation))}
    base = origin or annotation
    return {"type": _JSON_TYPES[base]} if base in _JSON_TYPES else {}


def _param_docs(doc: str) -> dict[str, str]:
    """``name: text`` lines in the docstring describe parameters (Google style ``Args:`` works)."""
    out: dict[str, str] = {}
    for line in doc.splitlines():
        name, sep, text = line.strip().partition(":")
        name = name.split(" ")[0].strip()
        if sep and name.isidentifier() and text.strip():
            out[name] = text.strip()
    return out


def make_tool(fn: Callable[..., Any], **flags: Any) -> Tool:
    """Describe ``fn`` for the model from its signature, type hints and docstring."""
    if isinstance(fn, Tool):
        return fn
    doc = inspect.getdoc(fn) or ""
    try:
        hints = typing.get_type_hints(fn)
    except (NameError, TypeError):  # a hint naming something imported locally: describe it without a type
        hints = {}
    docs = _param_docs(doc)
    properties: dict[str, Any] = {}
    required: list[str] = []
    wants_context = False
    for name, param in inspect.signature(fn).parameters.items():
        if name == RUN_CONTEXT_PARAM:
            wants_context = True
            continue
        schema = _json_type(hints.get(name, Any))
        if name in docs:
            schema["description"] = docs[name]
        properties[name] = schema
        if param.default is inspect.Parameter.empty:
            required.append(name)
    return Tool(
        name=fn.__name__, description=doc.split("\n\n")[0].strip(), function=fn, wants_context=wants_context,
        parameters={"type": "object", "properties": properties, "required": required},
        **{**getattr(fn, "__nbsessions_tool__", {}), **flags},
    )


def tool(fn: Callable[..., Any] | None = None, *, requires_confirmation: bool = False,
         requires_user_input: bool = False, user_input_fields: list[str] | None = None,
         external_execution: bool = False, stop_after_tool_call: bool = False) -> Any:
    """Mark a function as a tool, optionally one that pauses the run for a human (``@tool`` or ``@tool(...)``)
    or whose result ends the run as its reply (``stop_after_tool_call``)."""
    flags = {"requires_confirmation": requires_confirmation, "requires_user_input": requires_user_input,
             "user_input_fields": list(user_input_fields or []), "external_execution": external_execution,
             "stop_after_tool_call": stop_after_tool_call}

    def mark(f: Callable[..., Any]) -> Callable[..., Any]:
        f.__nbsessions_tool__ = flags  # type: ignore[attr-defined]
        return f

    return mark(fn) if fn is not None else mark


def update_session_state(run_context: RunContext, session_state_updates: dict) -> str:
    """Update the shared session state.  Provide any updates as a dictionary of key-value pairs.

    session_state_updates: The updates to apply to the shared session state. Should be a dictionary of key-value pairs.
    """
    run_context.session_state.update(session_state_updates)
    return f"Updated session state: {run_context.session_state}"  # Agno's reply, word for word
