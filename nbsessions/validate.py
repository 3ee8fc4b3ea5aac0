"""Checks on what callers hand in, made before anything is written: a bad value is one clear line, not a session
created and then a ``StorageError`` from the store.

Everything here raises ``InvalidInputError`` (a ``ValueError`` and an ``NbSessionsError``).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
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


def check_json(value: Any, what: str) -> None:
    """JSON that every store can keep: no NaN or infinity, no non-JSON types, nothing that is not UTF-8."""
    try:
        json.dumps(value, allow_nan=False, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInputError(f"{what} holds a lone surrogate, which cannot be stored as UTF-8") from None
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidInputError(f"{what} must be JSON-serialisable: {exc}") from None


def check_count(value: Any, what: str) -> None:
    """None, or a whole number of at least 0 (a history length, a token budget)."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInputError(f"{what} must be a whole number of at least 0, not {value!r}")
    if value > sys.maxsize:  # islice and friends take no more; the number itself may be too long to print
        raise InvalidInputError(f"{what} is too large: at most {sys.maxsize}")


def check_user_id(value: Any) -> None:
    """None (no user), or a non-empty string."""
    if value is not None:
        check_text(value, "user_id", empty=False)


def refuse_secrets(text: str, secrets: Iterable[str | None] = ()) -> None:
    """Refuse ``text`` when it holds a configured secret or any piece of one of ``MIN_LENGTH`` characters (see
    ``redact``; ``secrets`` adds the model's own), without quoting it: a prompt is sent to the server and stored,
    a key never is."""
    if leaks(text, secrets):
        raise InvalidInputError("the prompt contains the configured API key or a piece of a secret; nothing was "
                                "sent or stored")
