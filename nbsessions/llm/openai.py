"""OpenAI models on the official ``openai`` SDK: Chat Completions and the Responses API.

Any OpenAI-compatible server (Ollama, vLLM, llama.cpp) works through ``base_url``. The SDK is imported and the
client built on the first call, not at import or construction time: importing ``openai`` costs ~0.5 s, which a
notebook that only uses offline models should never pay, and a model with a missing key can still be built,
shown and stored.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from nbsessions.llm.base import Model, ToolCall
from nbsessions.llm.openai_base import _OpenAIModel
from nbsessions.llm.openai_wire import (
    OPENAI_BASE_URL,
    RESERVED_SETTINGS,
    _add_call_piece,
    _chat_usage,
    _error,
    _error_detail,
    _Outcome,
    _responses_usage,
    _tool_fields,
    chat_message,
    is_openai_endpoint,
    responses_input,
)
from nbsessions.records.schema import Message

__all__ = ["OPENAI_BASE_URL", "RESERVED_SETTINGS", "OpenAIChat", "OpenAIResponses", "chat_message",
           "is_openai_endpoint", "responses_input"]  # what other modules import from here


class OpenAIChat(_OpenAIModel):
    """Chat Completions: the API every OpenAI-compatible server speaks, so the default for custom ``base_url``."""

    api = "chat"

    _parameters = None

    def with_max_tokens(self, limit: int) -> Model:
        """OpenAI's reasoning models take only ``max_completion_tokens``; local servers know ``max_tokens``."""
        return self.with_settings(**{"max_tokens" if self.is_local else "max_completion_tokens": limit})

    def _create(self, client: Any) -> Any:
        return client.chat.completions.create

    def _open(self, client: Any, messages: list[Message], tools: list[dict[str, Any]], *, streamed: bool) -> Any:
        create = self._create(client)
        kwargs = self._request_kwargs(create)
        if streamed:
            kwargs["stream_options"] = {"include_usage": True, **(kwargs.get("stream_options") or {})}
        else:
            kwargs.pop("stream_options", None)
        if tools:
            kwargs["tools"] = [{"type": "function", "function": _tool_fields(t)} for t in tools]
        return create(model=self.id, messages=[chat_message(m) for m in messages], stream=streamed, **kwargs)

    def _whole(self, response: Any, outcome: _Outcome) -> Iterator[str]:
        outcome.events, outcome.finished = 1, True
        usage = getattr(response, "usage", None)
        outcome.usage = _chat_usage(usage) if usage is not None else None
        choice = next((c for c in getattr(response, "choices", None) or [] if getattr(c, "index", 0) == 0), None)
        message = getattr(choice, "message", None)
        text = getattr(message, "content", None) or getattr(message, "refusal", None)
        outcome.calls = [ToolCall(getattr(c, "id", None) or f"call_{i}", c.function.name, c.function.arguments or "{}")
                         for i, c in enumerate(getattr(message, "tool_calls", None) or [])]
        if text:
            yield text

    def _take(self, chunk: Any, outcome: _Outcome) -> Iterator[str]:
        outcome.events += 1
        usage = getattr(chunk, "usage", None)
        if usage is not None:
            outcome.usage = _chat_usage(usage)
            outcome.finished = True
        for choice in getattr(chunk, "choices", None) or []:
            if getattr(choice, "index", 0) != 0:
                continue
            delta = getattr(choice, "delta", None)
            text = getattr(delta, "content", None) or getattr(delta, "refusal", None)
            if text:
                yield text
            for piece in getattr(delta, "tool_calls", None) or []:
                _add_call_piece(outcome.partial_calls, piece)
            if getattr(choice, "finish_reason", None):
                outcome.finished = True

    def _settle(self, outcome: _Outcome) -> None:
        outcome.calls = [ToolCall(c["id"] or f"call_{i}", c["name"], c["arguments"] or "{}")
                         for i, c in sorted(outcome.partial_calls.items())]


class OpenAIResponses(_OpenAIModel):
    """The Responses API: OpenAI's own endpoint, with cached and reasoning token counts in its usage."""

    api = "responses"

    _parameters = None

    def with_max_tokens(self, limit: int) -> Model:
        return self.with_settings(max_output_tokens=max(16, limit))  # the API's minimum is 16

    def _create(self, client: Any) -> Any:
        return client.responses.create

    def _open(self, client: Any, messages: list[Message], tools: list[dict[str, Any]], *, streamed: bool) -> Any:
        create = self._create(client)
        instructions, items = responses_input(messages)
        kwargs = self._request_kwargs(create)
        if instructions is not None:
            kwargs["instructions"] = instructions
        if tools:  # not strict: schemas made from Python signatures rarely meet strict mode's rules
            kwargs["tools"] = [{"type": "function", **_tool_fields(t), "strict": False} for t in tools]
        return create(model=self.id, input=items, stream=streamed, **kwargs)

    def _whole(self, response: Any, outcome: _Outcome) -> Iterator[str]:
        outcome.events = 1
        if getattr(response, "status", None) == "failed":
            error = getattr(response, "error", None)
            raise _error(f"error from {self.host}: {getattr(error, 'message', None) or 'response failed'}")
        outcome.finished = True
        usage = getattr(response, "usage", None)
        outcome.usage = _responses_usage(usage) if usage is not None else None
        texts: list[str] = []
        for item in getattr(response, "output", None) or []:
            if getattr(item, "type", None) == "function_call":
                outcome.calls.append(ToolCall(item.call_id, item.name, item.arguments or "{}"))
            elif getattr(item, "type", None) == "message":
                texts += [getattr(part, "text", None) or getattr(part, "refusal", None) or ""
                          for part in getattr(item, "content", None) or []]
        if "".join(texts):
            yield "".join(texts)

    def _lacks_api(self, body: dict[str, Any]) -> bool:
        """An unknown model is a 404 that says so (OpenAI: ``model_not_found``; Ollama: "model ... not found");
        a server without ``/responses`` answers a bare 404 (llama.cpp: ``{"detail": "Not Found"}``)."""
        return body.get("code") != "model_not_found" and "model" not in _error_detail(body).lower()

    def _no_api_message(self, detail: str) -> str:
        return (f"404 from {self.host}: the server has no Responses API (/responses); use api = \"chat\" "
                f"(OpenAIChat, or %config AgentMagics.api = 'chat'). The server said: {detail}")

    def _take(self, event: Any, outcome: _Outcome) -> Iterator[str]:
        outcome.events += 1
        kind = getattr(event, "type", None)
        if kind in ("response.output_text.delta", "response.refusal.delta"):
            if event.delta:
                yield event.delta
        elif kind == "response.output_item.done" and getattr(event.item, "type", None) == "function_call":
            item = event.item
            outcome.calls.append(ToolCall(item.call_id, item.name, item.arguments or "{}"))
        elif kind in ("response.completed", "response.incomplete"):
            usage = getattr(event.response, "usage", None)
            outcome.usage = _responses_usage(usage) if usage is not None else None
            outcome.finished = True
        elif kind == "response.failed":
            error = getattr(event.response, "error", None)
            raise _error(f"error from {self.host}: {getattr(error, 'message', None) or 'response failed'}")
        elif kind == "error":
            raise _error(f"error from {self.host}: {getattr(event, 'message', None) or 'stream error'}")
