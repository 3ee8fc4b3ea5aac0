"""A TinyDB ``Storage`` that appends instead of rewriting, so a write costs the size of the change.

The file is JSON lines (``journal_format``): a header naming the format version, then one record per changed
document (or per change of some fields of one). Opening replays the records, checking each line's checksum and
keeping in memory only where each live document's body is (``journal_index``): bodies are read when used.
Each commit appends its records under ``.<file>.lock`` and fsyncs before returning. Before every read or write
the storage tails what other processes appended (``journal_file``; it re-reads the file from scratch when a
compaction elsewhere replaced it), so two kernels on one file lose nothing. When most lines are superseded, the
live documents are rewritten into a fresh file that atomically replaces the old one.

A torn last line (bytes after the last newline: a crash mid-append) is skipped with a warning and cut off before
the next append; a bad complete line is damage: ``CorruptDatabaseError``, and the file is never written to.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import stat
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

from tinydb.storages import Storage

from nbsessions.db.journal_file import JournalFile
from nbsessions.db.journal_format import (
    LazyDoc,
    Update,
    create_journal,
    encode_record,
    header_line,
    open_error,
    parse_body,
    write_snapshot,
    written_update,
)
from nbsessions.db.journal_guard import refuse_before_locking
from nbsessions.db.journal_index import Doc, JournalIndex, Pending
from nbsessions.db.journal_migrations import migrate
from nbsessions.db.lockfile import FileLock, LockTimeout, lock_path
from nbsessions.records.errors import StorageError, StorageWarning

Op = tuple[str, str, "dict[str, Any] | Update | None"]
"""One change: (table, doc_id, new document, an ``Update`` of some of its fields, or None to delete)."""

T = TypeVar("T")


class JournalStorage(Storage):
    """TinyDB storage over an append-only journal; see the module docstring for the file format.

    Besides TinyDB's whole-state ``read``/``write`` it offers a narrow API (``table``, ``get``, ``group``,
    ``commit``, ``transaction``) that callers use to read and change single documents in O(change).
    ``group_by={"runs": "session_id"}`` keeps, per table, an insertion-ordered index of document ids by the
    value of one field, so the newest N documents of a group are found without scanning the table.
    """

    def __init__(self, path: str | os.PathLike[str], *, group_by: Mapping[str, str] | None = None,
                 compact_min_lines: int = 1000, lock_timeout: float = 30.0, create_dirs: bool = True,
                 read_only: bool = False) -> None:
        # The real file, not a symlink: the lock and compaction's os.replace must name the file itself, or a process
        # opening the link and one opening the target would lock apart, and compaction would split the database.
        self.path = os.path.realpath(os.fspath(path))
        self.compact_min_lines = compact_min_lines
        self.read_only = read_only
        self._group_by = dict(group_by or {})
        self._rlock = threading.RLock()
        self._lock_depth = 0
        self._reading_depth = 0  # reads nested in ``reading()`` (under ``_rlock``)
        self._closed = False
        self.generation = 0  # +1 on every change seen, so caches (TinyDB's query cache) know when to drop
        self._flock = FileLock(lock_path(self.path), timeout=lock_timeout, shared_ok=read_only)
        self._jf = JournalFile(self.path, read_only, self._apply, self._reset)  # where reading the file got to
        self._reset()
        try:
            refuse_before_locking(self.path)
            if create_dirs and not read_only:
                os.makedirs(os.path.dirname(self.path), exist_ok=True)
            with self._rlock, self._locked():
                self._open_locked()
        except OSError as exc:
            self.close()
            raise StorageError(open_error(self.path, exc, read_only)) from None
        except BaseException:
            self.close()
            raise

    def _open_locked(self) -> None:
        if not self.read_only:
            create_journal(self.path)
            with contextlib.suppress(FileNotFoundError):  # a compaction killed midway; we hold the lock
                os.unlink(self.path + ".compact.tmp")
        self._jf.sync()
        if self._jf.header is None:  # an empty file, e.g. made by `touch`: give it a header
            if self.read_only:
                raise StorageError(f"{self.path} is empty: not an nbsessions database")
            line = header_line({"created_at": time.time()})
            self._jf.append(line)
            self._jf.header, self._jf.lineno = json.loads(line), 1

    def __repr__(self) -> str:
        return f"JournalStorage({self.path!r}, docs={self._index.ndocs}, lines={self._jf.nrecords})"

    # -- TinyDB's Storage API -------------------------------------------------------------------
    def read(self) -> dict[str, dict[str, Any]] | None:
        """The whole state as a deep copy, because stock TinyDB code mutates what it reads."""
        with self.reading():
            return {name: copy.deepcopy(docs) for name in list(self._index.tables)
                    if (docs := self._index.parsed(name))} or None

    def write(self, data: dict[str, dict[str, Any]]) -> None:
        """Append only the documents that differ from the current state (stock TinyDB writes everything)."""
        with self.transaction():
            self.commit(self._index.changes_to(data))

    def close(self) -> None:
        with self._rlock:
            self._jf.close()
            self._flock.close()
            self._closed = True

    # -- the narrow API -------------------------------------------------------------------------
    @contextlib.contextmanager
    def reading(self) -> Iterator[None]:
        """Hold the thread lock with other processes' appends applied: reads inside see one state. Nested in a
        read or under the file lock, the state is already current: no ``stat`` again (a run's reads nest)."""
        with self._rlock:
            if not self._reading_depth and not self._lock_depth:
                self._refresh()
            self._reading_depth += 1
            try:
                yield
            finally:
                self._reading_depth -= 1

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Hold the file lock with the state up to date, so a read-modify-``commit`` is atomic across processes."""
        with self._rlock, self._locked():
            yield

    def table(self, name: str) -> dict[str, dict[str, Any]]:
        """The live documents of one table, in insertion order. Do not mutate; ``commit`` changes instead.

        Grouped tables (runs) are read from the file on each call: use ``group`` and ``load`` for those.
        """
        with self.reading():
            return self._index.parsed(name)

    def get(self, name: str, doc_id: str) -> dict[str, Any] | None:
        """One live document (do not mutate it)."""
        with self.reading():
            return self._index.get(name, doc_id)

    def has(self, name: str, doc_id: str) -> bool:  # without reading the document
        with self.reading():
            return doc_id in self._index.tables.get(name, {})

    def group(self, name: str, key: str, *, last: int | None = None) -> list[str]:
        """Ids of a table's documents whose ``group_by`` field equals ``key``, oldest first; O(last)."""
        with self.reading():
            return self._index.group(name, key, last)

    def load(self, name: str, doc_id: str) -> dict[str, Any] | None:
        """A private copy of one document, parsed from its stored bytes (cheaper than a deep copy)."""
        with self.reading():
            return self._index.load(name, doc_id)

    def memo(self, name: str, doc_id: str, derive: Callable[[dict[str, Any]], T]) -> T | None:
        """``derive(document)``, computed once per stored version and kept beside it (None: no such document):
        small summaries read often (a run's status and metrics) without keeping or re-reading whole documents."""
        with self.reading():
            return self._index.memo(name, doc_id, derive)

    def raw_table(self, name: str) -> Mapping[str, dict[str, Any] | LazyDoc]:
        """One table's stored documents, some not parsed yet; hold ``reading()`` while copying it."""
        return self._index.tables.get(name, {})

    def private_copy(self, name: str, doc_id: str, doc: dict[str, Any] | LazyDoc) -> dict[str, Any]:
        """A copy of a stored document (as ``raw_table`` gives it) that the caller may change.

        A ``LazyDoc`` reads from the file it was found in, so a snapshot stays readable across a compaction.
        """
        with self._rlock:
            return copy.deepcopy(doc) if isinstance(doc, dict) else self._index.read(name, doc_id, doc)

    def commit(self, ops: Iterable[Op], *, durable: bool = True) -> None:
        """Append the changes, fsync, then apply them in memory (as the bytes written: callers keep their dicts).

        ``durable=False`` skips the fsync: the bytes survive a killed process (they are in the OS cache) but not
        a power cut — right for records that a later durable write supersedes, such as a run being started.
        """
        encoded = [(name, doc_id, *self._encode(name, doc_id, doc)) for name, doc_id, doc in ops]
        if not encoded:
            return
        updates = {i: written_update(encoded[i][2]) for i, (_, _, doc) in enumerate(ops) if isinstance(doc, Update)}
        payload = b"".join(line for _, _, line, _ in encoded)
        with self.transaction():
            if not self.read_only and migrate(self._jf.header, self._index.tables):  # an older file's format
                self._compact_locked()  # written under the current header before any new record
            at = self._jf.append(payload, durable=durable)
            for i, (name, doc_id, line, doc) in enumerate(encoded):
                placed = doc.placed(at, self._jf.file) if doc is not None else None
                self._apply(name, doc_id, updates.get(i) or placed)
                at += len(line)
            self._jf.nrecords += len(encoded)
            self._jf.lineno += len(encoded)
            if self._jf.nrecords > max(self.compact_min_lines, 2 * self._index.ndocs):
                try:
                    self._compact_locked()
                except (OSError, StorageError) as exc:  # the commit is durable; compaction can wait for the next
                    warnings.warn(f"{exc}; will try again later", StorageWarning, stacklevel=3)

    def compact(self) -> None:
        """Rewrite the live documents into a new file that atomically replaces the journal (or leaves it be)."""
        with self.transaction():
            self._compact_locked()

    # -- state ----------------------------------------------------------------------------------
    def _reset(self) -> None:
        """A new, empty index: on open, and when the file was replaced and is read again from its start."""
        self._index = JournalIndex(self._group_by, self._parse)
        self.generation += 1

    def _parse(self, name: str, doc_id: str, lazy: LazyDoc) -> dict[str, Any]:
        return parse_body(self.path, name, doc_id, self._jf.body(lazy))

    def _apply(self, name: str, doc_id: str, doc: Doc | None) -> None:
        self._index.apply(name, doc_id, doc)
        self.generation += 1

    # -- file -----------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        if self._closed:
            raise StorageError(f"{self.path} is closed; open a new TinyDb to use it again")
        if self._lock_depth:
            self._lock_depth += 1
            try:
                yield
            finally:
                self._lock_depth -= 1
            return
        try:
            self._flock.acquire()
        except LockTimeout:
            raise StorageError(f"{self.path} stayed locked by another process for {self._flock.timeout:g} s; "
                               "is a kernel stuck? Try again or restart it.") from None
        self._lock_depth = 1
        try:
            if self._jf.file is not None:
                self._jf.sync()
            yield
        finally:
            self._lock_depth = 0
            self._flock.release()

    def _refresh(self) -> None:
        """Apply other processes' appends; costs one ``stat`` when nothing changed."""
        if self._closed:
            raise StorageError(f"{self.path} is closed; open a new TinyDb to use it again")
        if self._jf.behind(self._jf.stat()):
            with self._locked():
                pass  # _locked syncs on entry

    def _encode(self, name: str, doc_id: str, doc: Doc | Update | None) -> tuple[bytes, LazyDoc | None]:
        if isinstance(doc, Pending):  # compaction: the document with its changes applied, stored whole
            doc = self._index.read(name, doc_id, doc)
        return encode_record(self.path, name, doc_id, doc, self._group_by.get(name), self._jf.body)

    def _compact_locked(self) -> None:
        """Rewrite the live documents into a new file that replaces the journal (``write_snapshot``)."""
        assert self._jf.file is not None and self._jf.file.fd is not None
        header = header_line({**(self._jf.header or {}), "compacted_at": time.time()})
        new, size, moved = write_snapshot(self.path, stat.S_IMODE(os.fstat(self._jf.file.fd).st_mode), header,
                                          self._index.tables, self._encode)
        for docs, doc_id, lazy in moved:  # only now: until the replace, the old offsets were the valid ones
            docs[doc_id] = lazy
        self._jf.replaced(new, size, header, self._index.ndocs)
