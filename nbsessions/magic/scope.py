"""Which database a notebook uses, and why: a file beside it, or a shared PostgreSQL server.

Sessions belong to a notebook: they live in ``<notebook stem>.nbsessions.json`` beside it, so moving or sharing the
notebook folder keeps its conversations. The kernel does not know its notebook's path for sure, so each answer
comes with the reason it was chosen — ``%agent db`` shows it, and users can see at once when a guess is wrong.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nbsessions.db.locate import DB_SUFFIX as DB_SUFFIX
from nbsessions.db.locate import URL_ENV as URL_ENV
from nbsessions.db.locate import db_path_for as db_path_for
from nbsessions.db.locate import login_user as login_user
from nbsessions.db.locate import remove_pointer, write_pointer
from nbsessions.db.urls import is_postgres_url, mask_url

FALLBACK_NAME = "nbsessions.json"
VSCODE_NAME = "__vsc_ipynb_file__"
JUPYTER_ENV = "JPY_SESSION_NAME"


@dataclass(frozen=True)
class DbLocation:
    """A database and the human-readable reason it was chosen.

    ``url`` is set for a PostgreSQL store (kept out of the repr: it may carry a password); ``path`` is then where
    the file would be, which is where exports go by default.
    """

    path: Path
    reason: str
    notebook: Path | None = None
    url: str | None = field(default=None, repr=False)

    @property
    def label(self) -> str:
        """What to show: the file path, or the URL with its password masked."""
        if self.url is None:
            return str(self.path)
        return mask_url(self.url)

    @property
    def name(self) -> str:
        return self.path.name if self.url is None else self.label

    @property
    def target(self) -> str | Path:
        """What ``open_store`` opens."""
        return self.url if self.url is not None else self.path


def _jupyter_notebook(value: str, cwd: Path) -> Path | None:
    """jupyter_server gives the notebook path, absolute in recent versions, relative to its root in older ones.

    The kernel starts in the notebook's folder, so a relative path that does not resolve from the working
    directory is taken as a file name there.
    """
    path = Path(value)
    if path.suffix != ".ipynb":  # consoles and other documents also get a session name
        return None
    if path.is_absolute():
        return path
    return cwd / path if (cwd / path).exists() else cwd / path.name


def find_notebook(user_ns: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None,
                  cwd: Path | None = None) -> tuple[Path, str] | None:
    """The notebook this kernel serves and how we know, or None when nothing says.

    A candidate counts only if its folder exists here: a remote kernel may be told a path from another machine.
    """
    env = os.environ if environ is None else environ
    ns = user_ns or {}
    here = Path.cwd() if cwd is None else cwd
    candidates: list[tuple[Path | None, str]] = []
    if env.get(JUPYTER_ENV):
        candidates.append((_jupyter_notebook(env[JUPYTER_ENV], here), f"{JUPYTER_ENV} (set by Jupyter)"))
    vsc = ns.get(VSCODE_NAME)
    if isinstance(vsc, str) and vsc:
        candidates.append((Path(vsc), f"{VSCODE_NAME} (set by VS Code)"))
    for path, source in candidates:
        if path is not None and path.parent.is_dir():
            return path.resolve(), source
    return None


def default_location(user_ns: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None,
                     cwd: Path | None = None) -> DbLocation:
    """The DB beside the notebook when the notebook is known, else ``nbsessions.json`` in the working directory."""
    found = find_notebook(user_ns, environ, cwd)
    if found is not None:
        notebook, source = found
        return DbLocation(db_path_for(notebook), f"beside the notebook {notebook.name}, found from {source}",
                          notebook)
    here = Path.cwd() if cwd is None else cwd
    return DbLocation((here / FALLBACK_NAME).resolve(),
                      f"in the working directory: no notebook path known ({JUPYTER_ENV} is not set and there is "
                      f"no {VSCODE_NAME})")


def locate_db(configured: str | None = None, *, reason: str | None = None,
              user_ns: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None,
              cwd: Path | None = None) -> DbLocation:
    """A path or ``postgresql://`` URL the user set wins (with ``reason`` saying how they set it); otherwise the
    notebook's default."""
    if configured and is_postgres_url(configured):
        found = find_notebook(user_ns, environ, cwd)
        place = default_location(user_ns, environ, cwd)
        return DbLocation(place.path, reason or "set by the user", found[0] if found is not None else None,
                          url=configured.strip())
    if configured:
        here = Path.cwd() if cwd is None else cwd
        path = Path(configured).expanduser()
        found = find_notebook(user_ns, environ, cwd)
        return DbLocation((here / path).resolve(), reason or "set by the user",
                          found[0] if found is not None else None)
    return default_location(user_ns, environ, cwd)


def configured_db(override: tuple[str, str] | None, db_url: str, db_path: str,
                  environ: Mapping[str, str] | None = None) -> tuple[str | None, str]:
    """Which store the user asked for, and how: ``%agent db`` > ``AgentMagics.db_url`` > ``AgentMagics.db_path``
    > ``$NBSESSIONS_DB_URL`` (a hub admin's default for everyone) > the notebook's own file."""
    env = os.environ if environ is None else environ
    if override is not None:
        return override
    if db_url.strip():
        return db_url, "set with %config AgentMagics.db_url"
    if db_path:
        return db_path, "set with %config AgentMagics.db_path"
    if env.get(URL_ENV, "").strip():
        return env[URL_ENV], f"from ${URL_ENV}"
    return None, "set with %config AgentMagics.db_path"


def record_choice(location: DbLocation) -> None:
    """Tell the Jupyter server which file this notebook uses (``db/locate.py``'s pointer beside the notebook): a
    file other than the default is recorded, the default or a database URL (never recorded) removes the record.
    Nothing is written when the notebook is unknown; a folder the kernel cannot write keeps today's behaviour."""
    notebook = location.notebook
    if notebook is None:
        return
    with contextlib.suppress(OSError):
        if location.url is None and location.path != db_path_for(notebook):
            write_pointer(notebook, location.path)
        else:
            remove_pointer(notebook)
