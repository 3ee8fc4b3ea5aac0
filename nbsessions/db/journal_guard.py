"""What keeps a refused open or a failed append from leaving anything behind: no lock file beside a path that is
not a database, no torn line after a full disk."""

from __future__ import annotations

import contextlib
import errno
import os

from nbsessions.db.journal_format import parse_header, write_all


def refuse_before_locking(path: str) -> None:
    """A folder, or a file whose complete first line is not our header, is refused before the lock file beside
    it is made: a refused path leaves nothing behind. (A first line still being written is left to the locked
    read.)"""
    if os.path.isdir(path):
        raise IsADirectoryError(errno.EISDIR, "is a directory")
    try:
        with open(path, "rb") as f:
            first = f.readline(1 << 16)
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return
    if first.endswith(b"\n"):
        parse_header(path, first[:-1])


def append_whole(fd: int, payload: bytes, at: int, durable: bool) -> None:
    """Write ``payload`` at the end (``at``), fsync'd when ``durable``; a failure (a full disk) cuts back what
    part of it was written, so no torn line is left behind."""
    try:
        write_all(fd, payload)
        if durable:
            os.fsync(fd)
    except OSError:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, at)
        raise
