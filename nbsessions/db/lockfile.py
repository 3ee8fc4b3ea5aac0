"""The inter-process lock around each journal append.

On POSIX it is ``fcntl.flock`` on a descriptor kept open: about 1 µs per acquisition. ``filelock.FileLock``
opens and closes its lock file and tracks forks on every acquisition — measured here at ~0.35 ms each, two per run,
which alone kept ``Agent.run`` on ``TinyDb`` from its +1 ms overhead target. Elsewhere (Windows) ``filelock`` is
used as it is.
"""

from __future__ import annotations

import errno
import os
import time

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: filelock is imported only there
    fcntl = None  # type: ignore[assignment]
    import filelock


class LockTimeout(TimeoutError):
    """Another process held the lock for longer than the timeout."""


class FileLock:
    """An exclusive, non-reentrant lock on ``path`` shared by every process that opens the same file."""

    def __init__(self, path: str, *, timeout: float = 30.0, poll_interval: float = 0.001,
                 shared_ok: bool = False) -> None:
        self.path, self.timeout, self.poll_interval = path, timeout, poll_interval
        self.shared_ok = shared_ok
        """A reader's lock, which creates nothing: the lock file opened when it exists (every writer makes it
        when it opens the database), no lock while it does not (looked for again at each acquire)."""
        self._fd: int | None = None
        self._pid = -1
        self._fallback = None if fcntl is not None else filelock.FileLock(path, timeout=timeout, mode=0o600)

    def _descriptor(self) -> int:
        """The open lock file; a forked child opens its own, or it would share the parent's lock."""
        if self._fd is None or self._pid != os.getpid() or (self._fd == -1 and self.shared_ok):
            if not self.shared_ok:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            else:
                self._fd = _open_existing(self.path)
            self._pid = os.getpid()
        return self._fd

    def acquire(self) -> None:
        if self._fallback is not None:
            try:
                self._fallback.acquire()
            except filelock.Timeout:
                raise LockTimeout(self.path) from None
            return
        fd = self._descriptor()
        if fd == -1:
            return
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockTimeout(self.path) from None
                time.sleep(self.poll_interval)  # held by another process for one append: retry shortly

    def release(self) -> None:
        if self._fallback is not None:
            self._fallback.release()
        elif self._fd is not None and self._fd != -1:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._fd is not None and self._fd != -1 and self._pid == os.getpid():
            os.close(self._fd)
        self._fd = None


def _open_existing(path: str) -> int:
    """A reader's descriptor on the lock file, never creating it: read-write where allowed (NFS emulates
    ``flock`` with locks that need it), else read-only; -1 when it does not exist (no writer has opened the
    database since it went) or cannot be opened at all."""
    for flags in (os.O_RDWR, os.O_RDONLY):
        try:
            return os.open(path, flags)
        except OSError as exc:
            if exc.errno not in (errno.ENOENT, errno.EACCES, errno.EPERM, errno.EROFS):
                raise
            if exc.errno == errno.ENOENT:
                return -1
    return -1


def lock_path(path: str) -> str:
    """``.<name>.lock`` beside the file: a dot-file, so it stays out of JupyterLab's file browser."""
    folder, name = os.path.split(path)
    return os.path.join(folder, f".{name}.lock")
