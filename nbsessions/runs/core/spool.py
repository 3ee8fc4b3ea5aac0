"""Final writes a store never answered, kept on disk when the process exits and stored by the next process that
opens that store for writing.

``run_writes`` retries a final write the store refused (a PostgreSQL restart, a full disk) until the process
exits; what is still waiting then is appended here, one JSON line per write (the run as it ended, the session
state its tools changed), to a file named by a hash of the store's ``spool_key`` under the user's state folder.
``replay`` stores each kept run only while the stored one is still ``running`` by the same process, so a newer
state (a session deleted meanwhile, a run stored after all) always wins.

Each file is locked (``flock``) while it is appended to or replayed, and replaced whole (a temporary file
renamed over it) once a replay is done; whoever locked it then finds it is no longer the file the path names
and opens the new one. So two processes replaying at once store each write once, and an exiting process never
appends to a file that was just replaced. A replay notes each step in the file before the next (``stored``,
``done``), so one killed midway neither stores a write twice nor loses the state changes of a stored run.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import filelock

from nbsessions.records.errors import SessionNotFoundError, StorageError
from nbsessions.records.redact import redact_data
from nbsessions.records.schema import RunOutput, RunStatus

if TYPE_CHECKING:
    from nbsessions.db.base import BaseDb

try:
    import fcntl
except ImportError:  # Windows: a lock file beside the spool (``filelock``), as db/lockfile.py falls back to
    fcntl = None  # type: ignore[assignment]

VERSION = 1


def folder() -> Path:
    """``$XDG_STATE_HOME/nbsessions/pending`` (``~/.local/state`` when unset): the user's own, kept across
    reboots, unlike a temporary folder."""
    return Path(_folder(os.environ.get("XDG_STATE_HOME") or ""))


def path_for(key: str) -> Path:
    """One file per store: the key names a file or a database (never a password), hashed to a safe name."""
    return Path(_path(os.environ.get("XDG_STATE_HOME") or "", key))


@functools.lru_cache(maxsize=16)
def _folder(state: str) -> str:
    return os.path.join(state or os.path.join(os.path.expanduser("~"), ".local", "state"), "nbsessions", "pending")


@functools.lru_cache(maxsize=256)
def _path(state: str, key: str) -> str:
    """Cached: every ``Agent`` asks, and nearly always finds no file (one stat)."""
    return os.path.join(_folder(state), hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:32]
                        + ".jsonl")


def entry(key: str, entry_id: str, run: RunOutput, changes: dict[str, Any], deleted: list[str],
          run_stored: bool) -> dict[str, Any]:
    """One kept write as its line holds it; ``run.to_dict()`` and ``redact_data`` leave no secret in it."""
    return redact_data({"v": VERSION, "id": entry_id, "store": key, "run": run.to_dict(), "state_patch": changes,
                        "state_delete": deleted, "stored": run_stored})


# -- the file, locked ------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _locked(path: Path, *, create: bool) -> Iterator[int | None]:
    """The spool file open and exclusively locked; None when there is none (and ``create`` is False).

    Locked, it is checked to be still the file ``path`` names: a replay that finished meanwhile replaced or
    removed it, and writing to the old one would lose the lines."""
    if fcntl is None:
        with filelock.FileLock(f"{path}.lock", mode=0o600):  # held around every use of the file instead
            fd = _open(path, create)
            try:
                yield fd
            finally:
                if fd is not None:
                    os.close(fd)
        return
    while True:
        fd = _open(path, create)
        if fd is None:
            yield None
            return
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            current = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            current = False
        if current:
            break
        os.close(fd)
    try:
        yield fd
    finally:
        os.close(fd)  # releases the lock


def _open(path: Path, create: bool) -> int | None:
    flags = os.O_RDWR | os.O_APPEND | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0) \
        | (os.O_CREAT if create else 0)
    try:
        return os.open(path, flags, 0o600)
    except FileNotFoundError:
        return None


def _write_lines(fd: int, records: list[dict[str, Any]]) -> None:
    data = "".join(json.dumps(r, ensure_ascii=False, allow_nan=False) + "\n" for r in records).encode("utf-8")
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    os.fsync(fd)


def _fsync_folder(where: Path) -> None:
    """The folder's entry for a new or renamed file made durable (POSIX; Windows has no folder handle to sync)."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    fd = os.open(where, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def append(key: str, records: list[dict[str, Any]]) -> Path:
    """Add kept writes to the store's spool file (folder 0700, file 0600), durably; returns its path."""
    where = folder()
    where.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = path_for(key)
    with _locked(path, create=True) as fd:
        assert fd is not None
        _write_lines(fd, records)
    _fsync_folder(where)
    return path


