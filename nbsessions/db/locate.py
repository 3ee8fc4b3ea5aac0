"""Where a notebook's sessions live, decided once for the two readers that need it: the kernel's ``%%agent`` magic
and the Jupyter server's sidebar API (which runs without a kernel, so it cannot ask one).

A file ``<notebook stem>.nbsessions.json`` beside the notebook, unless ``$NBSESSIONS_DB_URL`` names a shared
PostgreSQL database; on a shared database the user is JupyterHub's user name, else the login name.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

DB_SUFFIX = ".nbsessions.json"
URL_ENV = "NBSESSIONS_DB_URL"


def db_path_for(notebook: str | os.PathLike[str]) -> Path:
    """``analysis.ipynb`` → ``analysis.nbsessions.json`` in the same folder."""
    nb = Path(notebook)
    return nb.with_name(nb.stem + DB_SUFFIX)


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
