"""What keeps a refused open or a failed append from leaving anything behind: no lock file beside a path that is
not a database, no torn line after a full disk."""

from __future__ import annotations

import contextlib
import errno
import os
import stat

from nbsessions.db.journal_format import parse_header, write_all
from nbsessions.errors import StorageError

_KINDS = {stat.S_IFIFO: "a named pipe", stat.S_IFSOCK: "a socket", stat.S_IFCHR: "a character device",
          stat.S_IFBLK: "a block device"}


def not_a_file(path: str, mode: int) -> str:
    """What ``path`` is instead of a database file (a named pipe would make a reader wait forever)."""
    return f"{path} is {_KINDS.get(stat.S_IFMT(mode), 'a special file')}, not a database file"


def refuse_before_locking(path: str) -> None:
    """A folder, or a file whose complete first line is not our header, is refused before the lock file beside
    it is made: a refused path leaves nothing behind. (A first line still being written is left to the locked
    read.)"""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return  # it will be created
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, "is a directory")
    if not stat.S_ISREG(mode):
        raise StorageError(not_a_file(path, mode))
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
