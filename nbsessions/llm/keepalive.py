"""Streamed replies hand their connection back to the pool.

The ``openai`` SDK stops reading a stream at ``data: [DONE]`` and closes the response before the body's last
(empty) chunk is read, so the HTTP client sees an unfinished response and drops the connection: every streamed
call then opens a new one (a TLS handshake against a real API, a thread in many local servers). Here the few
bytes left after ``[DONE]`` are read before the close, so the connection is kept alive like a whole reply's.
Only a stream whose last bytes were ``[DONE]`` is drained: one abandoned mid-reply (Ctrl-C, cancel) is closed
at once, as before.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

DONE = b"[DONE]"


class _DrainedAtDone:  # mixed into the HTTP library's SyncByteStream in http_client()
    """The response body, remembering its last bytes; ``close`` finishes it when they were ``[DONE]``."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._chunks: Iterator[bytes] | None = None
        self._tail = b""

    def __iter__(self) -> Iterator[bytes]:
        self._chunks = iter(self._inner)
        for chunk in self._chunks:
            self._tail = (self._tail + chunk)[-32:]
            yield chunk

    def close(self) -> None:
        if self._chunks is not None and self._tail.rstrip().endswith(DONE):
            with contextlib.suppress(Exception):  # a server that breaks off here: the close below drops it
                for _ in self._chunks:
                    pass
        self._inner.close()


def http_client(**client_kwargs: Any) -> Any:
    """The SDK's default HTTP client (its limits, timeouts, redirects, proxies from the environment) whose
    streamed responses are drained at ``[DONE]``."""
    import importlib

    import openai

    base = next(c for c in openai.DefaultHttpxClient.__mro__ if c.__name__ == "Client")  # httpx, or its successor
    httpx = importlib.import_module(base.__module__.partition(".")[0])

    class DrainedAtDone(_DrainedAtDone, httpx.SyncByteStream):
        pass

    class KeepAliveTransport(httpx.HTTPTransport):
        def handle_request(self, request: Any) -> Any:
            response = super().handle_request(request)
            response.stream = DrainedAtDone(response.stream)
            return response

    limits = getattr(importlib.import_module("openai._constants"), "DEFAULT_CONNECTION_LIMITS", None)  # the SDK's
    return openai.DefaultHttpxClient(transport=KeepAliveTransport(**({"limits": limits} if limits else {})),
                                     **client_kwargs)
