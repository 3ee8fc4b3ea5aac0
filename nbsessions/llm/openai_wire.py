"""The OpenAI wire format, beside the model classes in ``openai.py``: messages and tool specs in the two APIs'
shapes, usage read back, URLs shown without credentials, errors as one line, the key kept out of reprs.

Pure functions and small records (no SDK import), so ``openai.py`` keeps only the request and response flow.
"""

from __future__ import annotations

import email.utils
import json
import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from nbsessions.llm.base import ToolCall, Usage
from nbsessions.records.errors import ModelError
from nbsessions.records.formatting import shorten
from nbsessions.records.schema import Message

OPENAI_BASE_URL = "https://api.openai.com/v1"
PLACEHOLDER_KEY = "not-needed"  # local servers ignore the key, but the SDK refuses to run without one
RESERVED_SETTINGS = frozenset({"model", "messages", "input", "instructions", "stream"})


class _Secret:
    """Holds the API key so that reprs, ``vars()`` dumps and tracebacks never show it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "<secret>"

    __str__ = __repr__


@dataclass
class _Outcome:
    """What a stream reported besides text: usage, and whether the server said the reply was complete."""

    usage: Usage | None = None
    finished: bool = False
    events: int = 0
    calls: list[ToolCall] = field(default_factory=list)
    partial_calls: dict[int, dict[str, str]] = field(default_factory=dict)  # chat streams calls in pieces
    parts: list[str] = field(default_factory=list)  # the text so far: whether a failure came mid-stream, usage

    def kept(self, delta: str) -> str:
        """The text delta, recorded on its way to the caller."""
        self.parts.append(delta)
        return delta


def _close(response: Any) -> Any:
    """Close the HTTP response (a stream holds the connection; a whole reply does not); what ``close`` returned,
    which the async SDK's caller awaits."""
    close = getattr(response, "close", None)
    return close() if callable(close) else None


async def _closed_with_loop(client: Any) -> AsyncIterator[None]:
    """Parked for the loop's life; ``asyncio.run`` (``loop.shutdown_asyncgens``) closes it, and the client."""
    try:
        while True:
            yield
    finally:
        await client.close()


def _check_settings(settings: dict[str, Any]) -> None:
    reserved = sorted(RESERVED_SETTINGS & settings.keys())
    if reserved:
        raise TypeError(f"{', '.join(reserved)} is set by nbsessions from the messages, not a model setting")


# -- messages ----------------------------------------------------------------------------------------


def chat_message(message: Message) -> dict[str, Any]:
    """One ``Message`` as a Chat Completions message."""
    if message.role == "tool":
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.content or ""}
    out: dict[str, Any] = {"role": message.role, "content": message.content or ""}
    if message.role == "assistant" and message.tool_calls:  # content "", never null: llama.cpp refuses null
        out["tool_calls"] = [{"id": call_id, "type": "function", "function": {"name": name, "arguments": args}}
                             for call_id, name, args in map(_call_fields, message.tool_calls)]
    return out


def responses_input(messages: list[Message]) -> tuple[str | None, list[dict[str, Any]]]:
    """System messages become ``instructions``; the rest become ``input`` items, tool calls as function items."""
    system = [m.content for m in messages if m.role == "system" and m.content]
    items: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "system":
            continue
        if m.role == "tool":
            items.append({"type": "function_call_output", "call_id": m.tool_call_id, "output": m.content or ""})
            continue
        if m.content or not m.tool_calls:
            items.append({"role": m.role, "content": m.content or ""})
        for call_id, name, arguments in map(_call_fields, m.tool_calls or []):
            items.append({"type": "function_call", "call_id": call_id, "name": name, "arguments": arguments})
    return ("\n\n".join(system) if system else None), items


def _call_fields(call: dict[str, Any]) -> tuple[str, str, str]:
    """A stored tool call as (id, name, arguments): flat as ``ToolCall.to_dict`` writes it, or chat-shaped."""
    function = call.get("function") or call
    return call.get("id") or "", function.get("name") or "", function.get("arguments") or "{}"


