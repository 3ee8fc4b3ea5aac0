"""The model contract: one generator method that streams text, then reports usage (and its async twin).

Everything above this layer (the Agent, the magic, the panel) knows models only through ``Model.stream``;
provider SDKs stay inside their own module.
"""

from __future__ import annotations

import copy
import json
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

from nbsessions.records.schema import Message

MESSAGE_OVERHEAD = 4
"""Tokens a chat template adds around each message (role markers, separators): OpenAI's own count is 3-4."""
REPLY_PRIMING = 3
"""Tokens a chat template adds to start the assistant's reply."""


@dataclass
class Usage:
    """Token counts as the provider reported them (or as an offline model estimates them).

    ``estimated`` is True when the counts were estimated from the text — a server sent no usage, or the model has
    no tokenizer (offline, ``FunctionModel``): recorded on the run (``Metrics.tokens_estimated``) and shown with a
    ``~`` so an estimate is never read as a real count.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    estimated: bool = False

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        """A run that calls tools makes several requests; its usage is their sum (estimated if any part was)."""
        return Usage(self.input_tokens + other.input_tokens, self.output_tokens + other.output_tokens,
                     self.cached_tokens + other.cached_tokens, self.reasoning_tokens + other.reasoning_tokens,
                     self.estimated or other.estimated)


@dataclass
class ToolCall:
    """The model asks for a tool: ``arguments`` is the JSON text exactly as the model wrote it."""

    id: str
    name: str
    arguments: str = "{}"

    def to_dict(self) -> dict[str, str]:
        return {"id": self.id, "name": self.name, "arguments": self.arguments}


class Model(ABC):
    """A chat model. ``id`` names the model, ``provider`` who serves it (used for prices and footers)."""

    id: str
    provider: str
    settings: dict[str, Any] = {}  # generation settings (temperature, ...) sent with every request
    context_window: int | None = None  # tokens the model accepts, when known (else looked up by id)

    def with_settings(self, **settings: Any) -> Model:
        """A copy of this model with some settings changed: one more axis for prompt experiments."""
        clone = copy.copy(self)
        clone.settings = {**self.settings, **settings}
        return clone

    def secrets(self) -> tuple[str, ...]:
        """Values (API keys) that must never appear in a prompt: it is sent to the server and stored."""
        return ()

    def without_retries(self) -> Model:
        """This model with its client's own retries off, for callers that retry themselves (batch, compare)."""
        return self

    # What the model can do, declared by each class (as simonw/llm's models do) so callers never guess from
    # provider strings, argument counts or ``getattr``.
    can_stream: bool = True
    """Replies arrive as deltas; a model without streaming yields its whole reply as one item."""
    supports_tools: bool = True
    """Tool specs passed to ``stream`` reach the model; without it they are ignored."""
    needs_key: bool = False
    """Requests carry an API key that must be configured (the error says which variable)."""
    lists_models: bool = False
    """``available_models()`` asks the server which ids it serves, so a typo is refused before a run."""
    is_local: bool = False
    """Served somewhere other than the provider's own API (a local or self-hosted server, or in-process): public
    prices do not apply to it, only a price set with ``set_price``."""
    is_scripted: bool = False
    """Replies are computed by code (offline, ``FunctionModel``), not written by a language model: nothing sends
    it requests its script did not ask for (an automatic title is made from the prompt's words instead)."""
    follows_prompts: bool = True
    """The reply answers the request. The offline model only describes what it received, so a summary asked of it
    would be noise: the summary is made from the prompts instead."""

    def origin(self) -> dict[str, str] | None:
        """Where this model runs, without any secret (API, endpoint, the key's variable name), so a later
        continue or regenerate can reach the same model; None when it cannot be rebuilt from a record."""
        return None

    def available_models(self) -> list[str] | None:
        """The model ids the server lists, or None when it keeps no list (``lists_models`` is False) or cannot say."""
        return None

    def with_max_tokens(self, limit: int) -> Model:
        """A copy that asks for at most ``limit`` output tokens, under the API's own name for that setting
        (short jobs such as titles). Models without such a setting return themselves."""
        return self

    def prepare(self) -> None:
        """Get ready to send (import the SDK, build the client) so the run's clock starts at the request."""

    def complete(self, messages: list[Message], tools: list[dict[str, Any]] | None = None
                 ) -> Iterator[str | ToolCall | Usage]:
        """The reply to one non-streamed request (``stream=False``, ``--no-stream``): the same items as ``stream``.

        Some servers report usage or tool calls only this way. Models without such a request stream instead.
        """
        return self.stream(messages, tools) if tools else self.stream(messages)

    @abstractmethod
    def stream(self, messages: list[Message], tools: list[dict[str, Any]] | None = None
               ) -> Iterator[str | ToolCall | Usage]:
        """Yield the reply as text deltas and ``ToolCall``s, then exactly one ``Usage``.

        ``tools`` are ``{"name", "description", "parameters"}`` specs (JSON schema); models that cannot call
        tools ignore them.

        Failures raise ``nbsessions.records.errors.ModelError`` with a one-line message (and the HTTP status when
        there is one); the Agent records them on the run.
        """

    async def astream(self, messages: list[Message], tools: list[dict[str, Any]] | None = None
                      ) -> AsyncIterator[str | ToolCall | Usage]:
        """The same items for ``arun``. Models with real async I/O override it; this default serves models that
        never wait on the network (offline, scripted) by iterating ``stream``."""
        for item in self.stream(messages, tools) if tools else self.stream(messages):
            yield item

    async def acomplete(self, messages: list[Message], tools: list[dict[str, Any]] | None = None
                        ) -> AsyncIterator[str | ToolCall | Usage]:
        """``complete`` for ``arun``: by default the async stream, as ``complete`` defaults to ``stream``."""
        async for item in self.astream(messages, tools) if tools else self.astream(messages):
            yield item

    async def aprepare(self) -> None:
        """``prepare`` for ``arun``: models with an async client build it here."""
        self.prepare()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(id={self.id!r})"


def estimate_tokens(text: str) -> int:
    """A rough count (about four characters a token) for models that report no usage."""
    return max(1, (len(text) + 3) // 4) if text else 0


def estimate_prompt_tokens(messages: list[Message], tools: list[dict[str, Any]] | None = None) -> int:
    """A rough count of what a chat request costs: each message's text and tool calls plus the template's
    markers around it, the reply's priming, and the tool specs (servers put them in the prompt too)."""
    total = REPLY_PRIMING
    for m in messages:
        total += MESSAGE_OVERHEAD + estimate_tokens(m.content or "")
        if m.tool_calls:
            total += estimate_tokens(json.dumps(m.tool_calls, ensure_ascii=False))
    if tools:
        total += estimate_tokens(json.dumps(tools, ensure_ascii=False))
    return total
