"""Where a notebook's sessions live, decided once for the two readers that need it: the kernel's ``%%agent`` magic
and the Jupyter server's sidebar API (which runs without a kernel, so it cannot ask one).

A file ``<notebook stem>.nbsessions.json`` beside the notebook, unless ``$NBSESSIONS_DB_URL`` names a shared
PostgreSQL database; on a shared database the user is JupyterHub's user name, else the login name.

A kernel that switches its notebook to another *file* (``%agent db PATH``, ``AgentMagics.db_path``) records the
choice beside the notebook, in ``<notebook stem>.nbsessions-store.json``: the file's path relative to the
notebook's folder, nothing else (a path carries no credentials). The server, which cannot ask the kernel, reads it
(``read_pointer``) and opens that file, after checking it lies inside its root. A database URL chosen in the kernel
is never recorded: the server would have to connect, with the user's ``~/.pgpass``, wherever a file in a shared
folder told it to.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

from nbsessions.records.errors import StorageError

DB_SUFFIX = ".nbsessions.json"
POINTER_SUFFIX = ".nbsessions-store.json"
URL_ENV = "NBSESSIONS_DB_URL"
POINTER_MAX_BYTES = 4096  # a path and a version: anything longer is not a pointer this package wrote


class PointerError(StorageError):
    """A notebook's store pointer that cannot be read as one."""


def db_path_for(notebook: str | os.PathLike[str]) -> Path:
    """``analysis.ipynb`` → ``analysis.nbsessions.json`` in the same folder."""
    nb = Path(notebook)
    return nb.with_name(nb.stem + DB_SUFFIX)


def pointer_path_for(notebook: str | os.PathLike[str]) -> Path:
    """``analysis.ipynb`` → ``analysis.nbsessions-store.json``: where a store chosen in the kernel is recorded."""
    nb = Path(notebook)
    return nb.with_name(nb.stem + POINTER_SUFFIX)


def write_pointer(notebook: str | os.PathLike[str], store: str | os.PathLike[str]) -> None:
    """Record that ``notebook`` uses the file ``store`` (relative to the notebook's folder when it can be), owner-only
    (0600) and atomically: a reader sees the old pointer or the new one, never half of one."""
    folder = Path(notebook).parent
    try:
        shown = os.path.relpath(store, folder)
    except ValueError:  # another drive (Windows): only an absolute path says where
        shown = str(Path(store).absolute())
    pointer = pointer_path_for(notebook)
    body = json.dumps({"version": 1, "db_path": Path(shown).as_posix()})
    try:
        if pointer.read_text(encoding="utf-8") == body:
            return  # the usual case: the same choice, made again on the next open
    except (OSError, UnicodeDecodeError):
        pass
    fd, temp = tempfile.mkstemp(dir=folder, prefix=f".{pointer.name}.", suffix=".tmp")  # 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(body)
        os.replace(temp, pointer)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def remove_pointer(notebook: str | os.PathLike[str]) -> None:
    """The notebook is back on its default store: nothing to point at any more."""
    pointer_path_for(notebook).unlink(missing_ok=True)


def read_pointer(pointer: Path) -> Path:
    """The store a pointer names, as written (relative to the notebook's folder, or absolute); the caller decides
    whether it may be opened. ``PointerError`` when it is not a pointer of this package."""
    try:
        with open(pointer, "rb") as raw:
            data = raw.read(POINTER_MAX_BYTES + 1)
        value = json.loads(data) if len(data) <= POINTER_MAX_BYTES else None
    except (OSError, ValueError) as exc:
        raise PointerError(f"{pointer.name} is not a store pointer: {type(exc).__name__}") from None
    path = value.get("db_path") if isinstance(value, dict) else None
    if not isinstance(path, str) or not path.strip() or "\x00" in path:
        raise PointerError(f"{pointer.name} is not a store pointer: no db_path")
    return Path(path)


def env_db_url(environ: Mapping[str, str] | None = None) -> str | None:
    """``$NBSESSIONS_DB_URL`` (a hub admin's default for every kernel and server), or None when unset or blank."""
    env = os.environ if environ is None else environ
    value = env.get(URL_ENV, "").strip()
    return value or None


def login_user(environ: Mapping[str, str] | None = None) -> str:
    """Who runs this process: JupyterHub's user name, else the system login. The default user of a shared store."""
    env = os.environ if environ is None else environ
    if env.get("JUPYTERHUB_USER"):
        return env["JUPYTERHUB_USER"]
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
