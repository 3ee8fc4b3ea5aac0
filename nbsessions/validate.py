"""Checks on what callers hand in, made before anything is written: a bad value is one clear line, not a session
created and then a ``StorageError`` from the store.

Everything here raises ``InvalidInputError`` (a ``ValueError`` and an ``NbSessionsError``).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping
from typing import Any

from nbsessions.errors import InvalidInputError
from nbsessions.redact import leaks


def kind_of(value: Any) -> str:
    """What a wrong value is, for a message: ``int``, ``list``, or ``None`` (not ``NoneType``)."""
    return "None" if value is None else type(value).__name__


def check_text(value: Any, what: str, *, empty: bool = True) -> str:
    """A string that can be stored as UTF-8 (no lone surrogates such as ``\\ud800``)."""
    if not isinstance(value, str):
        raise InvalidInputError(f"{what} must be a string, not {kind_of(value)}")
    if not empty and not value.strip():
        raise InvalidInputError(f"{what} is empty")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInputError(f"{what} holds a lone surrogate ({value[exc.start]!r} at {exc.start}), "
                                "which cannot be stored as UTF-8") from None
    return value


def check_prompt(value: Any) -> None:
    """A prompt: a string with something in it (``run(123)`` is a wrong type, not an empty prompt)."""
    if not isinstance(value, str):
        raise InvalidInputError(f"the prompt must be a string, not {kind_of(value)}")
    if not value.strip():
        raise InvalidInputError("the prompt is empty: give the model something to answer")
    check_text(value, "the prompt")


def check_json(value: Any, what: str) -> None:
    """JSON that every store can keep: no NaN or infinity, no non-JSON types, nothing that is not UTF-8."""
    try:
        json.dumps(value, allow_nan=False, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInputError(f"{what} holds a lone surrogate, which cannot be stored as UTF-8") from None
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidInputError(f"{what} must be JSON-serialisable: {exc}") from None


def loads(text: str) -> Any:
    """``json.loads`` without Python's ``NaN`` and ``Infinity``, which no store or browser takes: a ``ValueError``
    naming the word (a ``json.JSONDecodeError`` for any other mistake)."""
    return json.loads(text, parse_constant=_refuse_constant)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON: use a number, null or a string")


def check_count(value: Any, what: str, least: int = 0) -> None:
    """None, or a whole number of at least ``least`` (a history length, a token budget)."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        shown = "a number too long to show" if isinstance(value, int) and abs(value) >= 10**30 else repr(value)
        raise InvalidInputError(f"{what} must be a whole number of at least {least}, not {shown}")
    if value > sys.maxsize:  # islice and friends take no more; the number itself may be too long to print
        raise InvalidInputError(f"{what} is too large: at most {sys.maxsize}")


def check_state(value: Any, what: str) -> None:
    """Session state or metadata: a dict of JSON (``check_json``), not a list or a string."""
    if not isinstance(value, dict):
        raise InvalidInputError(f"{what} must be a dict, not {kind_of(value)}")
    check_json(value, what)


def check_user_id(value: Any) -> None:
    """None (no user), or a non-empty string."""
    if value is not None:
        check_text(value, "user_id", empty=False)


def check_run_input(prompt: Any, options: Mapping[str, Any], session_state: Any, counts: tuple[Any, ...],
                    secrets: Iterable[str | None]) -> None:
    """Everything a run is given (``options``: its ``RunOptions``), checked before a session is opened or a run
    written."""
    check_prompt(prompt)
    check_user_id(options.get("user_id"))
    if session_state is not None:
        check_state(session_state, "session_state")
    for what in ("instructions", "session_id"):
        if options.get(what) is not None:
            check_text(options[what], what)
    tags = options.get("tags")
    if tags is not None and (not isinstance(tags, list | tuple) or not all(isinstance(t, str) for t in tags)):
        raise InvalidInputError(f"tags must be a list of strings, not {tags!r:.60}")
    for what, count in zip(("num_history_runs", "num_history_messages", "max_history_tokens"), counts, strict=True):
        check_count(count, what)
    refuse_secrets(prompt, secrets)


def refuse_secrets(text: str, secrets: Iterable[str | None] = ()) -> None:
    """Refuse ``text`` when it holds a configured secret or any piece of one of ``MIN_LENGTH`` characters (see
    ``redact``; ``secrets`` adds the model's own), without quoting it: a prompt is sent to the server and stored,
    a key never is."""
    if leaks(text, secrets):
        raise InvalidInputError("the prompt contains the configured API key or a piece of a secret; nothing was "
                                "sent or stored")
