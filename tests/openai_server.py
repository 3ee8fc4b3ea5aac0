"""A real OpenAI-compatible HTTP server on 127.0.0.1, for tests and benchmarks.

It speaks the wire format the official SDK parses (plain JSON and SSE for ``/v1/chat/completions`` and
``/v1/responses``), records every request it receives, and fails on demand, so the model classes are tested
end to end through real sockets without ever touching the internet. Standard library only.

Failure modes, chosen per request by the model name or by ``fail_next(...)`` / ``mode``:
``error-<status>`` (OpenAI-shaped error JSON; 429 with ``Retry-After``), ``quota`` (429 insufficient_quota),
``slow-<ms>`` (answer after a delay), ``garbage`` (unparseable body), ``drop`` (connection closed mid-body),
``cut`` (body ends cleanly but before the reply is complete), ``stream-error`` (the API's in-stream error).

``quirks`` make it speak like servers that are not OpenAI (``LLAMA_CPP``: all of them, as llama-cpp-python
0.3 does): ``repeat-tool-names`` (every tool-call delta repeats the id and name), ``reject-null-content`` (a
message with ``"content": null`` is a 500), ``no-stream-usage`` (streams carry no usage, whatever was asked),
``no-responses-api`` (``/v1/responses`` is a FastAPI 404, ``{"detail": "Not Found"}``). ``quote-key`` (not in
``LLAMA_CPP``) answers every error quoting the request's bearer token, as some proxies and gateways do.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import re
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ReplyFunction = Callable[[dict[str, Any]], "str | dict[str, Any]"]  # text, or content plus tool_calls

ERRORS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: ("invalid_request_error", "invalid_api_key",
          "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys."),
    403: ("invalid_request_error", "unsupported_country_region_territory",
          "Country, region, or territory not supported"),
    404: ("invalid_request_error", "model_not_found", "The model does not exist or you do not have access to it."),
    429: ("requests", "rate_limit_exceeded",
          "Rate limit reached for requests per min (RPM): Limit 3, Used 3, Requested 1."),
    500: ("server_error", None, "The server had an error while processing your request. Sorry about that!"),
    503: ("server_error", None, "The engine is currently overloaded, please try again later"),
}
_ids = itertools.count(1)
QUIRKS = frozenset({"repeat-tool-names", "reject-null-content", "no-stream-usage", "no-responses-api"})
LLAMA_CPP = QUIRKS


@dataclass
class Call:
    """One request as the server saw it, and what it answered."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    mode: str | None = None
    reply: str | None = None
    tool_calls: list[dict[str, str]] = field(default_factory=list)  # id, name, arguments as sent
    usage: dict[str, int] | None = None  # input_tokens, output_tokens, cached_tokens, reasoning_tokens as sent
    events: list[dict[str, Any]] = field(default_factory=list)  # SSE payloads sent (chat chunks or events)
    connection: int = 0  # the client's port: calls with the same one came over one kept-alive connection