def _tool_fields(spec: dict[str, Any]) -> dict[str, Any]:
    """A provider-neutral tool spec (name, description, JSON-schema parameters) without empty fields."""
    fields = {"name": spec["name"], "description": spec.get("description"),
              "parameters": spec.get("parameters") or {"type": "object", "properties": {}}}
    return {k: v for k, v in fields.items() if v is not None}


def _add_call_piece(partial: dict[int, dict[str, str]], piece: Any) -> None:
    """Chat streams a tool call as pieces keyed by index: the id and name first, then the arguments' text.

    The name is taken once per index: llama-cpp-python repeats it in every piece, which concatenated would be
    ``get_weatherget_weather``. Only the arguments are pieces of one text.
    """
    slot = partial.setdefault(getattr(piece, "index", 0) or 0, {"id": "", "name": "", "arguments": ""})
    function = getattr(piece, "function", None)
    slot["id"] = slot["id"] or getattr(piece, "id", None) or ""
    slot["name"] = slot["name"] or getattr(function, "name", None) or ""
    slot["arguments"] += getattr(function, "arguments", None) or ""


# -- usage -------------------------------------------------------------------------------------------


def _chat_usage(usage: Any) -> Usage:
    return _usage(usage, "prompt", "completion")


def _responses_usage(usage: Any) -> Usage:
    return _usage(usage, "input", "output")


def _usage(usage: Any, sent: str, received: str) -> Usage:
    """The counts both APIs report, under their own names: ``prompt``/``completion`` in Chat Completions,
    ``input``/``output`` in Responses (``<name>_tokens`` and ``<name>_tokens_details``)."""
    inputs = getattr(usage, f"{sent}_tokens_details", None)
    outputs = getattr(usage, f"{received}_tokens_details", None)
    return Usage(input_tokens=getattr(usage, f"{sent}_tokens", 0) or 0,
                 output_tokens=getattr(usage, f"{received}_tokens", 0) or 0,
                 cached_tokens=getattr(inputs, "cached_tokens", 0) or 0,
                 reasoning_tokens=getattr(outputs, "reasoning_tokens", 0) or 0)


# -- small helpers -----------------------------------------------------------------------------------


def is_openai_endpoint(url: str | None) -> bool:
    """True for OpenAI's own API (where a real key is needed and the Responses API exists)."""
    return url is None or (urlsplit(url).hostname or "").lower() == "api.openai.com"


def _host(url: str) -> str:
    return urlsplit(url).netloc.rpartition("@")[2] or url


def _display_url(url: str | None) -> str | None:
    """The URL without any ``user:password@`` part, so credentials in a URL never reach a repr or message."""
    if url is None:
        return None
    parts = urlsplit(url)
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()


def _error_detail(body: object) -> str:
    """What the server said: OpenAI's ``message``, else its whole error body (``{"detail": "Not Found"}``)."""
    if isinstance(body, dict):
        message = body.get("message")
        return message if isinstance(message, str) and message else json.dumps(body, ensure_ascii=False)
    return body if isinstance(body, str) else ""


def _error(message: str, *, status_code: int | None = None, retry_after: float | None = None,
           kind: str | None = None) -> ModelError:
    return ModelError(shorten(message, 400), status_code=status_code, retry_after=retry_after, kind=kind)


def _caused_by(exc: BaseException, name: str) -> bool:
    """Whether an exception of that class name is in the chain (httpx and httpx2 share the names)."""
    seen: BaseException | None = exc
    while seen is not None:
        if any(cls.__name__ == name for cls in type(seen).__mro__):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _cause_text(exc: BaseException) -> str:
    cause = exc.__cause__ or exc.__context__
    return shorten(cause or exc, 240) or type(cause or exc).__name__


def _retry_after(headers: Any) -> int | None:
    """Seconds to wait, from ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date)."""
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return max(0, math.ceil(float(value) / scale))
        except ValueError:
            parsed = email.utils.parsedate_tz(value)
            if parsed is not None:
                return max(0, math.ceil(email.utils.mktime_tz(parsed) - time.time()))
    return None
