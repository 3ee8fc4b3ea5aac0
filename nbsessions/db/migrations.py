"""Migrations as one named function each, registered in the order they apply (as simonw/llm's ``@migration``).

A store's version is how many of its registry's migrations it has had: migration ``n`` takes version ``n - 1``
to ``n``. Both stores keep one: PostgreSQL's schema (``postgres_schema``) and the journal file's format
(``journal_migrations``). Never edit or reorder a migration that has shipped: add a new one at the end.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

Apply = TypeVar("Apply", bound=Callable[..., Any])


@dataclass(frozen=True)
class Migration:
    number: int
    name: str  # what a store records or a message shows: fixed once shipped
    apply: Callable[..., Any]


class Registry:
    """The migrations of one store, numbered from 1 as they are registered with ``@registry("name")``."""

    def __init__(self) -> None:
        self._steps: list[Migration] = []

    def __call__(self, name: str) -> Callable[[Apply], Apply]:
        def register(fn: Apply) -> Apply:
            self._steps.append(Migration(len(self._steps) + 1, name, fn))
            return fn
        return register

    def __iter__(self) -> Iterator[Migration]:
        return iter(self._steps)

    def __len__(self) -> int:
        return len(self._steps)

    def __getitem__(self, number: int) -> Migration:
        """Migration ``number`` (from 1)."""
        if not 1 <= number <= len(self._steps):
            raise IndexError(f"no migration {number}")
        return self._steps[number - 1]

    @property
    def latest(self) -> int:
        return len(self._steps)

    def after(self, version: int) -> list[Migration]:
        """The migrations a store at ``version`` still needs, in the order they apply."""
        return self._steps[max(version, 0):]
