"""Models that need no network: the demo default and the test doubles, shipped in the library."""

from __future__ import annotations

import inspect
import re
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import Any

from nbsessions.llm.base import Model, ToolCall, Usage, estimate_tokens
from nbsessions.records.schema import Message

ReplyFunction = Callable[..., "str | ToolCall | Iterable[str | ToolCall]"]


def _usage(messages: list[Message], reply: str) -> Usage:
    """Counts estimated from the text (no tokenizer behind these models), flagged so, as a server's would be."""
    prompt = "\n".join(m.content or "" for m in messages)
    return Usage(input_tokens=estimate_tokens(prompt), output_tokens=estimate_tokens(reply), estimated=True)


def _chunks(text: str) -> Iterator[str]:
    """Split into word-sized pieces (whitespace kept) so streaming looks like streaming."""
    yield from re.findall(r"\S+\s*|\s+", text)


class OfflineModel(Model):
    """Deterministic replies that show what the model received: handy for demos, docs and tests.

    The same messages always give the same reply and the same token counts.
    """

    provider = "offline"
    supports_tools = False
    is_local = True
    is_scripted = True
    follows_prompts = False

    def __init__(self, id: str = "offline") -> None:
        self.id = id

    def reply(self, messages: list[Message]) -> str:
        prompt = next((m.content or "" for m in reversed(messages) if m.role == "user"), "")
        history = sum(1 for m in messages if m.from_history)
        system = next((m.content or "" for m in messages if m.role == "system"), "")
        quoted = "\n".join(f"> {line}" for line in prompt.strip().splitlines())
        lines = [
            "**Offline model** — you said:",
            "",
            quoted,
            "",
            f"- words in your prompt: {len(prompt.split())}",
            f"- history messages in context: {history}",
        ]
        if system:
            lines.append(f"- system prompt: {system.strip()}")
        lines += ["", "Set `OPENAI_API_KEY` or a `base_url` to talk to a real model."]
        return "\n".join(lines)

    def stream(self, messages: list[Message], tools: list[dict[str, Any]] | None = None
               ) -> Iterator[str | ToolCall | Usage]:
        text = self.reply(messages)
        yield from _chunks(text)
        yield _usage(messages, text)


class FunctionModel(Model):
    """A model whose reply is computed by ``fn(messages)`` or ``fn(messages, tools)``.

    Return a string, or yield text chunks and ``ToolCall``s to stream and call tools; raise ``ModelError`` to
    script a provider failure. An ``async def`` function (or async generator) scripts a model for ``arun``,
    which can then wait on real events. Tests and demos script whole conversations this way.

    ``supports_tools`` says whether ``fn`` takes the tool specs as its second argument; by default it does
    when it accepts two arguments.
    """

    provider = "function"
    is_local = True
    is_scripted = True

    def __init__(self, fn: ReplyFunction, id: str = "function", *, supports_tools: bool | None = None) -> None:
        self.fn = fn
        self.id = id
        self.supports_tools = (len(inspect.signature(fn).parameters) >= 2 if supports_tools is None
                               else supports_tools)

    def _result(self, messages: list[Message], tools: list[dict[str, Any]] | None) -> Any:
        result = self.fn(messages, tools or []) if self.supports_tools else self.fn(messages)
        return [result] if isinstance(result, (str, ToolCall)) else result

    def stream(self, messages: list[Message], tools: list[dict[str, Any]] | None = None
               ) -> Iterator[str | ToolCall | Usage]:
        result = self._result(messages, tools)
        if inspect.isawaitable(result) or hasattr(result, "__aiter__"):
            getattr(result, "close", lambda: None)()
            raise TypeError("this FunctionModel's function is async: run the agent with arun")
        parts: list[str] = []
        for chunk in result:
            yield _kept(chunk, parts)
        yield _usage(messages, "".join(parts))

    async def astream(self, messages: list[Message], tools: list[dict[str, Any]] | None = None
                      ) -> AsyncIterator[str | ToolCall | Usage]:
        result = self._result(messages, tools)
        if inspect.isawaitable(result):
            result = await result
            result = [result] if isinstance(result, (str, ToolCall)) else result
        parts: list[str] = []
        if hasattr(result, "__aiter__"):
            async for chunk in result:
                yield _kept(chunk, parts)
        else:
            for chunk in result:
                yield _kept(chunk, parts)
        yield _usage(messages, "".join(parts))


def _kept(chunk: str | ToolCall, parts: list[str]) -> str | ToolCall:
    """Pass a scripted item through, remembering its text for the usage estimate."""
    if isinstance(chunk, str):
        parts.append(chunk)
    return chunk