class OpenAIServer:
    """Start with ``OpenAIServer()`` (or ``with OpenAIServer() as s``); point a client at ``.base_url``.

    Knobs (all reset by ``reset()``):
    ``reply`` a function ``request_json -> reply``, where a reply is text or
    ``{"content": text, "tool_calls": [{"name", "arguments"}]}``; ``script(*replies)`` queued replies;
    ``fail_next(*modes)`` queued failure modes; ``mode`` a failure for every request; ``usage`` a dict overriding
    the token counts sent; ``send_usage``; ``api_key`` (require this bearer key); ``retry_after`` (seconds, for
    429; ``None`` omits the header); ``latency_ms`` before the first byte; ``chunk_delay_ms`` between events.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self.reset()
        self._httpd = _Server((host, port), _Handler)
        self._httpd.app = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="openai-test-server", daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def reset(self) -> None:
        """Forget recorded calls and every knob, so each test starts from the default echo behaviour."""
        with self._lock:
            self.calls: list[Call] = []
            self._replies: deque[str | dict[str, Any]] = deque()
            self._modes: deque[str] = deque()
        self.reply: ReplyFunction | None = None
        self.mode: str | None = None
        self.usage: dict[str, int] | None = None
        self.send_usage = True
        self.api_key: str | None = None
        self.retry_after: float | None = 7
        self.latency_ms = 0.0
        self.chunk_delay_ms = 0.0
        self.models: list[str] | None = None  # GET /v1/models lists these; None answers 404 like many local servers
        self.model_fields: dict[str, dict[str, Any]] = {}  # extra fields of a listed model (max_model_len, meta...)
        self.quirks: frozenset[str] = frozenset()  # see QUIRKS; LLAMA_CPP is the set llama-cpp-python shows

    def script(self, *replies: str | dict[str, Any]) -> None:
        """Queue replies, used one per request before ``reply`` or the echo."""
        with self._lock:
            self._replies.extend(replies)

    def fail_next(self, *modes: str) -> None:
        """Queue failure modes, one per request, taking precedence over the model name and ``mode``."""
        with self._lock:
            self._modes.extend(modes)

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Every request body received, oldest first."""
        with self._lock:
            return [c.body for c in self.calls]

    @property
    def last(self) -> Call:
        with self._lock:
            return self.calls[-1]

    def close(self) -> None:
        """Stop serving; delayed answers wake up and end, so nothing is left running."""
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> OpenAIServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- used by the handler -------------------------------------------------------------------------

    def _record(self, path: str, headers: dict[str, str], body: dict[str, Any]) -> Call:
        call = Call(path=path, headers=headers, body=body)
        with self._lock:
            self.calls.append(call)
            call.mode = self._modes.popleft() if self._modes else None
            queued = self._replies.popleft() if self._replies else None
        if call.mode is None:
            call.mode = self.mode or _mode_of(body.get("model"))
        reply = queued if queued is not None else (self.reply or _echo)(body)
        if isinstance(reply, dict):
            call.reply = reply.get("content") or ""
            call.tool_calls = [{"id": c.get("id") or f"call_{next(_ids):08d}", "name": c["name"],
                                "arguments": c.get("arguments") or "{}"} for c in reply.get("tool_calls") or []]
        else:
            call.reply = reply
        return call

    def _pause(self, ms: float) -> None:
        if ms > 0:
            self._stopping.wait(ms / 1000)

    def _usage(self, body: dict[str, Any], reply: str) -> dict[str, int] | None:
        if not self.send_usage:
            return None
        words = sum(len(text.split()) for text in _texts(body))
        usage = {"input_tokens": words + 3, "output_tokens": len(_chunks(reply)), "cached_tokens": 0,
                 "reasoning_tokens": 0}
        usage.update(self.usage or {})
        return usage


def _mode_of(model: object) -> str | None:
    if isinstance(model, str) and re.fullmatch(r"error-\d{3}|slow-\d+|quota|garbage|drop|cut|stream-error", model):
        return model
    return None


def _texts(body: dict[str, Any]) -> Iterator[str]:
    """Every piece of text in a chat or responses request."""
    if isinstance(body.get("instructions"), str):
        yield body["instructions"]
    items = body.get("messages") or body.get("input") or []
    if isinstance(items, str):
        items = [{"role": "user", "content": items}]
    for item in items:
        content = item.get("content") if isinstance(item, dict) else None
        if isinstance(content, str):
            yield content
        elif isinstance(content, list):
            yield from (p.get("text", "") for p in content if isinstance(p, dict))


def _last_user_text(body: dict[str, Any]) -> str:
    items = body.get("messages") or body.get("input") or []
    if isinstance(items, str):
        return items
    for item in reversed(items):
        if isinstance(item, dict) and item.get("role") == "user":
            content = item.get("content")
            if isinstance(content, list):
                return "".join(p.get("text", "") for p in content if isinstance(p, dict))
            return content or ""
    return ""


def _echo(body: dict[str, Any]) -> str:
    return f"echo: {_last_user_text(body)}"


def _chunks(text: str) -> list[str]:
    return re.findall(r"\S+\s*|\s+", text)


# -- wire shapes -------------------------------------------------------------------------------------


