"""A TinyDB ``Storage`` that appends instead of rewriting, so a write costs the size of the change.

The file is JSON lines (``journal_format``): a header naming the format version, then one record per changed
document (or per change of some fields of one). Opening replays the records, checking each line's checksum and
keeping in memory only where each live document's body is (``journal_index``): bodies are read when used.
Each commit appends its records under ``.<file>.lock`` and fsyncs before returning. Before every read or write
the storage tails what other processes appended (and re-reads the file from scratch when a compaction elsewhere
replaced it), so two kernels on one file lose nothing. When most lines are superseded, the live documents are
rewritten into a fresh file that atomically replaces the old one.

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

from nbsessions.db.journal_format import (
    BadLine,
    LazyDoc,
    OpenFile,
    Update,
    create_journal,
    encode_record,
    header_line,
    open_error,
    parse_body,
    parse_header,
    parse_record,
    write_snapshot,
    written_update,
)
from nbsessions.db.journal_guard import append_whole, refuse_before_locking
from nbsessions.db.journal_index import Doc, JournalIndex, Pending
from nbsessions.db.journal_migrations import migrate
from nbsessions.db.lockfile import FileLock, LockTimeout, lock_path
from nbsessions.errors import CorruptDatabaseError, StorageError, StorageWarning

Op = tuple[str, str, "dict[str, Any] | Update | None"]
"""One change: (table, doc_id, new document, an ``Update`` of some of its fields, or None to delete)."""

_CHUNK = 1 << 20
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
        self._file: OpenFile | None = None
        self._closed = False
        self.generation = 0  # +1 on every change seen, so caches (TinyDB's query cache) know when to drop
        self._flock = FileLock(lock_path(self.path), timeout=lock_timeout, shared_ok=read_only)
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
        self._sync_locked()
        if self._header is None:  # an empty file, e.g. made by `touch`: give it a header
            if self.read_only:
                raise StorageError(f"{self.path} is empty: not an nbsessions database")
            line = header_line({"created_at": time.time()})
            self._append(line)
            self._header, self._lineno = json.loads(line), 1

    def __repr__(self) -> str:
        return f"JournalStorage({self.path!r}, docs={self._index.ndocs}, lines={self._nrecords})"

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
            if self._file is not None:
                self._file.close()
            self._file = None
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
            if not self.read_only and migrate(self._header, self._index.tables):  # an older file's format
                self._compact_locked()  # written under the current header before any new record
            at = self._append(payload, durable=durable)
            for i, (name, doc_id, line, doc) in enumerate(encoded):
                self._apply(name, doc_id, updates.get(i) or (doc.placed(at, self._file) if doc is not None else None))
                at += len(line)
            self._nrecords += len(encoded)
            self._lineno += len(encoded)
            if self._nrecords > max(self.compact_min_lines, 2 * self._index.ndocs):
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
        self._index = JournalIndex(self._group_by, self._parse)
        self._nrecords = 0
        self._header: dict[str, Any] | None = None
        self._offset = 0  # end of the last good line
        self._seen_size = 0  # file size at the last sync; more than _offset while a torn tail is pending
        self._lineno = 0  # lines consumed, for error messages
        self._ident: tuple[int, int] | None = None
        self._warned_torn_at: int | None = None
        self.generation += 1

    def _body(self, lazy: LazyDoc) -> bytes:
        """A stored body, read from the file at its offset (the open descriptor: a replaced file stays readable)."""
        if lazy.src is None or lazy.src.fd is None:
            raise StorageError(f"{self.path} is closed; open a new TinyDb to use it again")
        body = os.pread(lazy.src.fd, lazy.length, lazy.offset)
        if len(body) != lazy.length:
            raise StorageError(f"{self.path} is shorter than when it was read; close this TinyDb and open it again")
        return body

    def _parse(self, name: str, doc_id: str, lazy: LazyDoc) -> dict[str, Any]:
        return parse_body(self.path, name, doc_id, self._body(lazy))

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
            if self._file is not None:
                self._sync_locked()
            yield
        finally:
            self._lock_depth = 0
            self._flock.release()

    def _refresh(self) -> None:
        """Apply other processes' appends; costs one ``stat`` when nothing changed."""
        if self._closed:
            raise StorageError(f"{self.path} is closed; open a new TinyDb to use it again")
        st = self._stat()
        if (st.st_ino, st.st_dev) != self._ident or st.st_size != self._seen_size or self._seen_size != self._offset:
            with self._locked():
                pass  # _locked syncs on entry

    def _stat(self) -> os.stat_result:
        try:
            return os.stat(self.path)
        except FileNotFoundError:
            raise StorageError(f"{self.path} was removed while open; close this TinyDb and open it again") from None

    def _sync_locked(self) -> None:
        """Under the file lock: reopen if the file was replaced, then consume every complete new line."""
        st = self._stat()
        if (st.st_ino, st.st_dev) != self._ident:
            self._reopen()
        elif st.st_size < self._offset:
            raise StorageError(f"{self.path} shrank from {self._offset} to {st.st_size} bytes behind our back; "
                               "it was edited or restored while open. Close this TinyDb and open it again.")
        if st.st_size != self._seen_size or self._offset != self._seen_size:
            self._tail()

    def _reopen(self) -> None:
        self._file = None  # closed once no document found in it is referenced any more
        self._reset()
        fd = os.open(self.path, os.O_RDONLY if self.read_only else os.O_RDWR | os.O_APPEND)
        st = os.fstat(fd)
        self._file, self._ident = OpenFile(fd), (st.st_ino, st.st_dev)

    def _tail(self) -> None:
        """Consume the complete lines after ``_offset``, streamed: a large file is never held in memory whole."""
        assert self._file is not None and self._file.fd is not None
        with os.fdopen(os.dup(self._file.fd), "rb", buffering=_CHUNK) as f:  # the same file, even if since replaced
            f.seek(self._offset)
            lines = iter(f)
            held = next(lines, b"")
            for raw in lines:
                self._consume(held[:-1])
                held = raw
            self._seen_size = f.tell()
        if held.endswith(b"\n"):
            self._consume(held[:-1])
        elif held:  # bytes after the last newline: a line still being written, or a torn one
            if self._header is None:
                parse_header(self.path, held)  # names the problem when it is not a header at all
                raise StorageError(f"{self.path} has no complete header line; it is not an nbsessions database "
                                   "(or its creation was interrupted). Move it away and try again.")
            self._warn_torn(held)

    def _consume(self, raw: bytes) -> None:
        """One complete line. A bad one is damage wherever it is: an interrupted append leaves a line without
        its newline (``_tail`` skips that one); a bit flip or an edit leaves a whole line that fails its check."""
        lineno = self._lineno + 1
        try:
            if self._header is None:
                self._header = parse_header(self.path, raw)
            else:
                name, doc_id, doc = parse_record(raw)
                self._apply(name, doc_id, doc.placed(self._offset, self._file) if isinstance(doc, LazyDoc) else doc)
                self._nrecords += 1
        except BadLine as exc:  # a complete line (its newline was written after it) is damage, never torn
            raise CorruptDatabaseError(
                f"{self.path}: line {lineno} is damaged ({exc}); the file was left untouched. "
                f"Restore it from a backup, or remove line {lineno} by hand to keep the rest."
            ) from None
        self._offset += len(raw) + 1
        self._lineno = lineno

    def _warn_torn(self, raw: bytes) -> None:  # once per torn tail, not on every read
        if self._warned_torn_at != self._offset:
            self._warned_torn_at = self._offset
            warnings.warn(f"{self.path}: skipped an incomplete last line ({len(raw)} bytes, {raw[:60]!r}...) "
                          f"left by a write that was interrupted; the next write removes it.",
                          StorageWarning, stacklevel=5)

    def _append(self, payload: bytes, *, durable: bool = True) -> int:
        """Write at the end of the file; returns where the payload starts."""
        fd = self._file.fd if self._file is not None else None
        assert fd is not None
        if self.read_only:
            raise StorageError(f"{self.path} was opened read-only; nothing was written")
        if self._seen_size > self._offset:  # a torn tail we warned about: cut it so the new record starts clean
            os.ftruncate(fd, self._offset)
        at = self._offset
        try:
            append_whole(fd, payload, at, durable)
        except OSError as exc:
            self._seen_size = -1  # force a resync
            raise StorageError(f"could not write to {self.path}: {exc.strerror or exc}; nothing was written") from exc
        self._offset += len(payload)
        self._seen_size = self._offset
        return at

    def _encode(self, name: str, doc_id: str, doc: Doc | Update | None) -> tuple[bytes, LazyDoc | None]:
        if isinstance(doc, Pending):  # compaction: the document with its changes applied, stored whole
            doc = self._index.read(name, doc_id, doc)
        return encode_record(self.path, name, doc_id, doc, self._group_by.get(name), self._body)

    def _compact_locked(self) -> None:
        """Rewrite the live documents into a new file that replaces the journal (``write_snapshot``)."""
        assert self._file is not None and self._file.fd is not None
        header = header_line({**(self._header or {}), "compacted_at": time.time()})
        new, size, moved = write_snapshot(self.path, stat.S_IMODE(os.fstat(self._file.fd).st_mode), header,
                                          self._index.tables, self._encode)
        self._file = new  # the old file closes when no snapshot holds a document found in it
        for docs, doc_id, lazy in moved:  # only now: until the replace, the old offsets were the valid ones
            docs[doc_id] = lazy
        assert new.fd is not None
        st = os.fstat(new.fd)
        self._ident = (st.st_ino, st.st_dev)
        self._offset = self._seen_size = size
        self._header = json.loads(header)
        self._nrecords = self._index.ndocs
        self._lineno = 1 + self._index.ndocs
