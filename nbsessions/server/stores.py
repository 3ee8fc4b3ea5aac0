"""A notebook's store, as the Jupyter server finds it: the same file or database the notebook's kernel writes.

The request names a notebook by its path under the server's root (as JupyterLab's contents API does). Anything
that resolves outside the root — ``..``, an absolute path, a symlink out — is refused before a file is touched.
Stores stay open between requests (a TinyDB journal is replayed once, then only what other kernels appended is
read), and the server never writes: files are opened read-only and a notebook without a store reads as empty.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from nbsessions.db import open_store
from nbsessions.db.base import BaseDb
from nbsessions.db.locate import db_path_for, env_db_url, login_user
from nbsessions.db.postgres_schema import NoSchema
from nbsessions.db.tinydb import TinyDb
from nbsessions.db.urls import mask_url, scrub, url_password
from nbsessions.records.errors import InvalidInputError
from nbsessions.runs.agent import Agent

IDLE_CLOSE = 600.0
"""Seconds after its last request that a notebook's file is closed (opened again, and replayed, when asked)."""


class PathRefused(InvalidInputError):
    """The notebook path is not a notebook under the server's root."""


@dataclass(frozen=True)
class NotebookStore:
    """Where one notebook's sessions are and whose they are (``user`` None: every session of a notebook's file)."""

    notebook: str  # as the request named it, relative to the root
    path: Path  # the TinyDB file beside the notebook (also when a database URL wins)
    url: str | None = field(default=None, repr=False)  # may carry a password: never sent, never in a repr
    user: str | None = None

    @property
    def kind(self) -> str:
        return "postgresql" if self.url else "file"

    @property
    def label(self) -> str:
        """What the sidebar shows: the file's name, or the URL with its password masked."""
        return mask_url(self.url) if self.url else self.path.name

    def clean(self, text: str) -> str:
        """An error message about this store, without the database password."""
        return scrub(text, url_password(self.url)) if self.url else text


def resolve_notebook(root: str | os.PathLike[str], notebook: str) -> Path:
    """The notebook's real path, or ``PathRefused`` when it is not an ``.ipynb`` inside ``root``."""
    if not notebook or "\x00" in notebook:
        raise PathRefused("no notebook path given")
    relative = Path(notebook)
    if relative.is_absolute() or relative.suffix != ".ipynb":
        raise PathRefused(f"not a notebook path under the server's root: {notebook}")
    base = Path(root).resolve()
    target = (base / relative).resolve()
    if target != base and base not in target.parents:
        raise PathRefused(f"not a notebook path under the server's root: {notebook}")
    return target


def locate(root: str | os.PathLike[str], notebook: str) -> NotebookStore:
    """The store the magic would use for this notebook when nothing else is configured in the kernel."""
    path = db_path_for(resolve_notebook(root, notebook))
    url = env_db_url()
    if url:  # a shared database never mixes users: the magic's default user is the login (JupyterHub) name
        return NotebookStore(notebook, path, url, login_user())
    return NotebookStore(notebook, path)


class StoreCache:
    """Open stores by target, shared by the server's request threads; each counts the changes it heard."""

    def __init__(self, idle_close: float = IDLE_CLOSE) -> None:
        self._lock = threading.Lock()
        self._stores: dict[str, BaseDb] = {}
        self._used: dict[str, float] = {}
        self._changes: dict[str, int] = {}
        self._idle_close = idle_close

    def agent(self, where: NotebookStore) -> Agent | None:
        """An Agent reading this notebook's store as its user, or None when the notebook has no store yet."""
        db = self._open(where)
        return None if db is None else Agent(db=db, user_id=where.user)

    def version(self, where: NotebookStore) -> str:
        """Changes whenever a run or session lands: the file's size and time, or the database's notifications."""
        if where.url:
            self._open(where)
            return f"pg:{self._changes.get(where.url, 0)}"
        try:
            stat = where.path.stat()
        except FileNotFoundError:
            return "none"
        return f"file:{stat.st_ino}:{stat.st_size}:{stat.st_mtime_ns}"

    def _open(self, where: NotebookStore) -> BaseDb | None:
        key = where.url or str(where.path)
        with self._lock:
            if where.url is None and not where.path.exists():  # never made, or deleted since it was opened
                gone = self._stores.pop(key, None)
                if gone is not None:
                    gone.close()
                return None
            self._close_idle(keep=key)
            self._used[key] = time.monotonic()
            if key in self._stores:
                return self._stores[key]
            try:  # read-only: the server never writes, not even what a kernel kept for the store (runs/core/spool.py)
                db = open_store(where.url or where.path, read_only=True)
            except NoSchema:
                return None  # a database nbsessions never wrote to: as a notebook without a store
            if where.url:
                self._changes[key] = 0
                user = where.user

                def heard(_event: str, _session_id: str, owner: str | None) -> None:
                    if owner is None or owner == user:  # another user's writes never show, not even as a change
                        self._count(key)

                db.add_change_listener(heard)
            self._stores[key] = db
            return db

    def _close_idle(self, keep: str) -> None:
        """Close the files of notebooks nobody looked at for a while (a server sees many notebooks in its life);
        a database stays open, listening. Called under the lock."""
        now = time.monotonic()
        for key in [k for k, used in self._used.items() if k != keep and now - used > self._idle_close]:
            if not isinstance(self._stores.get(key), TinyDb):
                continue
            self._stores.pop(key).close()
            del self._used[key]

    def _count(self, key: str) -> None:
        with self._lock:
            self._changes[key] = self._changes.get(key, 0) + 1

    def close(self) -> None:
        with self._lock:
            stores, self._stores = list(self._stores.values()), {}
        for db in stores:
            db.close()
