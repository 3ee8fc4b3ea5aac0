"""What both OpenAI APIs share: key and URL resolution, the lazy sync and async clients, the request and
response flow. The public classes, ``OpenAIChat`` and ``OpenAIResponses``, are in ``openai.py``.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import os
import threading
import weakref
from collections.abc import AsyncIterator, Iterator
from typing import Any

from nbsessions.llm.base import Model, ToolCall, Usage, estimate_prompt_tokens, estimate_tokens
from nbsessions.llm.openai_errors import OpenAIErrors
from nbsessions.llm.openai_wire import (
    OPENAI_BASE_URL,
    PLACEHOLDER_KEY,
    _check_settings,
    _close,
    _closed_with_loop,
    _display_url,
    _host,
    _Outcome,
    _Secret,
    is_openai_endpoint,
)
from nbsessions.records.errors import ModelError
from nbsessions.records.redact import leaks, register, register_env
from nbsessions.records.schema import Message


class _Clients:
    """The SDK clients a model and all its shallow copies share: the sync one, its variants by ``max_retries``,
    and one async client per event loop. Shared as one object, so a client built by a copy serves them all."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.client: Any = None
        self.variants: dict[int, Any] = {}
        self.async_clients: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()  # one per loop


class _OpenAIModel(OpenAIErrors, Model):
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
        register(api_key if api_key != PLACEHOLDER_KEY else None)  # what this model sends is never kept or shown
        register_env(api_key_env)
        self._shared = _Clients()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(id={self.id!r}, base_url={_display_url(self.base_url)!r})"

    def __copy__(self) -> _OpenAIModel:
        """Shallow copies (``with_settings``, ``without_retries``) share the clients and their connection pool,
        also those built after the copy: a batch's per-attempt copies never build a client each."""
        clone = type(self).__new__(type(self))
        clone.__dict__.update(self.__dict__)
        return clone

    def __getstate__(self) -> dict[str, Any]:
        """Deep copies and pickles leave the live clients (sockets, locks) behind; rebuilt on the next call."""
        state = self.__dict__.copy()
        del state["_shared"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._shared = _Clients()

    @property
    def _client(self) -> Any:
        """The sync client, once built (``None`` before the first call)."""
        return self._shared.client

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
        shared = self._shared
        with shared.lock:
            if shared.client is None:
                import openai

                from nbsessions.llm.keepalive import http_client

                shared.client = openai.OpenAI(api_key=self._resolve_key(), base_url=self.endpoint,
                                              timeout=self.timeout, max_retries=self.max_retries,
                                              http_client=http_client())
            return shared.client

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
        shared = self._shared
        with shared.lock:
            held = shared.async_clients.get(loop)
            if held is None:
                import openai

                client = openai.AsyncOpenAI(api_key=self._resolve_key(), base_url=self.endpoint,
                                            timeout=self.timeout, max_retries=self.max_retries)
                held = shared.async_clients[loop] = (client, _closed_with_loop(client))
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
        """The client with this model's ``max_retries``; the sync one's variants are built once and shared."""
        if client is not None:
            return client if client.max_retries == self.max_retries else client.with_options(
                max_retries=self.max_retries)
        client = self._get_client()
        if client.max_retries == self.max_retries:
            return client
        shared = self._shared
        with shared.lock:
            variant = shared.variants.get(self.max_retries)
            if variant is None:
                variant = shared.variants[self.max_retries] = client.with_options(max_retries=self.max_retries)
            return variant

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
        if not self.needs_key:  # a local server takes none; the SDK still wants a string
            return PLACEHOLDER_KEY
        if self.api_key_env:
            raise ModelError(f"no API key: the environment variable {variable} (api_key_env) is not set", kind="auth")
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

    def astream(self, messages: list[Message], tools: list[dict[str, Any]] | None = None
                ) -> AsyncIterator[str | ToolCall | Usage]:
        """``stream`` on ``AsyncOpenAI``: the same requests, parsing and errors, without blocking the loop."""
        return self._areply(messages, tools or [], streamed=True)

    def acomplete(self, messages: list[Message], tools: list[dict[str, Any]] | None = None
                  ) -> AsyncIterator[str | ToolCall | Usage]:
        """``complete`` on ``AsyncOpenAI``."""
        return self._areply(messages, tools or [], streamed=False)

    def _reply(self, messages: list[Message], tools: list[dict[str, Any]], *, streamed: bool
               ) -> Iterator[str | ToolCall | Usage]:
        outcome = _Outcome()
        response = None
        try:
            with self._translated(outcome):
                response = self._open(self._client_for_call(), messages, tools, streamed=streamed)
                for delta in self._deltas(response, outcome) if streamed else self._whole(response, outcome):
                    yield outcome.kept(delta)
        finally:
            _close(response)
        yield from self._ending(outcome, messages, tools)

    async def _areply(self, messages: list[Message], tools: list[dict[str, Any]], *, streamed: bool
                      ) -> AsyncIterator[str | ToolCall | Usage]:
        """``_reply``'s async twin: only the waiting differs; request, parsing and errors are shared."""
        outcome = _Outcome()
        response = None
        try:
            with self._translated(outcome):
                response = await self._open(self._client_for_call(await self._get_async_client()), messages, tools,
                                            streamed=streamed)
                if streamed:
                    async for event in response:
                        for delta in self._take(event, outcome):
                            yield outcome.kept(delta)
                    self._settle(outcome)
                else:
                    for delta in self._whole(response, outcome):
                        yield outcome.kept(delta)
        finally:
            closing = _close(response)  # the async SDK's close is awaitable
            if inspect.isawaitable(closing):
                await closing
        for item in self._ending(outcome, messages, tools):
            yield item

    @contextlib.contextmanager
    def _translated(self, outcome: _Outcome) -> Iterator[None]:
        """A failure in the block leaves as a one-line ``ModelError`` chained to the original (``_translate`` is
        told whether text had streamed); ``KeyboardInterrupt`` and a cancelled task pass through untouched."""
        try:
            yield
        except Exception as exc:
            error = self._translate(exc, streamed=bool(outcome.parts))
            if error is None or error is exc:
                raise
            if leaks(str(exc)):  # the SDK's message quotes the server's body, which may hold the key
                raise error from None
            raise error from exc

    def _ending(self, outcome: _Outcome, messages: list[Message], tools: list[dict[str, Any]]
                ) -> list[ToolCall | Usage]:
        """After the text: the tool calls, then the usage (estimated when the server sent none)."""
        if not outcome.finished:
            raise self._unfinished(outcome)
        return [*outcome.calls, outcome.usage or Usage(
            input_tokens=estimate_prompt_tokens(messages, tools or None),
            output_tokens=estimate_tokens("".join(outcome.parts)), estimated=True)]

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