def _read(fd: int) -> tuple[list[dict[str, Any]], int]:
    """The kept writes still to do, in order, and how many lines could not be read."""
    with open(os.dup(fd), "rb") as f:
        f.seek(0)
        lines = f.read().splitlines()
    writes: dict[str, dict[str, Any]] = {}
    bad = 0
    for line in lines:
        try:
            record = json.loads(line)
            step = record.get("step") if record.get("v") == VERSION else "unknown"
            if step is None and isinstance(record.get("id"), str) and isinstance(record.get("run"), dict):
                writes[record["id"]] = record
            elif step == "stored" and record["id"] in writes:
                writes[record["id"]]["stored"] = True
            elif step == "done":
                writes.pop(record["id"], None)
            else:
                bad += 1
        except (ValueError, TypeError, KeyError, AttributeError):
            bad += 1
    return list(writes.values()), bad


def _replace(path: Path, records: list[dict[str, Any]]) -> None:
    """The file's new content, whole: renamed over it (or it removed when nothing is left) under its lock."""
    if not records:
        path.unlink(missing_ok=True)
    else:
        temporary = path.with_name(path.name + ".new")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0), 0o600)
        try:
            _write_lines(fd, records)
        finally:
            os.close(fd)
        os.replace(temporary, path)
    _fsync_folder(path.parent)


# -- replay ----------------------------------------------------------------------------------------------------
def replay(db: BaseDb) -> None:
    """Store what earlier processes kept for ``db``; what the store still refuses stays for the next time.

    Never raises: opening a store must not fail because of a kept write (a bad line is skipped with a warning)."""
    key = db.spool_key()
    if key is None:
        return
    path = path_for(key)
    if not path.exists():  # nearly always: one stat
        return
    try:
        with _locked(path, create=False) as fd:
            if fd is not None:
                _replay_locked(db, path, fd)
    except OSError as exc:
        warnings.warn(f"the final writes kept in {path} could not be read ({exc}); they stay there",
                      RuntimeWarning, stacklevel=2)


def _replay_locked(db: BaseDb, path: Path, fd: int) -> None:
    writes, bad = _read(fd)
    if bad:
        warnings.warn(f"{bad} unreadable line(s) in {path} were skipped (not a kept final write)",
                      RuntimeWarning, stacklevel=4)
    left: list[dict[str, Any]] = []
    for index, record in enumerate(writes):
        try:
            _store(db, fd, record)
        except StorageError:
            left = writes[index:]  # the store went away again: these wait for the next process
            break
        except Exception as exc:  # noqa: BLE001 - a record the store refuses cannot be helped by keeping it
            warnings.warn(f"a kept final write of run {str(record['run'].get('run_id'))[:8]} was given up: {exc}",
                          RuntimeWarning, stacklevel=4)
        _write_lines(fd, [{"v": VERSION, "id": record["id"], "step": "done"}])
    _replace(path, left)


def _store(db: BaseDb, fd: int, record: dict[str, Any]) -> None:
    """One kept write: the run only while the stored one is still running by the process that kept it; then the
    session state its tools changed."""
    if not record.get("stored"):
        run = RunOutput.from_dict(record["run"])
        if not _still_running(db.get_run(run.run_id), run) or not db.upsert_run_if_session(run):
            return  # stored after all, continued, or its session deleted: the newer state stays
        _write_lines(fd, [{"v": VERSION, "id": record["id"], "step": "stored"}])
        record["stored"] = True  # kept so, should the state write below fail
    patch, delete = record.get("state_patch") or {}, record.get("state_delete") or []
    if patch or delete:
        with contextlib.suppress(SessionNotFoundError):  # deleted just after: it went with its session
            db.update_session(record["run"]["session_id"], state_patch=patch, state_delete=delete)


def _still_running(stored: RunOutput | None, kept: RunOutput) -> bool:
    """Stored as running by the kept run's own process (read as ``interrupted`` once that process is gone:
    ``interrupted`` is never stored, only decided when read)."""
    return (stored is not None and stored.writer is not None and stored.writer == kept.writer
            and stored.status in (RunStatus.running, RunStatus.interrupted))
