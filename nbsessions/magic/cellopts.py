"""What a ``%%agent`` cell or ``%agent`` command asked for, and the small parsers they share.

Kept apart from ``NotebookAgent`` so the shape of the options can be read on its own; nothing here touches the
database or a model.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, field
from typing import Any, Protocol

from IPython.core.error import UsageError

from nbsessions.errors import InvalidInputError
from nbsessions.llm.base import Model
from nbsessions.schema import Session
from nbsessions.validate import check_json, loads


class Settings(Protocol):
    """What ``NotebookAgent`` reads from ``AgentMagics``' traits (``%config AgentMagics.…``)."""

    model: str
    db_path: str
    db_url: str
    base_url: str
    api: str
    api_key_env: str
    history: int
    history_tokens: int
    summaries: int
    agentic_state: bool
    stream: bool
    user: str
    update_interval: float


@dataclass
class CellOptions:
    """What a ``%%agent`` line asked for, already parsed (``None`` = not given)."""

    session: str | None = None
    user: str | None = None
    model: str | None = None
    new: str | None = None  # "" = a new unnamed session
    history: int | None = None
    history_messages: int | None = None
    history_tokens: int | None = None
    system: str | None = None
    state: str | None = None
    stream: bool | None = None
    output: str | None = None
    result: bool = False
    compare: list[str] | None = None  # model names
    variants: str | None = None  # --variants, --checks, --over: names of the notebook's variables
    checks: str | None = None
    over: str | None = None
    sweep: list[tuple[str, list[Any]]] = field(default_factory=list)  # (setting, values)
    concurrency: int | None = None
    registered: tuple[str, str] | None = None  # ("team" | "workflow" | "agent", NAME) from %agent register

    @property
    def comparing(self) -> bool:
        """Several replies to one prompt side by side: models, system prompts or settings."""
        return bool(self.compare or self.variants or self.sweep)


@dataclass
class Prepared:
    """A cell checked and ready to run: nothing has been written yet."""

    prompt: str
    model: Model | None
    source: str
    session: Session | None
    user: str | None
    state: dict[str, Any] | None


def parse_object(text: str, what: str, example: str = '{"key": "value"}') -> dict[str, Any]:
    """A JSON object (``what`` names it in errors), or a one-line ``UsageError`` saying what is wrong with it."""
    try:
        value = loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"invalid {what} JSON ({exc.msg} at character {exc.pos}): give an object such as "
                         f"'{example}'") from None
    except ValueError as exc:
        raise UsageError(f"invalid {what} JSON: {exc}") from None
    if not isinstance(value, dict):
        raise UsageError(f"{what} must be a JSON object such as '{example}', not {type(value).__name__}")
    try:
        check_json(value, what)
    except InvalidInputError as exc:
        raise UsageError(str(exc)) from None
    return value


_ARG = re.compile(r"[ \t\r\n]*(?:('[^']*'|\"[^\"]*\"|[^ \t\r\n'\"][^ \t\r\n]*)|(['\"])|$)")


def split_args(line: str) -> list[str]:
    """The words of a magic's line, as IPython's ``arg_split`` splits them, in linear time.

    ``arg_split`` is ``shlex``, which grows each word one character at a time: a 1 MB ``--state`` took 15 s and
    a 50 MB one never ended. Same rules here (non-POSIX ``shlex`` with whitespace splitting): a word starting with
    a quote runs to the matching quote, which ends it, and keeps its quotes; any other word runs to whitespace.
    """
    words, at = [], 0
    while True:
        found = _ARG.match(line, at)
        assert found is not None  # every alternative can match the empty end
        if found[1] is not None:
            words.append(found[1])
        elif found[2] is not None:
            raise UsageError(f"unclosed {found[2]} at character {found.start(2)} of the line: close it")
        else:
            return words
        at = found.end()


def check_flag_count(value: int | None, flag: str, least: int, unit: str) -> None:
    """A count given to a flag (``--history N``): at least ``least``, and no larger than a count can be."""
    if value is None:
        return
    if value < least:
        raise UsageError(f"{flag} needs {least} or more {unit}")
    if value > sys.maxsize:
        raise UsageError(f"{flag} is too large: at most {sys.maxsize} {unit}")


def parse_state(text: str) -> dict[str, Any]:
    """A JSON object for session state, or a one-line ``UsageError`` saying what is wrong with it."""
    return parse_object(text, "state", '{"topic": "ml"}')
