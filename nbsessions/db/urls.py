"""Which store a text names (a file path or a ``postgresql://`` URL), and how to show a URL without its password.

Kept apart from the PostgreSQL store so choosing and printing a store never imports a database driver.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, unquote, urlsplit

from nbsessions.db.tinydb import TinyDb

if TYPE_CHECKING:
    from nbsessions.db.base import BaseDb

URL_PREFIXES = ("postgresql://", "postgres://")
MASK = "***"
# From ``user:`` to the LAST ``@`` of the URL: a password that is not percent-encoded may hold ``@ / # ?``.
_NETLOC_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:/@?#\s]*:)(?P<secret>\S*)(?=@)", re.IGNORECASE)
_WHOLE_URL_PASSWORD = re.compile(r"(?P<head>^\s*[a-z][a-z0-9+.-]*://[^:/@?#\s]*:)(?P<secret>.*)(?=@)",
                                 re.IGNORECASE | re.DOTALL)  # a text that is one URL: its password may hold spaces
_PARAM_PASSWORD = re.compile(r"(?P<head>[?&]password=)(?P<secret>[^&\s]*)", re.IGNORECASE)
_KEYWORD_PASSWORD = re.compile(r"(?P<head>\bpassword\s*=\s*)(?P<secret>'(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


def is_postgres_url(text: str | None) -> bool:
    return bool(text) and str(text).strip().lower().startswith(URL_PREFIXES)


def url_password(url: str) -> str | None:
    """The password a URL carries (in its user part, up to the last ``@``, or as ``?password=``), or None."""
    netloc = _WHOLE_URL_PASSWORD.match(url.strip())
    if netloc and netloc["secret"]:
        return unquote(netloc["secret"])
    found = dict(parse_qsl(urlsplit(url).query)).get("password")
    return found or None


def mask_url(text: str) -> str:
    """``postgresql://ann:secret@host/db`` → ``postgresql://ann:***@host/db`` (and ``password=`` params/keywords),
    parseable or not: the one helper every printed URL goes through."""
    text = _WHOLE_URL_PASSWORD.sub(lambda m: m["head"] + MASK, text, count=1)
    text = _NETLOC_PASSWORD.sub(lambda m: m["head"] + MASK, text)
    text = _PARAM_PASSWORD.sub(lambda m: m["head"] + MASK, text)
    return _KEYWORD_PASSWORD.sub(lambda m: m["head"] + MASK, text)


def scrub(text: str, secret: str | None) -> str:
    """Any text that may quote a connection string (driver errors do), with the password removed."""
    text = mask_url(text)
    return text.replace(secret, MASK) if secret else text


def open_store(target: str | Path, *, meta_scope: str = "", read_only: bool = False) -> BaseDb:
    """``TinyDb`` for a path, ``PostgresDb`` for a ``postgresql://`` URL (psycopg is imported only then).

    ``read_only``: nothing is created or written (a PostgreSQL database nbsessions never wrote to raises
    ``NoSchema``)."""
    if is_postgres_url(str(target)):
        from nbsessions.db.postgres import PostgresDb

        return PostgresDb(str(target).strip(), meta_scope=meta_scope, read_only=read_only)
    return TinyDb(target, read_only=read_only)
