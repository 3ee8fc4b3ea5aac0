"""``TinyDb``: sessions and runs in a TinyDB file that stays fast as it grows and is safe with two kernels.

The file is a ``JournalStorage`` journal, and ``JournalTinyDB`` keeps TinyDB's API on top of it: its tables read
and write single documents instead of the whole table. ``TinyDb`` itself talks to the storage's narrow API, so
storing a run costs the size of that run and reading a session's newest N runs costs N, whatever the file holds.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from typing import Any, TypeVar

from tinydb import TinyDB
from tinydb.table import Document, Table

from nbsessions.db.base import BaseDb, change_in_table, check_sort, create_in_table, runs_from_records
from nbsessions.db.journal import JournalStorage, Op
from nbsessions.db.journal_format import Update, apply_update
from nbsessions.records.errors import SessionNotFoundError, StorageError
from nbsessions.records.redact import redact_data
from nbsessions.records.schema import Metrics, RunOutput, RunStatus, Session, new_id, now

SESSIONS, RUNS, META = "sessions", "runs", "meta"

_Record = TypeVar("_Record", Session, RunOutput)


class _Snapshot(Mapping[str, dict]):
    """What a stock ``Table`` reads: one table as it was at one moment, whatever other threads commit meanwhile.

    Taking it copies only the id -> stored-document pointers under the storage's lock (stored documents are
    replaced, never changed in place); each document is parsed or deep-copied when read, so callers cannot
    edit the store by accident.
    """

    def __init__(self, storage: JournalStorage, name: str) -> None:
        with storage.reading():
            self._docs = dict(storage.raw_table(name))
        self._storage, self._name = storage, name

    def __getitem__(self, doc_id: str) -> dict[str, Any]:
        return self._storage.private_copy(self._name, doc_id, self._docs[doc_id])

    def __iter__(self) -> Iterator[str]:
        return iter(self._docs)

    def __len__(self) -> int:
        return len(self._docs)

    def __contains__(self, doc_id: object) -> bool:
        return doc_id in self._docs


class _TrackedTable(MutableMapping[str, dict]):
    """What a stock ``Table`` updater edits: copies made on access, so exactly the changed documents are written."""

    def __init__(self, live: dict[str, dict[str, Any]]) -> None:
        self._live = live
        self._docs: dict[str, dict[str, Any]] = {}
        self._deleted: set[str] = set()

    def __getitem__(self, doc_id: object) -> dict[str, Any]:
        key = str(doc_id)
        if key in self._deleted:
            raise KeyError(doc_id)
        if key not in self._docs:
            self._docs[key] = copy.deepcopy(self._live[key])
        return self._docs[key]

    def __setitem__(self, doc_id: object, doc: Mapping[str, Any]) -> None:
        key = str(doc_id)
        self._deleted.discard(key)
        self._docs[key] = dict(doc)  # commit serialises it, so later edits by the caller cannot leak in

    def __delitem__(self, doc_id: object) -> None:
        if doc_id not in self:
            raise KeyError(doc_id)
        key = str(doc_id)
        self._docs.pop(key, None)
        self._deleted.add(key)

    def __contains__(self, doc_id: object) -> bool:
        key = str(doc_id)
        return key not in self._deleted and (key in self._docs or key in self._live)

    def __iter__(self) -> Iterator[str]:
        keys = [k for k in self._live if k not in self._deleted]
        return iter(keys + [k for k in self._docs if k not in self._live])

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def clear(self) -> None:
        self._deleted.update(self._live)
        self._docs.clear()

    def ops(self, name: str) -> list[Op]:
        out: list[Op] = [(name, key, None) for key in self._deleted if key in self._live]
        out += [(name, key, doc) for key, doc in self._docs.items() if self._live.get(key) != doc]
        return out


class _Sessions(Mapping[str, dict]):
    """The live sessions table as ``create_in_table`` / ``update_in_table`` read it: one session by id without
    touching the others; all of them only when a name is chosen. Do not mutate what it gives."""

    def __init__(self, storage: JournalStorage, table: str = "sessions") -> None:
        self._storage, self._table = storage, table

    def __getitem__(self, session_id: str) -> dict[str, Any]:
        doc = self._storage.get(self._table, session_id)
        if doc is None:
            raise KeyError(session_id)
        return doc

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._storage.table(self._table)))

    def __len__(self) -> int:
        return len(self._storage.table(self._table))


class JournalTable(Table):
    """A TinyDB table whose writes append only the documents they change.

    Stock ``Table`` reads the whole table dict and writes it back on every operation; this one edits a tracked
    view and commits the difference. Ids are strings, and new documents get a uuid rather than an
    auto-increment, so two processes inserting at once never collide.
    """

    document_id_class = str
    _storage: JournalStorage

    def _read_table(self) -> Mapping[str, Mapping]:  # type: ignore[override]
        return _Snapshot(self._storage, self.name)

    def _update_table(self, updater: Callable[[dict], None]) -> None:  # type: ignore[override]
        with self._storage.transaction():
            tracked = _TrackedTable(self._storage.table(self.name))
            updater(tracked)  # type: ignore[arg-type]
            self._storage.commit(tracked.ops(self.name))
        self.clear_cache()

    def _get_next_id(self) -> str:  # type: ignore[override]
        return new_id()

    def search(self, cond: Any) -> list[Document]:
        """Like stock ``search``, but the query cache is dropped when another process changed the file."""
        with self._storage.reading():  # applies other processes' appends (without reading any document)
            pass
        if getattr(self, "_seen_generation", None) != self._storage.generation:
            self.clear_cache()
            self._seen_generation = self._storage.generation
        return super().search(cond)


class JournalTinyDB(TinyDB):
    """Stock TinyDB API and query language over an append-only, multi-process-safe journal file."""

    table_class = JournalTable
    default_storage_class = JournalStorage


class TinyDb(BaseDb):
    """Sessions and runs in one TinyDB journal file; ``.tinydb`` gives TinyDB's own API to the same data.

    Tables: ``sessions`` and ``runs`` keyed by their ids, and ``meta`` for notebook settings. Runs are indexed
    by session in storage order, so history reads touch only the runs they return.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, *, db_file: str | os.PathLike[str] | None = None,
                 session_table: str | None = None, id: str | None = None, compact_min_lines: int = 1000,
                 read_only: bool = False, **agno_only: Any) -> None:
        """``read_only``: never create, lock for writing or change the file (reads a read-only file or folder).

        Agno's file-store keywords work: ``db_file`` is ``path`` and ``session_table`` names the sessions table
        (runs stay in ``runs``, keyed by their own ids); ``id`` is kept as ``self.id``. Agno's other tables
        (memories, metrics, knowledge...) are refused by name: nbsessions has none of those features.
        """
        for name in agno_only:
            if name.endswith("_table") or name in ("db_url", "db_engine", "db_path"):
                raise TypeError(f"TinyDb({name}=...) is Agno's, but nbsessions does not support it: remove it")
            raise TypeError(f"TinyDb.__init__() got an unexpected keyword argument {name!r}")
        if (path is None) == (db_file is None):
            raise TypeError("TinyDb needs one file: TinyDb(path) or TinyDb(db_file=...)")
        self.path = os.path.abspath(os.fspath(path if path is not None else db_file))
        self.id = id
        self._sessions = session_table or SESSIONS
        self.tinydb = JournalTinyDB(self.path, group_by={RUNS: "session_id"}, compact_min_lines=compact_min_lines,
                                    read_only=read_only)
        self._store: JournalStorage = self.tinydb.storage  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"TinyDb({self.path!r})"

    def spool_key(self) -> str | None:
        return None if self._store.read_only else f"tinydb {self.path}"

    # -- sessions -------------------------------------------------------------------------------
    def get_session(self, session_id: str) -> Session | None:
        data = self._store.load(self._sessions, session_id)
        return self._load(Session, data, session_id) if data is not None else None

    def list_sessions(self, *, user_id: str | None = None, limit: int | None = None, offset: int = 0,
                      sort: str = "updated_at", descending: bool = True) -> list[Session]:
        check_sort(sort)
        with self._store.reading():
            rows = [s for s in self._store.table(self._sessions).values()
                    if user_id is None or s.get("user_id") == user_id]
        rows.sort(key=lambda s: (s.get(sort) is None, 0 if s.get(sort) is None else s[sort]), reverse=descending)
        end = None if limit is None else offset + limit
        return [self._load(Session, copy.deepcopy(s), s.get("session_id")) for s in rows[offset:end]]

    def upsert_session(self, session: Session) -> None:
        self._store.commit([(self._sessions, session.session_id, session.to_dict())])

    def create_session(self, session: Session) -> Session:
        # under the file lock: two kernels opening one new id write it once, two naming alike get two names
        with self._store.transaction():
            data, new = create_in_table(_Sessions(self._store, self._sessions), session)
            if new:
                self._store.commit([(self._sessions, session.session_id, data)])
            return self._load(Session, copy.deepcopy(data), session.session_id)

    def update_session(self, session_id: str, *, state_patch: dict[str, Any] | None = None,
                       state_delete: Iterable[str] = (), metadata_patch: dict[str, Any] | None = None,
                       **fields: Any) -> Session:
        with self._store.transaction():  # holds the file lock with others' appends applied: nothing is lost
            found = change_in_table(_Sessions(self._store, self._sessions), session_id, state_patch=state_patch,
                                    state_delete=state_delete, metadata_patch=metadata_patch, **fields)
            if found is None:
                raise SessionNotFoundError(f"no session {session_id!r} in {self.path}")
            session = self._load(Session, copy.deepcopy(apply_update(*found)), session_id)
            change = Update(redact_data(found[1]))  # the change, not the whole session; as to_dict, no secret
            self._store.commit([(self._sessions, session_id, change)])
        return session

    def delete_session(self, session_id: str) -> bool:
        with self._store.transaction():
            existed = self._store.get(self._sessions, session_id) is not None
            ops: list[Op] = [(RUNS, run_id, None) for run_id in self._store.group(RUNS, session_id)]
            if existed:  # last, so an interrupted delete leaves the session listed and deletable again
                ops.append((self._sessions, session_id, None))
            self._store.commit(ops)
        return existed

    # -- runs -----------------------------------------------------------------------------------
    def upsert_run(self, run: RunOutput, *, durable: bool = True) -> None:
        with self._store.transaction():  # the run and its session's updated_at in one append
            ops: list[Op] = [(RUNS, run.run_id, run.to_dict(history_refs=True))]
            if self._store.has(self._sessions, run.session_id):  # a change of one field: the session is not rewritten
                ops.append((self._sessions, run.session_id, Update({"set": {"updated_at": now()}})))
            self._store.commit(ops, durable=durable)

    def upsert_run_if_session(self, run: RunOutput, *, durable: bool = True) -> bool:
        with self._store.transaction():  # under the file lock: a delete in another kernel is before or after
            if not self._store.has(self._sessions, run.session_id):  # without parsing it
                return False
            self.upsert_run(run, durable=durable)
            return True

    def claim_run(self, run: RunOutput) -> bool:
        with self._store.transaction():  # the status read and the write under one hold of the file lock
            stored = self._store.load(RUNS, run.run_id)
            if stored is None or stored.get("status") != RunStatus.paused.value:
                return False
            return self.upsert_run_if_session(run)

    def get_run(self, run_id: str) -> RunOutput | None:
        with self._store.reading():
            data = self._store.load(RUNS, run_id)
            return self._runs([(run_id, data)])[0] if data is not None else None

    def list_runs(self, session_id: str, *, last: int | None = None, resolve_history: bool = True
                  ) -> list[RunOutput]:
        with self._store.reading():  # the runs and the ones they refer to, from one state of the file
            records = [(i, self._store.load(RUNS, i)) for i in self._store.group(RUNS, session_id, last=last)]
            return self._runs([(i, r) for i, r in records if r is not None], resolve_history)

    def _runs(self, records: list[tuple[str, dict[str, Any]]], resolve_history: bool = True) -> list[RunOutput]:
        def fetch(run_ids: set[str]) -> dict[str, dict[str, Any]]:
            found = ((i, self._store.load(RUNS, i)) for i in run_ids)
            return {i: data for i, data in found if data is not None}

        try:
            return runs_from_records([r for _, r in records], fetch, [i for i, _ in records],
                                     resolve_history=resolve_history)
        except ValueError as exc:
            raise StorageError(f"{self.path}: {exc}") from exc

    def session_totals(self, session_id: str) -> tuple[int, Metrics]:
        """Counted through the session index from each run's memo (status, metrics): no run objects, and each
        stored run is read from the file once, not on every session list."""
        with self._store.reading():
            rows = [self._store.memo(RUNS, i, _totals_row) for i in self._store.group(RUNS, session_id)]
        top = [row for row in rows if row is not None and row[0]]  # nested runs are counted in their parent
        return len(top), Metrics.total([metrics for _, metrics in top if metrics is not None])

    # -- notebook settings ----------------------------------------------------------------------
    def get_meta(self, key: str, default: Any = None) -> Any:
        data = self._store.load(META, key)
        return data["value"] if data is not None else default

    def set_meta(self, key: str, value: Any) -> None:
        self._store.commit([(META, key, {"value": value})])

    # -- file -----------------------------------------------------------------------------------
    def compact(self) -> None:
        """Rewrite the file with only live documents now, instead of waiting for the automatic threshold."""
        self._store.compact()

    def close(self) -> None:
        self.tinydb.close()

    def _load(self, cls: type[_Record], data: dict[str, Any], doc_id: Any) -> _Record:
        """Build a record from a private copy of its document (``load`` parses one afresh)."""
        try:
            return cls.from_dict(data)
        except (ValueError, TypeError) as exc:
            raise StorageError(f"{self.path}: {cls.__name__} {doc_id!r} cannot be read: {exc}") from exc


def _totals_row(run: dict[str, Any]) -> tuple[bool, Metrics | None]:
    """What a session's totals need of one run: top-level?, and its metrics when completed (built once here, not
    on every count: ``Metrics.total`` only reads them)."""
    done = run.get("status") == RunStatus.completed
    return not run.get("parent_run_id"), Metrics.from_dict(run.get("metrics")) if done else None
