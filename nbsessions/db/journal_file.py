"""The journal file as one process follows it: which file is open, how far its lines have been read, and appends.

``JournalStorage`` holds the locks and the in-memory index; this holds the position in the file. Under the file
lock, ``sync`` reopens the file when a compaction elsewhere replaced it, then consumes every complete line other
processes appended, handing each record to the storage. Bytes after the last newline are a line still being
written or a torn one: skipped with a warning, and cut off by the next ``append``.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable
from typing import Any

from nbsessions.db.journal_format import BadLine, LazyDoc, OpenFile, parse_header, parse_record
from nbsessions.db.journal_guard import append_whole
from nbsessions.db.journal_index import Doc
from nbsessions.records.errors import CorruptDatabaseError, StorageError, StorageWarning

_CHUNK = 1 << 20


class JournalFile:
    """The read and write position in one journal file.

    ``apply(table, doc_id, doc)`` receives each record read; ``restart()`` is called when the file was replaced
    and is read again from its first line (the storage drops its index then).
    """

    def __init__(self, path: str, read_only: bool, apply: Callable[[str, str, Doc | None], None],
                 restart: Callable[[], None]) -> None:
        self.path, self.read_only = path, read_only
        self._apply, self._restart = apply, restart
        self.file: OpenFile | None = None
        self._start()

    def _start(self) -> None:
        self.nrecords = 0
        self.header: dict[str, Any] | None = None
        self.offset = 0  # end of the last good line
        self.seen_size = 0  # file size at the last sync; more than offset while a torn tail is pending
        self.lineno = 0  # lines consumed, for error messages
        self.ident: tuple[int, int] | None = None
        self._warned_torn_at: int | None = None

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
        self.file = None

    def stat(self) -> os.stat_result:
        try:
            return os.stat(self.path)
        except FileNotFoundError:
            raise StorageError(f"{self.path} was removed while open; close this TinyDb and open it again") from None

    def behind(self, st: os.stat_result) -> bool:
        """True when the file (as ``st`` shows it) holds what was not read yet, or is another file now."""
        return (st.st_ino, st.st_dev) != self.ident or st.st_size != self.seen_size or self.seen_size != self.offset

    def sync(self) -> None:
        """Under the file lock: reopen if the file was replaced, then consume every complete new line."""
        st = self.stat()
        if (st.st_ino, st.st_dev) != self.ident:
            self._reopen()
        elif st.st_size < self.offset:
            raise StorageError(f"{self.path} shrank from {self.offset} to {st.st_size} bytes behind our back; "
                               "it was edited or restored while open. Close this TinyDb and open it again.")
        if st.st_size != self.seen_size or self.offset != self.seen_size:
            self._tail()

    def _reopen(self) -> None:
        self.file = None  # closed once no document found in it is referenced any more
        self._start()
        self._restart()
        fd = os.open(self.path, os.O_RDONLY if self.read_only else os.O_RDWR | os.O_APPEND)
        st = os.fstat(fd)
        self.file, self.ident = OpenFile(fd), (st.st_ino, st.st_dev)

    def _tail(self) -> None:
        """Consume the complete lines after ``offset``, streamed: a large file is never held in memory whole."""
        assert self.file is not None and self.file.fd is not None
        with os.fdopen(os.dup(self.file.fd), "rb", buffering=_CHUNK) as f:  # the same file, even if since replaced
            f.seek(self.offset)
            lines = iter(f)
            held = next(lines, b"")
            for raw in lines:
                self._consume(held[:-1])
                held = raw
            self.seen_size = f.tell()
        if held.endswith(b"\n"):
            self._consume(held[:-1])
        elif held:  # bytes after the last newline: a line still being written, or a torn one
            if self.header is None:
                parse_header(self.path, held)  # names the problem when it is not a header at all
                raise StorageError(f"{self.path} has no complete header line; it is not an nbsessions database "
                                   "(or its creation was interrupted). Move it away and try again.")
            self._warn_torn(held)

    def _consume(self, raw: bytes) -> None:
        """One complete line. A bad one is damage wherever it is: an interrupted append leaves a line without
        its newline (``_tail`` skips that one); a bit flip or an edit leaves a whole line that fails its check."""
        lineno = self.lineno + 1
        try:
            if self.header is None:
                self.header = parse_header(self.path, raw)
            else:
                name, doc_id, doc = parse_record(raw)
                self._apply(name, doc_id, doc.placed(self.offset, self.file) if isinstance(doc, LazyDoc) else doc)
                self.nrecords += 1
        except BadLine as exc:  # a complete line (its newline was written after it) is damage, never torn
            raise CorruptDatabaseError(
                f"{self.path}: line {lineno} is damaged ({exc}); the file was left untouched. "
                f"Restore it from a backup, or remove line {lineno} by hand to keep the rest."
            ) from None
        self.offset += len(raw) + 1
        self.lineno = lineno

    def _warn_torn(self, raw: bytes) -> None:  # once per torn tail, not on every read
        if self._warned_torn_at != self.offset:
            self._warned_torn_at = self.offset
            warnings.warn(f"{self.path}: skipped an incomplete last line ({len(raw)} bytes, {raw[:60]!r}...) "
                          f"left by a write that was interrupted; the next write removes it.",
                          StorageWarning, stacklevel=5)

    def append(self, payload: bytes, *, durable: bool = True) -> int:
        """Write at the end of the file; returns where the payload starts."""
        fd = self.file.fd if self.file is not None else None
        assert fd is not None
        if self.read_only:
            raise StorageError(f"{self.path} was opened read-only; nothing was written")
        if self.seen_size > self.offset:  # a torn tail we warned about: cut it so the new record starts clean
            os.ftruncate(fd, self.offset)
        at = self.offset
        try:
            append_whole(fd, payload, at, durable)
        except OSError as exc:
            self.seen_size = -1  # force a resync
            raise StorageError(f"could not write to {self.path}: {exc.strerror or exc}; nothing was written") from exc
        self.offset += len(payload)
        self.seen_size = self.offset
        return at

    def replaced(self, new: OpenFile, size: int, header: bytes, ndocs: int) -> None:
        """A compaction wrote ``new`` (``ndocs`` records after ``header``) in place of the file: follow it."""
        self.file = new  # the old file closes when no snapshot holds a document found in it
        assert new.fd is not None
        st = os.fstat(new.fd)
        self.ident = (st.st_ino, st.st_dev)
        self.offset = self.seen_size = size
        self.header = json.loads(header)
        self.nrecords = ndocs
        self.lineno = 1 + ndocs

    def body(self, lazy: LazyDoc) -> bytes:
        """A stored body, read from the file at its offset (the open descriptor: a replaced file stays readable)."""
        if lazy.src is None or lazy.src.fd is None:
            raise StorageError(f"{self.path} is closed; open a new TinyDb to use it again")
        body = os.pread(lazy.src.fd, lazy.length, lazy.offset)
        if len(body) != lazy.length:
            raise StorageError(f"{self.path} is shorter than when it was read; close this TinyDb and open it again")
        return body