def _chat_usage(u: dict[str, int]) -> dict[str, Any]:
    return {
        "prompt_tokens": u["input_tokens"], "completion_tokens": u["output_tokens"],
        "total_tokens": u["input_tokens"] + u["output_tokens"],
        "prompt_tokens_details": {"cached_tokens": u["cached_tokens"], "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": u["reasoning_tokens"], "audio_tokens": 0,
                                      "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
    }


def _responses_usage(u: dict[str, int]) -> dict[str, Any]:
    return {
        "input_tokens": u["input_tokens"],
        "input_tokens_details": {"cached_tokens": u["cached_tokens"], "cache_write_tokens": 0},
        "output_tokens": u["output_tokens"],
        "output_tokens_details": {"reasoning_tokens": u["reasoning_tokens"]},
        "total_tokens": u["input_tokens"] + u["output_tokens"],
    }


def _chat_tool_calls(call: Call) -> list[dict[str, Any]]:
    return [{"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
            for c in call.tool_calls]


def _halves(text: str) -> list[str]:
    """Arguments arrive in pieces, as they do from the real API."""
    middle = len(text) // 2
    return [piece for piece in (text[:middle], text[middle:]) if piece]


def _chat_completion(call: Call, created: int, cid: str) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": call.reply or None, "refusal": None,
                               "annotations": []}
    if call.tool_calls:
        message["tool_calls"] = _chat_tool_calls(call)
    out = {"id": cid, "object": "chat.completion", "created": created, "model": call.body.get("model", ""),
           "choices": [{"index": 0, "message": message, "logprobs": None,
                        "finish_reason": "tool_calls" if call.tool_calls else "stop"}],
           "service_tier": "default", "system_fingerprint": None}
    if call.usage is not None:
        out["usage"] = _chat_usage(call.usage)
    return out


def _chat_chunks(call: Call, created: int, cid: str, quirks: frozenset[str] = frozenset()) -> list[dict[str, Any]]:
    include_usage = bool((call.body.get("stream_options") or {}).get("include_usage"))
    base = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": call.body.get("model", ""),
            "service_tier": "default", "system_fingerprint": None}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        out = {**base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
        if include_usage:
            out["usage"] = None
        return out

    first = "" if call.reply or not call.tool_calls else None
    chunks = [chunk({"role": "assistant", "content": first, "refusal": None})]
    chunks += [chunk({"content": piece}) for piece in _chunks(call.reply or "")]
    for index, tool in enumerate(call.tool_calls):
        head = {"index": index, "id": tool["id"], "type": "function",
                "function": {"name": tool["name"], "arguments": ""}}
        chunks.append(chunk({"tool_calls": [head]}))
        repeated = {k: v for k, v in head.items() if k != "function"} if "repeat-tool-names" in quirks else {}
        name = {"name": tool["name"]} if repeated else {}
        chunks += [chunk({"tool_calls": [{"index": index, **repeated, "function": {**name, "arguments": piece}}]})
                   for piece in _halves(tool["arguments"])]
    chunks.append(chunk({}, "tool_calls" if call.tool_calls else "stop"))
    if include_usage and call.usage is not None:
        chunks.append({**base, "choices": [], "usage": _chat_usage(call.usage)})
    return chunks


def _response(call: Call, rid: str, created: int, status: str, output: list[dict[str, Any]],
              usage: dict[str, Any] | None) -> dict[str, Any]:
    body = call.body
    return {
        "id": rid, "object": "response", "created_at": created, "status": status, "background": False,
        "error": None, "incomplete_details": None, "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"), "max_tool_calls": None, "model": body.get("model", ""),
        "output": output, "parallel_tool_calls": True, "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None}, "service_tier": "default", "store": True,
        "temperature": body.get("temperature", 1.0), "text": {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": "auto", "tools": body.get("tools") or [], "top_logprobs": 0, "top_p": body.get("top_p", 1.0),
        "truncation": "disabled", "usage": usage, "user": None, "metadata": {},
    }


def _message_events(call: Call, rid: str, index: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    text = call.reply or ""
    msg_id = f"msg_{rid[5:]}"
    part = {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}
    item = {"id": msg_id, "type": "message", "status": "in_progress", "content": [], "role": "assistant"}
    done_part = {**part, "text": text}
    done_item = {**item, "status": "completed", "content": [done_part]}
    where = {"item_id": msg_id, "output_index": index, "content_index": 0}
    return [
        {"type": "response.output_item.added", "output_index": index, "item": item},
        {"type": "response.content_part.added", **where, "part": part},
        *({"type": "response.output_text.delta", **where, "delta": piece, "logprobs": []}
          for piece in _chunks(text)),
        {"type": "response.output_text.done", **where, "text": text, "logprobs": []},
        {"type": "response.content_part.done", **where, "part": done_part},
        {"type": "response.output_item.done", "output_index": index, "item": done_item},
    ], done_item


def _function_call_events(tool: dict[str, str], index: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    item = {"id": f"fc_{tool['id']}", "type": "function_call", "status": "in_progress", "arguments": "",
            "call_id": tool["id"], "name": tool["name"]}
    done_item = {**item, "status": "completed", "arguments": tool["arguments"]}
    where = {"item_id": item["id"], "output_index": index}
    return [
        {"type": "response.output_item.added", "output_index": index, "item": item},
        *({"type": "response.function_call_arguments.delta", **where, "delta": piece}
          for piece in _halves(tool["arguments"])),
        {"type": "response.function_call_arguments.done", **where, "arguments": tool["arguments"]},
        {"type": "response.output_item.done", "output_index": index, "item": done_item},
    ], done_item


def _response_events(call: Call, rid: str, created: int) -> list[dict[str, Any]]:
    """The event sequence of a streamed response as OpenAI sends it: reasoning, message, function calls."""
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": _response(call, rid, created, "in_progress", [], None)},
        {"type": "response.in_progress", "response": _response(call, rid, created, "in_progress", [], None)},
    ]
    output: list[dict[str, Any]] = []
    if call.usage and call.usage["reasoning_tokens"]:
        item = {"id": f"rs_{rid[5:]}", "type": "reasoning", "summary": []}
        events += [{"type": "response.output_item.added", "output_index": 0, "item": item},
                   {"type": "response.output_item.done", "output_index": 0, "item": item}]
        output.append(item)
    if call.reply or not call.tool_calls:
        more, item = _message_events(call, rid, len(output))
        events += more
        output.append(item)
    for tool in call.tool_calls:
        more, item = _function_call_events(tool, len(output))
        events += more
        output.append(item)
    usage = _responses_usage(call.usage) if call.usage is not None else None
    events.append({"type": "response.completed",
                   "response": _response(call, rid, created, "completed", output, usage)})
    for number, event in enumerate(events):
        event["sequence_number"] = number
    return events


# -- HTTP --------------------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive and chunked streaming, like the real API
    server_version = "openai-test-server"

    def setup(self) -> None:
        """Headers and body leave as separate writes: without TCP_NODELAY (which real servers such as uvicorn set)
        the body waits for the client's delayed ACK, 40 ms on Linux, on every non-streamed reply."""
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests assert on ``calls``, not on stderr."""

    @property
    def app(self) -> OpenAIServer:
        return self.server.app  # type: ignore[attr-defined]

    def do_GET(self) -> None:
        """``/v1/models``: the ids a client may ask for (``models``), or 404 when the server keeps no list."""
        models = self.app.models
        if self.path.split("?")[0] != "/v1/models" or models is None:
            return self._error(404, f"Invalid URL (GET {self.path})", "invalid_request_error", None)
        listing = {"object": "list",
                   "data": [{"id": m, "object": "model", "created": 0, "owned_by": "test",
                             **self.app.model_fields.get(m, {})} for m in models]}
        payload = json.dumps(listing).encode()
        self._headers(200, "application/json", {"Content-Length": str(len(payload))})
        self.end_headers()
        self.wfile.write(payload)

    def do_POST(self) -> None:
        try:
            self._serve()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (timeout, interrupt): nothing left to say

    def _serve(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        api = {"/v1/chat/completions": "chat", "/v1/responses": "responses"}.get(self.path.split("?")[0])
        quirks = self.app.quirks
        if api == "responses" and "no-responses-api" in quirks:
            return self._plain(404, {"detail": "Not Found"})
        if api is None:
            return self._error(404, f"Invalid URL (POST {self.path})", "invalid_request_error", None)
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            return self._error(400, "We could not parse the JSON body of your request.", "invalid_request_error",
                               None)
        if "reject-null-content" in quirks and any(isinstance(m, dict) and "content" in m and m["content"] is None
                                                   for m in body.get("messages") or []):
            self.app._record(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            return self._plain(500, {"error": {"message": "content: Input should be a valid string", "type":
                                               "internal_server_error", "param": None, "code": None}})
        app = self.app
        call = app._record(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
        call.connection = self.client_address[1]
        app._pause(app.latency_ms)
        if app.api_key is not None and self.headers.get("Authorization") != f"Bearer {app.api_key}":
            return self._status(401)
        mode = call.mode or ""
        if mode.startswith("slow-"):
            app._pause(float(mode[5:]))
        elif mode.startswith("error-"):
            return self._status(int(mode[6:]))
        elif mode == "quota":
            return self._error(429, "You exceeded your current quota, please check your plan and billing details.",
                               "insufficient_quota", "insufficient_quota", retry=False)
        call.usage = app._usage(body, call.reply or "")
        if body.get("stream") and "no-stream-usage" in quirks:
            call.usage = None  # what was sent: nothing
        created, rid = int(time.time()), f"{next(_ids):08d}"
        if api == "chat":
            cid = f"chatcmpl-{rid}"
            if body.get("stream"):
                call.events = _chat_chunks(call, created, cid, quirks)
                return self._stream(call, [(None, e) for e in call.events] + [(None, "[DONE]")])
            return self._json(call, _chat_completion(call, created, cid))
        events = _response_events(call, f"resp_{rid}", created)
        if body.get("stream"):
            call.events = events
            return self._stream(call, [(e["type"], e) for e in events])
        return self._json(call, events[-1]["response"])

    # -- answers -------------------------------------------------------------------------------------

    def _headers(self, status: int, content_type: str, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("x-request-id", f"req_{next(_ids):08d}")
        self.send_header("openai-processing-ms", "1")
        for name, value in (extra or {}).items():
            self.send_header(name, value)

    def _plain(self, status: int, payload: dict[str, Any]) -> None:
        """An error in a server's own shape, not OpenAI's."""
        data = json.dumps(payload).encode()
        self._headers(status, "application/json", {"Content-Length": str(len(data))})
        self.end_headers()
        self.wfile.write(data)

    def _status(self, status: int) -> None:
        kind, code, message = ERRORS.get(status, ("api_error", None, f"Error {status}."))
        if "quote-key" in self.app.quirks:
            message += f" Request had Authorization: {self.headers.get('Authorization')}"
        self._error(status, message, kind, code)

    def _error(self, status: int, message: str, kind: str, code: str | None, retry: bool = True) -> None:
        data = json.dumps({"error": {"message": message, "type": kind, "param": None, "code": code}}).encode()
        extra = {"Content-Length": str(len(data))}
        if status == 429 and retry and self.app.retry_after is not None:
            extra["Retry-After"] = f"{self.app.retry_after:g}"
        self._headers(status, "application/json", extra)
        self.end_headers()
        self.wfile.write(data)

    def _json(self, call: Call, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        if call.mode == "garbage":
            data = b"<html><body>502 Bad Gateway</body></html>"
        length = len(data) * 2 if call.mode in ("drop", "cut") else len(data)
        self._headers(200, "application/json", {"Content-Length": str(length)})
        self.end_headers()
        if call.mode in ("drop", "cut"):
            data = data[: len(data) // 2]
            self.close_connection = True
        self.wfile.write(data)

    def _stream(self, call: Call, events: list[tuple[str | None, Any]]) -> None:
        self._headers(200, "text/event-stream; charset=utf-8",
                      {"Transfer-Encoding": "chunked", "Cache-Control": "no-cache"})
        self.end_headers()
        mode = call.mode
        first_text = next((i for i, (_, e) in enumerate(events) if _is_text_delta(e)), 1)
        if mode == "garbage":
            events = events[:2] + [(None, '{"id": "chatcmpl-garbage", "choices": [{"delta": ')]
        elif mode in ("drop", "cut"):
            events = events[: first_text + 1]  # at least one piece of text arrives before the end
        elif mode == "stream-error":
            events = events[: first_text + 1]
            events.append(_stream_error(events))
        for number, (name, payload) in enumerate(events):
            if number:
                self.app._pause(self.app.chunk_delay_ms)
            data = payload if isinstance(payload, str) else json.dumps(payload)
            self._chunk((f"event: {name}\n" if name else "") + f"data: {data}\n\n")
        if mode == "drop":
            self.close_connection = True  # no terminating chunk: the client sees an incomplete body
            return
        self.wfile.write(b"0\r\n\r\n")

    def _chunk(self, text: str) -> None:
        data = text.encode()
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()


def _is_text_delta(payload: Any) -> bool:
    if not isinstance(payload, dict):
        return False
    if payload.get("type") == "response.output_text.delta":
        return True
    return any((c.get("delta") or {}).get("content") for c in payload.get("choices") or [])


def _stream_error(events: list[tuple[str | None, Any]]) -> tuple[str | None, dict[str, Any]]:
    """How each API reports a failure after the stream started: chat an ``error`` chunk, responses an event."""
    message = "The model produced invalid content."
    name, first = events[0]
    if name is None:
        return None, {"error": {"message": message, "type": "server_error", "param": None, "code": None}}
    response = {**first["response"], "status": "failed", "error": {"code": "server_error", "message": message}}
    return "response.failed", {"type": "response.failed", "sequence_number": len(events), "response": response}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default backlog of 5 drops simultaneous connects, which retry after 1 s

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up (timeout, interrupt, test over) is normal here; anything else is reported."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def main() -> None:
    """Serve until Ctrl-C, e.g. to benchmark against: ``python tests/openai_server.py --latency-ms 200``."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--latency-ms", type=float, default=0)
    parser.add_argument("--chunk-delay-ms", type=float, default=0)
    args = parser.parse_args()
    with OpenAIServer(port=args.port) as server:
        server.latency_ms, server.chunk_delay_ms = args.latency_ms, args.chunk_delay_ms
        print(f"serving on {server.base_url}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
