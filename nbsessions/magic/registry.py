"""Teams, workflows and agents a notebook registered by name (``%agent register NAME VAR``).

A registered object is kept as the user built it; each run gets a copy bound to the notebook's store, so its
runs land in the notebook's sessions (and follow ``%agent db PATH``) whatever store it was built with.
Registrations live as long as the kernel: they are Python objects, not records.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from IPython.core.error import UsageError

from nbsessions.db.base import BaseDb
from nbsessions.runs.agent import Agent
from nbsessions.runs.team import Team
from nbsessions.runs.workflows.workflow import Workflow

Runner = Agent | Workflow
KINDS = ("team", "workflow", "agent")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}")


def kind_of(value: Any) -> str | None:
    """``team``, ``workflow`` or ``agent`` for what may be registered; ``None`` for anything else."""
    if isinstance(value, Team):
        return "team"
    if isinstance(value, Workflow):
        return "workflow"
    if isinstance(value, Agent):
        return "agent"
    return None


def rebind(value: Runner, db: BaseDb) -> Runner:
    """A copy of ``value`` on ``db`` for one run: listeners added to it never pile up on the user's object."""
    return value.with_db(db)


def describe(value: Runner) -> str:
    """One line on what a registered object is made of (names the user chose: shown as plain text)."""
    if isinstance(value, Team):
        return f"team of {', '.join(value.members)} ({value.mode}; leader {value.model.id})"
    if isinstance(value, Workflow):
        return f"workflow: {' → '.join(step.name for step in value.steps)}"
    return f"agent {value.name} on {value.model.id}" if value.name else f"agent on {value.model.id}"


@dataclass
class Entry:
    name: str
    kind: str
    value: Runner


class Registry:
    """Name → team, workflow or agent, for one notebook."""

    def __init__(self) -> None:
        self._entries: dict[str, Entry] = {}

    def __iter__(self):
        return iter(self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, name: str, value: Any, source: str) -> tuple[Entry, bool]:
        """Register ``value`` (from the variable ``source``) as ``name``; returns it and whether it replaced one."""
        if not _NAME.fullmatch(name):
            raise UsageError(f"%agent register: {name!r} is not a usable name: letters, digits, _ . - "
                             "(starting with a letter or _)")
        kind = kind_of(value)
        if kind is None:
            raise UsageError(f"%agent register {name} {source}: {source} is a {type(value).__name__}, not a Team, "
                             "a Workflow or an Agent")
        replaced = name in self._entries
        entry = Entry(name, kind, value)
        self._entries[name] = entry
        return entry, replaced

    def remove(self, name: str) -> Entry:
        if name not in self._entries:
            raise UsageError(f"%agent register --remove {name}: nothing is registered as {name!r}"
                             f"{self._known()}")
        return self._entries.pop(name)

    def get(self, name: str, kind: str) -> Runner:
        """The object registered as ``name``, which must be of ``kind``; else a one-line ``UsageError``."""
        entry = self._entries.get(name)
        if entry is None:
            raise UsageError(f"--{kind} {name}: nothing is registered as {name!r}{self._known()}; "
                             f"register it with %agent register {name} VARIABLE")
        if entry.kind != kind:
            raise UsageError(f"--{kind} {name}: {name!r} is registered as a {entry.kind}: use --{entry.kind} {name}")
        return entry.value

    def _known(self) -> str:
        names = ", ".join(f"{e.name} ({e.kind})" for e in self._entries.values())
        return f" (registered: {names})" if names else ""
