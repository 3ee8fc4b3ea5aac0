"""A TinyDB ``Storage`` that appends instead of rewriting, so a write costs the size of the change.

The file is JSON lines (``journal_format``): a header naming the format version, then one record per changed
document. Opening replays the records into memory, checking each line's checksum and leaving documents unparsed
until they are read. Each commit appends its records under ``<file>.lock`` and fsyncs
before returning. Before every read or write the storage tails what other processes appended (and re-reads the
file from scratch when a compaction elsewhere replaced it), so two kernels on one file lose nothing. When most
lines are superseded, the live documents are rewritten into a fresh file that atomically replaces the old one.

A torn last line (a crash mid-append) is skipped with a warning and cut off, under the lock, before the next
append; any other bad line stops with ``CorruptDatabaseError`` and the file is never written to.
"""

from __future__ import annotations

import contextlib
import copy
import errno
import json
import os
import stat
import threading
import time
import warnings
from collections.abc import Iterable, Iterator, Mapping
from itertools import islice
from typing import Any

from tinydb.storages import Storage

from nbsessions.db.journal_format import (
    FORMAT_VERSION,
    BadLine,
    LazyDoc,
    dumps,
    fsync_dir,
    header_line,
    parse_header,
    parse_record,
    record_line,
    write_all,
)
from nbsessions.db.lockfile import FileLock, LockTimeout
from nbsessions.errors import CorruptDatabaseError, StorageError


def open_error(path: str, exc: OSError, read_only: bool = False) -> str:
    """Why a database file cannot be opened, in one line that names it and says what to do."""
    if isinstance(exc, IsADirectoryError) or os.path.isdir(path):
        return f"{path} is a directory, not a database file: give the path of a file"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        where = path if os.path.exists(path) else os.path.dirname(path)
        verb = "read" if read_only else "write to"
        return f"cannot {verb} {path}: {where} is read-only ({exc.strerror}); pick a writable path or fix it"
    if exc.errno == errno.ENOENT and read_only:
        return f"{path}: no such database file"
    if exc.errno == errno.ENOSPC:
        return f"cannot create {path}: no space left on the device"
    return f"cannot open {path}: {exc.strerror or exc}"


Op = tuple[str, str, "dict[str, Any] | None"]
"""One change: (table, doc_id, new document or None to delete)."""

