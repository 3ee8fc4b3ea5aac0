"""What ``Agent(model=..., db=...)`` (and a run's ``model=``) accept besides objects: a model name and a path.

Checked when the agent is built, so a wrong type is one line there instead of an ``AttributeError`` at the first
run. A name resolves as the magic's ``-m`` does (``llm.resolve.model_from_name``; Agno's ``"openai:gpt-4o"``
spelling too), a path opens a ``TinyDb`` there (a ``postgresql://`` URL a ``PostgresDb``).
"""

from __future__ import annotations

import os
from typing import Any

from nbsessions.db.base import BaseDb
from nbsessions.db.memory import InMemoryDb
from nbsessions.db.urls import mask_url, open_store
from nbsessions.errors import InvalidInputError, StorageError
from nbsessions.llm.base import Model
from nbsessions.llm.resolve import model_from_name

ModelLike = Model | str
DbLike = BaseDb | str | os.PathLike[str]

AGNO_PREFIX = "openai:"
"""Agno's ``Agent(model="openai:gpt-4o")`` is ``OpenAIChat(id="gpt-4o")``."""


def as_model(value: Any, what: str = "model") -> Model | None:
    """None, a ``Model``, or a model name such as ``"gpt-5.2"``, ``"openai:gpt-4o"`` or ``"offline"``."""
    if value is None or isinstance(value, Model):
        return value
    if not isinstance(value, str):
        raise InvalidInputError(f"{what} must be a model such as OpenAIChat('gpt-4o') or a model name such as "
                                f"'gpt-5.2', not {type(value).__name__}")
    name, api = (value.strip()[len(AGNO_PREFIX):], "chat") if value.strip().startswith(AGNO_PREFIX) \
        else (value, None)
    try:
        return model_from_name(name, api=api)
    except ValueError as exc:
        raise InvalidInputError(f"{what} {value!r}: {exc}") from None


def as_db(value: Any) -> BaseDb:
    """A store, or where one is: a file path (a ``TinyDb`` there, created when missing) or a ``postgresql://``
    URL; None is a new in-memory store."""
    if value is None:
        return InMemoryDb()
    if isinstance(value, BaseDb):
        return value
    if not isinstance(value, str | os.PathLike):
        raise InvalidInputError(f"db must be a store such as TinyDb('sessions.json'), a file path or a "
                                f"postgresql:// URL, not {type(value).__name__}")
    text = os.fspath(value)
    if not isinstance(text, str) or not text.strip():
        raise InvalidInputError("db is an empty path: give a file such as 'sessions.json'")
    try:
        return open_store(text)
    except StorageError:
        raise
    except OSError as exc:
        raise StorageError(f"cannot open {mask_url(text)}: {exc.strerror or exc}") from None
