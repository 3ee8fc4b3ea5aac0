"""The storage contract: small on purpose, so a new backend is an afternoon's work.

Sessions: get / list / create-if-absent (owner-checked) / upsert / update (merge under the store's lock) /
delete. The merge of an update is one function here (``apply_session_update``), so every backend merges alike.
Runs: upsert / get / list for one session, and the run engine's conditional writes: a run's status changes
only by a write that checks the stored state in the same step (``claim_run``: paused -> running once;
``upsert_run_if_session``: never into a deleted session). Plus a tiny key-value area for notebook settings
(the active session of a notebook lives there).
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import fields as dataclass_fields
from typing import Any

from nbsessions.db.journal_format import apply_update
from nbsessions.db.journal_format import merge_patch as merge_patch  # one merge for every store
from nbsessions.records.errors import SessionAccessError
from nbsessions.records.liveness import why_unfinished
from nbsessions.records.redact import redact, redact_data
from nbsessions.records.schema import Metrics, RunOutput, RunStatus, Session, now
from nbsessions.records.stored_history import history_ref_ids, own_message_dicts, without_history

SESSION_SORT_KEYS = ("updated_at", "created_at", "session_name")


def check_sort(sort: str) -> None:
    if sort not in SESSION_SORT_KEYS:
        raise ValueError(f"unknown sort key {sort!r}; use one of: {', '.join(SESSION_SORT_KEYS)}")


_SESSION_FIELDS = frozenset(f.name for f in dataclass_fields(Session)) - {"session_id"}


TakenNames = Callable[[str | None], Iterable[str | None]]
"""The names of a user's other sessions, asked of a store (under its lock) only when a session is renamed."""


def apply_session_update(data: dict[str, Any], *, taken: TakenNames, **changes: Any) -> dict[str, Any]:
    """The one merge every store applies under its lock (``BaseDb.update_session``); returns a new dict.

    ``session_change`` says what changes; this applies it (``apply_update``), as a journal replaying it does.
    """
    return apply_update(data, session_change(data, taken=taken, **changes))


def session_change(data: Mapping[str, Any], *, taken: TakenNames, state_patch: Mapping[str, Any] | None = None,
                   state_delete: Iterable[str] = (), metadata_patch: Mapping[str, Any] | None = None,
                   **fields: Any) -> dict[str, Any]:
    """An ``update_session`` call as an ``Update`` change of the stored session ``data``, so a store may append
    the change rather than the session rewritten.

    ``state_patch`` replaces top-level keys of ``session_state`` and ``state_delete`` removes keys (missing
    ones ignored); ``metadata_patch`` is a JSON merge patch over ``metadata``; ``fields`` replace attributes,
    a new ``session_name`` made unique against ``taken(user_id)``; ``updated_at`` becomes now.
    """
    unknown = set(fields) - _SESSION_FIELDS
    if unknown:
        raise TypeError(f"update_session got unknown session field(s): {', '.join(sorted(unknown))}")
    if isinstance(state_delete, str):
        raise TypeError("state_delete takes a collection of keys, not one string")
    values = copy.deepcopy(fields)
    if fields.get("session_name"):
        values["session_name"] = unique_name(redact(fields["session_name"]),  # unique as it is kept
                                             taken(values.get("user_id", data.get("user_id"))))
    change: dict[str, Any] = {"set": {**values, "updated_at": now()}}
    if state_patch:
        change["put"] = {"session_state": copy.deepcopy(dict(state_patch))}
    deleted = list(state_delete)
    if deleted:
        change["drop"] = {"session_state": deleted}
    if metadata_patch:
        change["merge"] = {"metadata": copy.deepcopy(dict(metadata_patch))}
    return redact_data(change)  # the change is what a store keeps, as a record's to_dict is: never a secret


def unique_name(name: str | None, taken: Iterable[str | None]) -> str | None:
    """``name``, or ``name (2)``, ``name (3)``… when ``taken`` already holds it.

    Two sessions both called "cleanup" are told apart only by their ids; people pick sessions by name. Stores
    call this with the names of the user's other sessions while holding their lock, so choosing a name and
    storing it are one step.
    """
    if not name:
        return name
    taken = set(taken)
    if name not in taken:
        return name
    number = 2
    while f"{name} ({number})" in taken:
        number += 1
    return f"{name} ({number})"


def _names_in(sessions: Mapping[str, Mapping[str, Any]], user_id: str | None,
              except_id: str | None = None) -> set[str | None]:
    """The names of ``user_id``'s stored sessions, but for ``except_id`` (the one being renamed)."""
    return {s.get("session_name") for s in sessions.values()
            if s.get("user_id") == user_id and s.get("session_id") != except_id}


