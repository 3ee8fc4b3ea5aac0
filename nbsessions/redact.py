"""The one redaction step between records and every place they go (stores, exports, cells, panel, logs, errors).

Each configured secret (the API key a model reads, a database password) and every piece of it of
``MIN_LENGTH`` characters or more becomes ``MARK``. Models and stores declare their secrets here when they are
made (``register`` for a value, ``register_env`` for the variable a key is read from, read again on each call
so a key exported later counts too); nothing else needs to know which secrets exist.

Why an automaton: this runs on every write. The ``MIN_LENGTH``-character windows of all secrets go into one
Aho-Corasick automaton (built once per set of secrets), so a text is scanned once, in Rust, whatever the number
and length of the secrets; with no secret configured it costs nothing.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable
from typing import Any

import ahocorasick_rs

MARK = "[redacted]"
MIN_LENGTH = 8
"""A shorter piece says too little to leak a key, and shorter "keys" (placeholders such as ``x``) would redact
ordinary words."""
DEFAULT_ENV = ("OPENAI_API_KEY",)
"""Read by every OpenAI-compatible model unless it names another variable: redacted even before a model exists."""

_lock = threading.Lock()
_values: set[str] = set()
_env_names: set[str] = set(DEFAULT_ENV)
_built: dict[frozenset[str], _Matcher] = {}
_version = 0  # bumped by every change of the registered values or variables
_cache: tuple[_Matcher | None, tuple[Any, ...]] | None = None  # the last answer of _matcher() and its inputs


class _Matcher:
    """Every ``MIN_LENGTH``-window of some secrets in one automaton; finds the spans they cover in a text."""

    def __init__(self, secrets: frozenset[str]):
        # each secret as written and as JSON writes it (a quote or a backslash escaped), so a record can be
        # checked as one JSON text and a JSON export is caught too
        forms = secrets | {json.dumps(s, ensure_ascii=False)[1:-1] for s in secrets}
        windows = {s[i:i + MIN_LENGTH] for s in forms for i in range(len(s) - MIN_LENGTH + 1)}
        self._automaton = ahocorasick_rs.AhoCorasick(sorted(windows))

    def spans(self, text: str) -> list[tuple[int, int]]:
        """Merged ``(start, end)`` spans of ``text`` covered by windows of a secret (empty: nothing to hide)."""
        found = self._automaton.find_matches_as_indexes(text, overlapping=True)
        if not found:
            return []
        merged: list[list[int]] = []
        for _, start, end in sorted(found, key=lambda m: m[1]):
            if merged and start <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        return [(a, b) for a, b in merged]


def register(*secrets: str | None) -> None:
    """Values that must never be kept or shown (an explicit ``api_key=``, a database password)."""
    new = {s for s in secrets if isinstance(s, str) and len(s) >= MIN_LENGTH} - _values
    if new:
        with _lock:
            _values.update(new)
            _bump()


def register_env(*names: str | None) -> None:
    """Environment variables holding secrets (a model's ``api_key_env``), read again on every use."""
    new = {n for n in names if n} - _env_names
    if new:
        with _lock:
            _env_names.update(new)
            _bump()


def forget() -> None:
    """Back to only the default variables: what a fresh process knows (test isolation uses it)."""
    with _lock:
        _values.clear()
        _env_names.clear()
        _env_names.update(DEFAULT_ENV)
        _bump()


def _bump() -> None:
    global _version
    _version += 1


def configured(extra: Iterable[str | None] = ()) -> frozenset[str]:
    """The secrets in force now: registered values, the registered variables' values, and ``extra``."""
    found = {os.environ.get(name) for name in tuple(_env_names)} | set(_values) | set(extra)
    return frozenset(s for s in found if isinstance(s, str) and len(s) >= MIN_LENGTH)


def _matcher(extra: Iterable[str | None] = ()) -> _Matcher | None:
    """The automaton of the secrets in force (and ``extra``); the common call, with no ``extra``, builds no set
    unless a variable's value or the registered values changed since the last call."""
    global _cache
    values = (tuple(map(os.environ.get, tuple(_env_names))), _version)
    cached = _cache
    if not extra and cached is not None and cached[1] == values:
        return cached[0]
    secrets = configured(extra)
    matcher = _built.get(secrets) if secrets else None
    if secrets and matcher is None:
        if len(_built) >= 16:  # a few sets of secrets in one process; never a growing pile of automata
            _built.clear()
        matcher = _built[secrets] = _Matcher(secrets)
    if not extra:
        _cache = (matcher, values)
    return matcher


def redact(text: str, extra: Iterable[str | None] = ()) -> str:
    """``text`` with every piece of a secret of ``MIN_LENGTH`` characters or more replaced by ``MARK``."""
    matcher = _matcher(extra)
    if matcher is None or not text:
        return text
    return _marked(text, matcher.spans(text))


def _marked(text: str, spans: list[tuple[int, int]]) -> str:
    if not spans:
        return text
    out, last = [], 0
    for start, end in spans:
        out += [text[last:start], MARK]
        last = end
    out.append(text[last:])
    return "".join(out)


class StreamRedactor:
    """Redacts text that arrives in pieces (a streamed reply printed as it comes): a key split across deltas
    is caught too. ``feed`` returns what is safe to show now, holding back a tail that a later piece could turn
    into a piece of a secret; ``flush`` returns the rest."""

    def __init__(self) -> None:
        self._pending = ""

    def feed(self, delta: str) -> str:
        text = self._pending + delta
        matcher = _matcher()
        if matcher is None:
            self._pending = ""
            return text
        cut = max(0, len(text) - (MIN_LENGTH - 1))
        spans = matcher.spans(text)
        for start, end in spans:
            if end > cut:  # a piece reaching the held-back tail may go on in the next delta
                cut = min(cut, start)
                break
        self._pending = text[cut:]
        return _marked(text[:cut], [span for span in spans if span[1] <= cut])

    def flush(self) -> str:
        text, self._pending = self._pending, ""
        return redact(text)


def leaks(text: str, extra: Iterable[str | None] = ()) -> bool:
    """Whether ``text`` holds a piece of a secret of ``MIN_LENGTH`` characters or more."""
    matcher = _matcher(extra)
    return bool(matcher is not None and text and matcher.spans(text))


def redact_data(value: Any) -> Any:
    """A JSON-like value (dicts, lists, strings: a record's ``to_dict``) with its strings and keys redacted.

    Returns ``value`` itself when nothing in it needs redacting, which is the common case: the strings are
    scanned together once before anything is copied.
    """
    matcher = _matcher()
    if matcher is None:
        return value
    try:  # one pass in C over every string and key; a piece of a secret shows in it as written or escaped
        text = json.dumps(value, ensure_ascii=False, default=str, check_circular=False)
    except (TypeError, ValueError, RecursionError):
        strings: list[str] = []
        _collect(value, strings)
        text = "\0".join(strings)
    if not matcher.spans(text):
        return value
    return _rebuilt(value)


def _collect(value: Any, into: list[str]) -> None:
    if isinstance(value, str):
        into.append(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str):
                into.append(key)
            _collect(item, into)
    elif isinstance(value, list | tuple):
        for item in value:
            _collect(item, into)


def _rebuilt(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact(k) if isinstance(k, str) else k: _rebuilt(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_rebuilt(v) for v in value)
    return value