_CHUNK = 1 << 20


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
        # The real file, not a symlink to it: the lock and compaction's os.replace must name the file itself, or
        # a process opening the link and one opening the target would lock apart and compaction would replace
        # the link with a copy, splitting the database in two.
        self.path = os.path.realpath(os.fspath(path))
        self.compact_min_lines = compact_min_lines
        self.read_only = read_only
        self._group_by = dict(group_by or {})
        self._rlock = threading.RLock()
        self._lock_depth = 0
        self._fd: int | None = None
        self._closed = False
        self.generation = 0
        """Incremented on every change seen, so caches (TinyDB's query cache) know when to drop."""
        # A short poll: the lock is held for one append, and a waiting kernel should not idle for 50 ms.
        self._flock = FileLock(self.path + ".lock", timeout=lock_timeout, shared_ok=read_only)
        self._reset()
        try:
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
        if os.path.isdir(self.path):
            raise IsADirectoryError(errno.EISDIR, "is a directory")
        if not self.read_only:
            self._create_if_missing()
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
        return f"JournalStorage({self.path!r}, docs={self._ndocs}, lines={self._nrecords})"

    # -- TinyDB's Storage API -------------------------------------------------------------------
    def read(self) -> dict[str, dict[str, Any]] | None:
        """The whole state as a deep copy, because stock TinyDB code mutates what it reads."""
        with self.reading():
            tables = {name: self._parsed(name) for name in list(self._tables)}
            return {name: copy.deepcopy(docs) for name, docs in tables.items() if docs} or None

    def write(self, data: dict[str, dict[str, Any]]) -> None:
        """Append only the documents that differ from the current state (stock TinyDB writes everything)."""
        with self.transaction():
            ops: list[Op] = []
            for name in list(self._tables):
                new = data.get(name, {})
                ops.extend((name, doc_id, None) for doc_id in self._tables[name] if str(doc_id) not in new)
            for name, docs in data.items():
                current = self._parsed(name)
                for doc_id, doc in docs.items():
                    key = str(doc_id)
                    if current.get(key) != doc:
                        ops.append((name, key, dict(doc)))
            self.commit(ops)

    def close(self) -> None:
        with self._rlock:
            if self._fd is not None:
                os.close(self._fd)
            self._fd = None
            self._flock.close()
            self._closed = True

    # -- the narrow API -------------------------------------------------------------------------
    @contextlib.contextmanager
    def reading(self) -> Iterator[None]:
        """Hold the thread lock with other processes' appends applied: reads inside see one state."""
        with self._rlock:
            self._refresh()
            yield

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Hold the file lock with the state up to date, so a read-modify-``commit`` is atomic across processes."""
        with self._rlock, self._locked():
            yield

    def table(self, name: str) -> dict[str, dict[str, Any]]:
        """The live documents of one table, in insertion order. Do not mutate; ``commit`` changes instead."""
        with self.reading():
            return self._parsed(name)

    def get(self, name: str, doc_id: str) -> dict[str, Any] | None:
        """One live document (do not mutate it)."""
        with self.reading():
            table = self._tables.get(name, {})
            doc = table.get(doc_id)
            if isinstance(doc, LazyDoc):
                doc = table[doc_id] = self._parse(name, doc_id, doc)
            return doc

    def group(self, name: str, key: str, *, last: int | None = None) -> list[str]:
        """Ids of a table's documents whose ``group_by`` field equals ``key``, oldest first; O(last)."""
        with self.reading():
            ids = self._groups.get(name, {}).get(key)
            if not ids:
                return []
            if last is None:
                return list(ids)
            newest = list(islice(reversed(ids), max(last, 0)))
            newest.reverse()
            return newest

    def load(self, name: str, doc_id: str) -> dict[str, Any] | None:
        """A private copy of one document, parsed from its stored bytes (cheaper than a deep copy)."""
        with self.reading():
            doc = self._tables.get(name, {}).get(doc_id)
            return None if doc is None else self.private_copy(name, doc_id, doc)

    def raw_table(self, name: str) -> Mapping[str, dict[str, Any] | LazyDoc]:
        """One table's stored documents, some not parsed yet; hold ``reading()`` while copying it."""
        return self._tables.get(name, {})

    def private_copy(self, name: str, doc_id: str, doc: dict[str, Any] | LazyDoc) -> dict[str, Any]:
        """A copy of a stored document (as ``raw_table`` gives it) that the caller may change."""
        return self._parse(name, doc_id, doc) if isinstance(doc, LazyDoc) else copy.deepcopy(doc)

    def commit(self, ops: Iterable[Op], *, durable: bool = True) -> None:
        """Append the changes, fsync, then apply them in memory (as the bytes written: callers keep their dicts).

        ``durable=False`` skips the fsync: the bytes survive a killed process (they are in the OS cache) but not
        a power cut — right for records that a later durable write supersedes, such as a run being started.
        """
        encoded = [(name, doc_id, *self._encode(name, doc_id, doc)) for name, doc_id, doc in ops]
        if not encoded:
            return
        payload = b"".join(line for _, _, line, _ in encoded)
        with self.transaction():
            if (self._header or {}).get("nbsessions", FORMAT_VERSION) < FORMAT_VERSION:
                self._compact_locked()  # MIGRATIONS: an older file gets the current header before new records
            self._append(payload, durable=durable)
            for name, doc_id, _, doc in encoded:
                self._apply(name, doc_id, doc)
            self._nrecords += len(encoded)
            self._lineno += len(encoded)
            if self._nrecords > max(self.compact_min_lines, 2 * self._ndocs):
                try:
                    self._compact_locked()
                except OSError as exc:  # the commit is durable already; compaction can wait for the next one
                    warnings.warn(f"{self.path}: could not compact ({exc}); will try again later",
                                  RuntimeWarning, stacklevel=3)

    def compact(self) -> None:
        """Rewrite the live documents into a new file that atomically replaces the journal."""
        with self.transaction():
            self._compact_locked()

    # -- state ----------------------------------------------------------------------------------
    def _reset(self) -> None:
        self._tables: dict[str, dict[str, dict[str, Any] | LazyDoc]] = {}
        self._groups: dict[str, dict[str, dict[str, None]]] = {}
        self._ndocs = 0
        self._nrecords = 0
        self._header: dict[str, Any] | None = None
        self._offset = 0  # end of the last good line
        self._seen_size = 0  # file size at the last sync; more than _offset while a torn tail is pending
        self._lineno = 0  # lines consumed, for error messages
        self._ident: tuple[int, int] | None = None
        self._warned_torn_at: int | None = None
        self.generation += 1

    def _parsed(self, name: str) -> dict[str, dict[str, Any]]:
        table = self._tables.get(name, {})
        for doc_id, doc in list(table.items()):
            if isinstance(doc, LazyDoc):
                table[doc_id] = self._parse(name, doc_id, doc)
        return table  # type: ignore[return-value]

    def _parse(self, name: str, doc_id: str, lazy: LazyDoc) -> dict[str, Any]:
        try:
            doc = json.loads(lazy.body)
        except ValueError:
            doc = None
        if not isinstance(doc, dict):  # its checksum matched, so only a writer bug gets here
            raise CorruptDatabaseError(f"{self.path}: the stored {name} document {doc_id!r} is not a JSON object")
        return doc

    def _group_key(self, name: str, doc_id: str, doc: dict[str, Any] | LazyDoc | None) -> Any:
        if isinstance(doc, LazyDoc):
            if doc.group is not None:
                return doc.group
            doc = self._parse(name, doc_id, doc)  # a record written without its group: read it now
        return doc.get(self._group_by[name]) if doc is not None else None

    def _apply(self, name: str, doc_id: str, doc: dict[str, Any] | LazyDoc | None) -> None:
        table = self._tables.setdefault(name, {})
        old = table.pop(doc_id, None) if doc is None else table.get(doc_id)
        if doc is not None:
            table[doc_id] = doc
            self._ndocs += old is None
        elif old is not None:
            self._ndocs -= 1
        if name in self._group_by:
            old_key, new_key = self._group_key(name, doc_id, old), self._group_key(name, doc_id, doc)
            if old is not None and (doc is None or old_key != new_key):
                self._ungroup(name, old_key, doc_id)
            if doc is not None and (old is None or old_key != new_key) and isinstance(new_key, str):
                self._groups.setdefault(name, {}).setdefault(new_key, {})[doc_id] = None
        self.generation += 1

    def _ungroup(self, name: str, key: Any, doc_id: str) -> None:
        groups = self._groups.get(name, {})
        ids = groups.get(key) if isinstance(key, str) else None
        if ids is not None:
            ids.pop(doc_id, None)
            if not ids:
                del groups[key]

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
            if self._fd is not None:
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

    def _create_if_missing(self) -> None:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return
        try:
            write_all(fd, header_line({"created_at": time.time()}))
            os.fsync(fd)
        finally:
            os.close(fd)
        fsync_dir(self.path)

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
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._reset()
        fd = os.open(self.path, os.O_RDONLY if self.read_only else os.O_RDWR | os.O_APPEND)
        st = os.fstat(fd)
        self._fd, self._ident = fd, (st.st_ino, st.st_dev)

    def _read_from(self, offset: int) -> bytes:
        assert self._fd is not None
        os.lseek(self._fd, offset, os.SEEK_SET)
        parts = []
        while chunk := os.read(self._fd, _CHUNK):
            parts.append(chunk)
        return b"".join(parts)

    def _tail(self) -> None:
        data = self._read_from(self._offset)
        self._seen_size = self._offset + len(data)
        lines = data.split(b"\n")
        rest = lines.pop()  # bytes after the last newline: a line still being written, or a torn one
        for i, raw in enumerate(lines):
            lineno = self._lineno + 1
            try:
                if self._header is None:
                    self._header = parse_header(self.path, raw)
                else:
                    self._apply(*parse_record(raw))
                    self._nrecords += 1
            except BadLine as exc:
                if i == len(lines) - 1 and not rest and self._header is not None:
                    self._warn_torn(raw)
                    return
                raise CorruptDatabaseError(
                    f"{self.path}: line {lineno} is damaged ({exc}); the file was left untouched. "
                    f"Restore it from a backup, or remove line {lineno} by hand to keep the rest."
                ) from None
            self._offset += len(raw) + 1
            self._lineno = lineno
        if rest:
            if self._header is None:
                parse_header(self.path, rest)  # names the problem when it is not a header at all
                raise StorageError(f"{self.path} has no complete header line; it is not an nbsessions database "
                                   "(or its creation was interrupted). Move it away and try again.")
            self._warn_torn(rest)

    def _warn_torn(self, raw: bytes) -> None:
        if self._warned_torn_at != self._offset:
            self._warned_torn_at = self._offset
            warnings.warn(f"{self.path}: skipped an incomplete last line ({len(raw)} bytes, {raw[:60]!r}...) "
                          f"left by a write that was interrupted; the next write removes it.",
                          RuntimeWarning, stacklevel=5)

    def _append(self, payload: bytes, *, durable: bool = True) -> None:
        assert self._fd is not None
        if self.read_only:
            raise StorageError(f"{self.path} was opened read-only; nothing was written")
        if self._seen_size > self._offset:  # a torn tail we warned about: cut it so the new record starts clean
            os.ftruncate(self._fd, self._offset)
        try:
            write_all(self._fd, payload)
            if durable:
                os.fsync(self._fd)
        except OSError as exc:
            self._seen_size = -1  # force a resync: the file may now hold a torn line
            raise StorageError(f"could not write to {self.path}: {exc}") from exc
        self._offset += len(payload)
        self._seen_size = self._offset

    def _encode(self, name: str, doc_id: str, doc: dict[str, Any] | LazyDoc | None) -> tuple[bytes, LazyDoc | None]:
        if not isinstance(doc_id, str):
            raise TypeError(f"document ids are strings, not {type(doc_id).__name__} ({doc_id!r})")
        if doc is None:
            return record_line(name, doc_id, None, None), None
        if not isinstance(doc, LazyDoc):
            group = doc.get(self._group_by[name]) if name in self._group_by else None
            try:
                doc = LazyDoc(dumps(doc), group if isinstance(group, str) else None)
            except (TypeError, ValueError, UnicodeEncodeError) as exc:
                raise StorageError(f"cannot store {name}/{doc_id} in {self.path}: {exc}") from exc
        return record_line(name, doc_id, doc.body, doc.group), doc

    def _compact_locked(self) -> None:
        assert self._fd is not None
        tmp = self.path + ".compact.tmp"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)  # left by a process killed while compacting; we hold the lock, so nobody owns it
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.fchmod(fd, stat.S_IMODE(os.fstat(self._fd).st_mode))
            header = header_line({**(self._header or {}), "compacted_at": time.time()})
            chunk, size = [header], 0
            for name, docs in self._tables.items():
                for doc_id, doc in docs.items():
                    chunk.append(self._encode(name, doc_id, doc)[0])
                    if len(chunk) >= 1000:
                        size += write_all(fd, b"".join(chunk))
                        chunk.clear()
            size += write_all(fd, b"".join(chunk))
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            os.unlink(tmp)
            raise
        os.replace(tmp, self.path)
        fsync_dir(self.path)
        os.close(self._fd)
        self._fd = fd_new = os.open(self.path, os.O_RDWR | os.O_APPEND)
        os.close(fd)
        st = os.fstat(fd_new)
        self._ident = (st.st_ino, st.st_dev)
        self._offset = self._seen_size = size
        self._header = json.loads(header)
        self._nrecords = self._ndocs
        self._lineno = 1 + self._ndocs