def create_in_table(sessions: Mapping[str, Mapping[str, Any]], session: Session) -> tuple[dict[str, Any], bool]:
    """``create_session`` over a table of stored session dicts (memory, TinyDB), under the caller's lock.

    Returns (the stored dict, False) for an existing session after the owner check, or (the dict to store,
    True) for a new one, its name made unique among its user's sessions. Do not mutate what it returns.
    """
    stored = sessions.get(session.session_id)
    if stored is not None:
        check_session_owner(stored.get("user_id"), session.session_id, session.user_id)
        return dict(stored), False
    data = session.to_dict()
    data["session_name"] = unique_name(data["session_name"], _names_in(sessions, session.user_id))
    return data, True


def update_in_table(sessions: Mapping[str, Mapping[str, Any]], session_id: str,
                    **changes: Any) -> dict[str, Any] | None:
    """``update_session``'s merge over a table of stored session dicts, under the caller's lock: the new dict
    to store (``apply_session_update``, a new name made unique), or None when there is no such session."""
    found = change_in_table(sessions, session_id, **changes)
    return apply_update(*found) if found is not None else None


def change_in_table(sessions: Mapping[str, Mapping[str, Any]], session_id: str,
                    **changes: Any) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The stored session and ``update_session``'s change to it (``session_change``), under the caller's lock;
    None when there is no such session. A journal appends the change instead of the merged session."""
    data = sessions.get(session_id)
    if data is None:
        return None
    return dict(data), session_change(data, taken=lambda user: _names_in(sessions, user, session_id), **changes)


def check_session_owner(stored_user: str | None, session_id: str, user_id: str | None) -> None:
    """Refuse a session of another user: ``user_id=None`` means the caller does not scope by user.

    The refusal names nothing of the owner's, not even the session's id: the caller may have given a run id,
    and the session it belongs to is not theirs to learn."""
    if user_id is not None and stored_user != user_id:
        raise SessionAccessError(
            f"that session belongs to another user; open it as its owner or start a new session for {user_id!r}")


RunFetcher = Callable[[set[str]], Mapping[str, dict[str, Any]]]
"""Stored run records by id (missing ids left out), for resolving history references."""


def runs_from_records(records: Iterable[dict[str, Any]], fetch: RunFetcher,
                      ids: Iterable[str] | None = None, *, resolve_history: bool = True) -> list[RunOutput]:
    """Runs from their stored records, history references resolved: every store reads runs through this.

    A stored run keeps only its own messages and references to the runs it took history from
    (``RunOutput.to_dict(history_refs=True)``). Referenced runs among ``records`` are used directly; the others
    are asked of ``fetch`` in one call, so a store can answer with one query. Only their own messages are read,
    which are always stored in full, so resolution never recurses. A bad record raises ``ValueError`` naming
    its id (from ``ids`` when given: the key it is stored under).
    """
    records = list(records) if resolve_history else [without_history(r) for r in records]
    wanted = set().union(*(history_ref_ids(r) for r in records)) if records else set()
    known = {r["run_id"]: r for r in records if r.get("run_id") in wanted}
    if wanted - known.keys():
        known.update(fetch(wanted - known.keys()))
    by_session: dict[Any, dict[str, list[dict[str, Any]]]] = {}
    for run_id, data in known.items():  # history comes from the run's own session only, never another user's
        by_session.setdefault(data.get("session_id"), {})[run_id] = own_message_dicts(data)
    names = list(ids) if ids is not None else [r.get("run_id") for r in records]
    return [_run_from(r, by_session.get(r.get("session_id"), {}), name)
            for r, name in zip(records, names, strict=True)]


def _run_from(data: dict[str, Any], sources: dict[str, list[dict[str, Any]]], name: Any) -> RunOutput:
    try:
        run = RunOutput.from_dict(data, sources)
    except (ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"RunOutput {name!r} cannot be read: {exc}") from exc
    if run.status == RunStatus.running and (why := why_unfinished(run.writer, run.created_at)):
        run.status = RunStatus.interrupted  # its process died mid-run: it will never finish
        run.error = run.error or why
    return run


class BaseDb(ABC):
    """Where sessions and runs live. Every method is safe to call from several threads."""

    path: str | None = None

    # -- sessions -------------------------------------------------------------------------------
    @abstractmethod
    def get_session(self, session_id: str) -> Session | None: ...

    @abstractmethod
    def list_sessions(
        self, *, user_id: str | None = None, limit: int | None = None, offset: int = 0,
        sort: str = "updated_at", descending: bool = True,
    ) -> list[Session]:
        """Sessions without their runs; ``user_id=None`` lists every user's."""

    @abstractmethod
    def create_session(self, session: Session) -> Session:
        """Store ``session`` unless one with its id exists, as one atomic step; return the stored session.

        An existing session is returned unchanged (nothing written) when ``session.user_id`` is None or is its
        owner; a session of another user raises ``SessionAccessError``. So two callers opening the same new id
        at once never both write it. A new session's name is made unique among its user's (``unique_name``)
        in that same step, so two kernels naming sessions alike at once get "cleanup" and "cleanup (2)".
        """

    @abstractmethod
    def upsert_session(self, session: Session) -> None:
        """Store ``session`` exactly as given (a copy between stores keeps its names): no checks, no merge."""

    @abstractmethod
    def update_session(self, session_id: str, *, state_patch: dict[str, Any] | None = None,
                       state_delete: Iterable[str] = (), metadata_patch: dict[str, Any] | None = None,
                       **fields: Any) -> Session:
        """Read, merge (``apply_session_update``) and write one session atomically: concurrent writers of
        different keys all survive. A new ``session_name`` is made unique among the user's other sessions in
        the same step. Raises ``SessionNotFoundError`` when the session does not exist.
        """

    @abstractmethod
    def delete_session(self, session_id: str) -> bool:
        """Delete a session and all its runs; False when there was none."""

    # -- runs -----------------------------------------------------------------------------------
    @abstractmethod
    def upsert_run(self, run: RunOutput, *, durable: bool = True) -> None:
        """Insert or replace one run and bump its session's ``updated_at``, as one write.

        Stored as ``run.to_dict(history_refs=True)`` and read back through ``runs_from_records``, so history is
        kept once, in the run that added it.

        Durable (fsync'd) before returning unless ``durable=False``: for a record that a later durable write
        replaces (a run being started), surviving a killed process is enough.
        """

    @abstractmethod
    def upsert_run_if_session(self, run: RunOutput, *, durable: bool = True) -> bool:
        """``upsert_run`` only while the run's session exists, checked and written as one atomic step.

        False, with nothing written, once the session is gone: a run whose session was deleted while it ran is
        never stored (its writes would otherwise bring it back as an orphan). Every write of a run in motion
        goes through this.
        """

    @abstractmethod
    def claim_run(self, run: RunOutput) -> bool:
        """Store ``run`` (continued: ``running``, with its answers) only if its stored record is still
        ``paused`` and its session exists, as one atomic step: paused -> running happens once.

        False, with nothing written, when another continue claimed it first (or it or its session is gone):
        of two concurrent continues exactly one gets True, so an approved tool runs once.
        """

    @abstractmethod
    def get_run(self, run_id: str) -> RunOutput | None:
        """One run, its ``messages`` exactly as sent (history resolved from the runs it came from)."""

    @abstractmethod
    def list_runs(self, session_id: str, *, last: int | None = None, resolve_history: bool = True
                  ) -> list[RunOutput]:
        """Runs of a session, oldest first, history resolved; ``last=N`` reads only the newest N (cost O(N)).

        ``resolve_history=False`` leaves out the history each run took from earlier ones (their own messages
        only): what a new run reads of its history runs, without resolving (or fetching) their history too."""

    def session_totals(self, session_id: str) -> tuple[int, Metrics]:
        """Number of top-level runs and metrics summed over completed ones: what a session list shows.

        Backends may override this to answer without building run objects.
        """
        runs = [r for r in self.list_runs(session_id) if r.parent_run_id is None]  # nested: in their parent
        return len(runs), Metrics.total([r.metrics for r in runs if r.status == RunStatus.completed])

    # -- notebook settings ----------------------------------------------------------------------
    @abstractmethod
    def get_meta(self, key: str, default: Any = None) -> Any: ...

    @abstractmethod
    def set_meta(self, key: str, value: Any) -> None: ...

    # -- changes made elsewhere ------------------------------------------------------------------
    def add_change_listener(self, listener: Callable[[str, str, str | None], None]) -> bool:
        """Call ``listener(event, session_id, user_id)`` when another process changes the store.

        Events are those of ``Agent.add_listener``. Returns False when the store cannot tell (then nothing is
        called); stores shared between processes (PostgreSQL) override it.
        """
        return False

    def remove_change_listener(self, listener: Callable[[str, str, str | None], None]) -> None:
        """Stop calling ``listener``; unknown listeners are ignored."""

    def spool_key(self) -> str | None:
        """What names this store to every process of this machine, without a secret: final writes it never
        answered are kept on disk under it (``runs/core/spool.py``). None for a store no other process opens, or
        one opened only to read."""
        return None

    def close(self) -> None:
        """Release files and locks; the in-memory store has nothing to release."""

    def __enter__(self) -> BaseDb:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
