"""OpenAI models on the official ``openai`` SDK: Chat Completions and the Responses API.

Any OpenAI-compatible server (Ollama, vLLM, llama.cpp) works through ``base_url``. The SDK is imported and the
client built on the first call, not at import or construction time: importing ``openai`` costs ~0.5 s, which a
notebook that only uses offline models should never pay, and a model with a missing key can still be built,
shown and stored.
"""

from __future__ import annotations

import copy
import inspect
import os
import threading
import weakref
from collections.abc import AsyncIterator, Iterator
from typing import Any

from nbsessions.errors import ModelError, kind_of_status
from nbsessions.formatting import shorten
from nbsessions.llm.base import Model, ToolCall, Usage, estimate_prompt_tokens, estimate_tokens
from nbsessions.llm.openai_wire import (
    OPENAI_BASE_URL,
    PLACEHOLDER_KEY,
    RESERVED_SETTINGS,  # noqa: F401 (re-exported: the magic refuses these as --sweep keys)
    _add_call_piece,
    _cause_text,
    _caused_by,
    _chat_usage,
    _check_settings,
    _closed_with_loop,
    _display_url,
    _error,
    _error_detail,
    _host,
    _Outcome,
    _responses_usage,
    _retry_after,
    _Secret,
    _tool_fields,
    chat_message,
    is_openai_endpoint,
    responses_input,
)
from nbsessions.schema import Message


class _OpenAIModel(Model):
    """What both OpenAI APIs share: key and URL resolution, the lazy client, streaming and error mapping.

    ``settings`` (``temperature``, ``reasoning``…) go into every request. ``max_retries`` is the SDK's: one
    retry rides out a transient 429/5xx/dropped connection (honouring ``Retry-After``) without hiding real
    failures for long; pass 0 to fail at once.
    """

    provider = "openai"
    api: str  # "chat" or "responses", per subclass
    lists_models = True
    _parameters: frozenset[str] | None = None  # the SDK method's keyword names, per subclass

    def __init__(self, id: str = "gpt-5.2", *, api_key: str | None = None, base_url: str | None = None,
                 api_key_env: str | None = None, timeout: float = 60.0, max_retries: int = 1,
                 **settings: Any) -> None:
        _check_settings(settings)
        self.id = id
        self.base_url = base_url
        self.api_key_env = api_key_env  # the variable to read the key from, instead of OPENAI_API_KEY
        self.timeout = timeout
        self.max_retries = max_retries
        self.settings = settings
        self._api_key = _Secret(api_key) if api_key else None
        self._client: Any = None
        self._async_clients: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()  # one per loop
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(id={self.id!r}, base_url={_display_url(self.base_url)!r})"

    def __copy__(self) -> _OpenAIModel:
        """Shallow copies (``with_settings``) share the client and its connection pool."""
        clone = type(self).__new__(type(self))
        clone.__dict__.update(self.__dict__)
        return clone

    def __getstate__(self) -> dict[str, Any]:
        """Copies and pickles leave the live client (sockets, locks) behind; it is rebuilt on the next call."""
        state = self.__dict__.copy()
        state["_client"] = None
        del state["_lock"], state["_async_clients"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
        self._async_clients = weakref.WeakKeyDictionary()

    # -- endpoint and client -------------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        """The URL requests go to: ``base_url``, else ``OPENAI_BASE_URL``, else OpenAI's own API."""
        return (self.base_url or os.environ.get("OPENAI_BASE_URL") or OPENAI_BASE_URL).rstrip("/")

    def origin(self) -> dict[str, str] | None:
        """API, endpoint (credentials in the URL removed) and the key's variable: never the key itself."""
        record = {"api": self.api, "base_url": _display_url(self.endpoint) or ""}
        if self.api_key_env:
            record["api_key_env"] = self.api_key_env
        return record

    @property
    def host(self) -> str:
        return _host(self.endpoint)

    @property
    def is_local(self) -> bool:  # type: ignore[override]
        """Any endpoint but OpenAI's own: a local server's ``gpt-4o-mini`` costs nothing the public table knows."""
        return not is_openai_endpoint(self.endpoint)

    @property
    def needs_key(self) -> bool:  # type: ignore[override]
        """OpenAI's own API, or any server given a key variable (``api_key_env``); local servers take none."""
        return bool(self.api_key_env) or not self.is_local

    def prepare(self) -> None:
        """Import the SDK, build the client and load the API's resource module (the SDK loads ``chat`` and
        ``responses`` lazily: ~0.1 and ~0.5 s), before a run's clock starts."""
        self._create(self._get_client())

    def _create(self, client: Any) -> Any:
        """The SDK method this API sends requests with."""
        raise NotImplementedError

    def _get_client(self) -> Any:
        with self._lock:
            if self._client is None:
                import openai

                self._client = openai.OpenAI(api_key=self._resolve_key(), base_url=self.endpoint,
                                             timeout=self.timeout, max_retries=self.max_retries)
            return self._client

    def secrets(self) -> tuple[str, ...]:
        """The key this model sends (its own, else its ``api_key_env`` variable or ``OPENAI_API_KEY``), to be
        refused in prompts."""
        key = (self._api_key.reveal() if self._api_key is not None
               else os.environ.get(self.api_key_env or "OPENAI_API_KEY"))
        return (key,) if key and key != PLACEHOLDER_KEY else ()

    async def aprepare(self) -> None:
        """The same for ``arun``: the ``AsyncOpenAI`` client of the running event loop."""
        await self._get_async_client()

    async def _get_async_client(self) -> Any:
        """``AsyncOpenAI`` for the running loop: its connection pool belongs to that loop, so each loop (a
        notebook kernel's, each ``asyncio.run``) gets its own, kept while the loop lives and closed when the loop
        shuts down (through an async generator the loop closes), never left to a dead loop's finaliser."""
        import asyncio

        loop = asyncio.get_running_loop()
        created = False
        with self._lock:
            held = self._async_clients.get(loop)
            if held is None:
                import openai

                client = openai.AsyncOpenAI(api_key=self._resolve_key(), base_url=self.endpoint,
                                            timeout=self.timeout, max_retries=self.max_retries)
                held = self._async_clients[loop] = (client, _closed_with_loop(client))
                created = True
        if created:
            await anext(held[1])  # started here, so the loop closes it at shutdown
        return held[0]

    def without_retries(self) -> _OpenAIModel:
        """A copy whose requests make one attempt each; it shares this model's connection pool."""
        clone = copy.copy(self)
        clone.max_retries = 0
        return clone

    def _client_for_call(self, client: Any = None) -> Any:
        client = client or self._get_client()
        return client if client.max_retries == self.max_retries else client.with_options(max_retries=self.max_retries)

    def available_models(self) -> list[str] | None:
        """The model ids the server lists (``GET /models``), or None when it keeps no list or cannot say.

        Lets the magic refuse a mistyped model name before anything is sent or stored.
        """
        try:
            client = self._get_client().with_options(max_retries=0, timeout=min(self.timeout, 10.0))
            return [m.id for m in client.models.list()]
        except Exception:  # no list (404), no key, no server: the run itself will say what is wrong
            return None

    @property
    def context_window(self) -> int | None:  # type: ignore[override]
        """Tokens the model accepts: set by hand (``model.context_window = 8192``), else what a local server lists
        for it (vLLM's ``max_model_len``, llama.cpp's ``meta.n_ctx_train``), asked once. ``None`` for OpenAI's own
        API, whose windows come from the price table."""
        if "_context_window" not in self.__dict__:
            self._context_window = self._listed_context_window() if self.is_local else None
        return self._context_window

    @context_window.setter
    def context_window(self, value: int | None) -> None:
        self._context_window = value

    def _listed_context_window(self) -> int | None:
        try:
            client = self._get_client().with_options(max_retries=0, timeout=min(self.timeout, 10.0))
            entry = next((m for m in client.models.list() if m.id == self.id), None)
        except Exception:  # no list, no server: the window stays unknown, which the view says
            return None
        extra = (entry.model_extra or {}) if entry is not None else {}
        for value in (extra.get("max_model_len"), (extra.get("meta") or {}).get("n_ctx_train"),
                      extra.get("context_length")):
            if isinstance(value, int) and value > 0:
                return value
        return None

    def _resolve_key(self) -> str:
        if self._api_key is not None:
            return self._api_key.reveal()
        variable = self.api_key_env or "OPENAI_API_KEY"
        key = os.environ.get(variable)
        if key:
            return key
        if self.api_key_env:
            raise ModelError(f"no API key: the environment variable {variable} (api_key_env) is not set", kind="auth")
        if not is_openai_endpoint(self.endpoint):
            return PLACEHOLDER_KEY
        raise ModelError("no API key: set OPENAI_API_KEY or pass api_key=...")

    def _request_kwargs(self, create: Any) -> dict[str, Any]:
        """Settings the SDK method knows go as keywords; others (``top_k``, ``num_ctx``…) go in the body."""
        _check_settings(self.settings)  # again: ``with_settings`` copies bypass the constructor
        cls = type(self)
        if cls._parameters is None:
            cls._parameters = frozenset(inspect.signature(create).parameters)
        known = {k: v for k, v in self.settings.items() if k in cls._parameters}
        extra = {k: v for k, v in self.settings.items() if k not in cls._parameters}
        if extra:
            known["extra_body"] = {**extra, **(known.get("extra_body") or {})}
        return known

    # -- streaming -----------------------------------------------------------------------------------

    def stream(self, messages: list[Message], tools: list[dict[str, Any]] | None = None
               ) -> Iterator[str | ToolCall | Usage]:
        """Yield text deltas, then the ``ToolCall``s the model made, then one ``Usage`` (estimated if absent).

        Any failure becomes a one-line ``ModelError``; ``KeyboardInterrupt`` passes through untouched, and the
        HTTP response is closed however the stream ends.
        """
        return self._reply(messages, tools or [], streamed=True)

    def complete(self, messages: list[Message], tools: list[dict[str, Any]] | None = None
                 ) -> Iterator[str | ToolCall | Usage]:
        """Like ``stream``, from one request with ``stream: false``: the text arrives in one piece."""
        return self._reply(messages, tools or [], streamed=False)

    async def astream(self, messages: list[Message], tools: list[dict[str, Any]] | None = None
                      ) -> AsyncIterator[str | ToolCall | Usage]:
        """``stream`` on ``AsyncOpenAI``: the same requests, parsing and errors, without blocking the loop."""
        async for item in self._areply(messages, tools or [], streamed=True):
            yield item

    async def acomplete(self, messages: list[Message], tools: list[dict[str, Any]] | None = None
                        ) -> AsyncIterator[str | ToolCall | Usage]:
        """``complete`` on ``AsyncOpenAI``."""
        async for item in self._areply(messages, tools or [], streamed=False):
            yield item

    def _reply(self, messages: list[Message], tools: list[dict[str, Any]], *, streamed: bool
               ) -> Iterator[str | ToolCall | Usage]:
        outcome = _Outcome()
        parts: list[str] = []
        response = None
        try:
            response = self._open(self._client_for_call(), messages, tools, streamed=streamed)
            for delta in self._deltas(response, outcome) if streamed else self._whole(response, outcome):
                parts.append(delta)
                yield delta
        except Exception as exc:
            error = self._failure(exc, parts)
            if error is exc:
                raise
            raise error from exc
        finally:
            close = getattr(response, "close", None)  # a stream holds the connection; a whole reply does not
            if callable(close):
                close()
        yield from self._ending(outcome, messages, tools, parts)

    async def _areply(self, messages: list[Message], tools: list[dict[str, Any]], *, streamed: bool
                      ) -> AsyncIterator[str | ToolCall | Usage]:
        """``_reply``'s async twin: only the waiting differs; request, parsing and errors are shared."""
        outcome = _Outcome()
        parts: list[str] = []
        response = None
        try:
            response = await self._open(self._client_for_call(await self._get_async_client()), messages, tools,
                                        streamed=streamed)
            if streamed:
                async for event in response:
                    for delta in self._take(event, outcome):
                        parts.append(delta)
                        yield delta
                self._settle(outcome)
            else:
                for delta in self._whole(response, outcome):
                    parts.append(delta)
                    yield delta
        except Exception as exc:
            error = self._failure(exc, parts)
            if error is exc:
                raise
            raise error from exc
        finally:
            close = getattr(response, "close", None)
            if callable(close):
                closing = close()
                if inspect.isawaitable(closing):
                    await closing
        for item in self._ending(outcome, messages, tools, parts):
            yield item

    def _failure(self, exc: Exception, parts: list[str]) -> Exception:
        error = self._translate(exc, streamed=bool(parts))
        return exc if error is None else error

    def _ending(self, outcome: _Outcome, messages: list[Message], tools: list[dict[str, Any]],
                parts: list[str]) -> list[ToolCall | Usage]:
        """After the text: the tool calls, then the usage (estimated when the server sent none)."""
        if not outcome.finished:
            raise self._unfinished(outcome)
        return [*outcome.calls, outcome.usage or Usage(
            input_tokens=estimate_prompt_tokens(messages, tools or None),
            output_tokens=estimate_tokens("".join(parts)), estimated=True)]

    def _deltas(self, response: Any, outcome: _Outcome) -> Iterator[str]:
        for event in response:
            yield from self._take(event, outcome)
        self._settle(outcome)

    def _take(self, event: Any, outcome: _Outcome) -> Iterator[str]:
        """The text in one streamed event; everything else it says goes into ``outcome``."""
        raise NotImplementedError

    def _settle(self, outcome: _Outcome) -> None:
        """After the last event: finish what arrived in pieces."""

    def _open(self, client: Any, messages: list[Message], tools: list[dict[str, Any]], *, streamed: bool) -> Any:
        raise NotImplementedError

    def _whole(self, response: Any, outcome: _Outcome) -> Iterator[str]:
        raise NotImplementedError

    def _unfinished(self, outcome: _Outcome) -> ModelError:
        if outcome.events == 0:
            return ModelError(f"malformed response from {self.host}: no events in the stream", kind="malformed")
        return ModelError(f"incomplete response from {self.host}: the stream ended before the reply was complete",
                          kind="malformed")

    # -- errors --------------------------------------------------------------------------------------

    def _translate(self, exc: Exception, *, streamed: bool) -> Exception | None:
        """The SDK's exception as a one-line ``ModelError`` that says what to do; ``None`` if not ours."""
        if isinstance(exc, ModelError):
            return exc
        import openai

        if isinstance(exc, openai.APIStatusError):
            return self._status_error(exc)
        if isinstance(exc, openai.APITimeoutError):
            return _error(f"timed out after {self.timeout:g} s waiting for {self.host}", kind="timeout")
        if isinstance(exc, openai.APIConnectionError):
            if _caused_by(exc, "ConnectError"):
                hint = "check your network" if is_openai_endpoint(self.endpoint) else "is the server running?"
                return _error(f"cannot connect to {_display_url(self.endpoint)}: {hint}", kind="connection")
            where = "closed mid-response" if streamed else "failed"
            return _error(f"connection to {self.host} {where}: {_cause_text(exc)}", kind="connection")
        if isinstance(exc, openai.APIResponseValidationError | ValueError):
            return _error(f"malformed response from {self.host}: {exc}", kind="malformed")
        if isinstance(exc, openai.APIError):
            code = exc.body.get("code") if isinstance(exc.body, dict) else None
            return _error(f"error from {self.host}: {exc.message}",
                          status_code=code if isinstance(code, int) else None)
        if isinstance(exc, openai.OpenAIError):
            return _error(f"OpenAI client error: {exc}")
        return None

    def _status_error(self, exc: Any) -> ModelError:
        status = exc.status_code
        body = exc.body if isinstance(exc.body, dict) else {}
        detail = shorten(_error_detail(exc.body) or exc.message, 240)
        wait = _retry_after(exc.response.headers)
        kind = kind_of_status(status)
        if status == 401:
            text = "401 unauthorized: check OPENAI_API_KEY or api_key=..."
        elif status == 429 and body.get("code") == "insufficient_quota":
            text, kind, wait = "429 quota exceeded: check your plan and billing", "quota", None
        elif status == 429:
            text = f"429 rate limited: retry in {wait} s" if wait is not None else "429 rate limited: retry later"
        elif status == 404 and self._lacks_api(body):
            text = self._no_api_message(detail)
        elif status == 404:
            text = f"404 not found at {self.host} (check the model id {self.id!r} and base_url): {detail}"
        elif status >= 500:
            text = f"{status} server error from {self.host}: {detail}"
        else:
            text = f"{status} error from {self.host}: {detail}"
        return _error(text, status_code=status, retry_after=wait, kind=kind)

    def _lacks_api(self, body: dict[str, Any]) -> bool:
        """Whether a 404 means the server has no such API at all (not merely no such model)."""
        return False

    def _no_api_message(self, detail: str) -> str:
        return f"404 not found at {self.host}: {detail}"


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
