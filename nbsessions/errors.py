"""One exception hierarchy, so callers can catch everything nbsessions raises with one except clause."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from nbsessions.redact import redact

if TYPE_CHECKING:
    from nbsessions.schema import RunOutput


class NbSessionsError(Exception):
    """Base of every error nbsessions raises on purpose; its message never holds a secret (a server's error
    body may quote the API key), so whatever shows or stores it is safe."""

    def __init__(self, *args: object):
        super().__init__(*(redact(a) if isinstance(a, str) else a for a in args))


class ModelError(NbSessionsError):
    """The model provider failed; the run was stored with ``status=error`` and is attached as ``.run``.

    Callers decide from the typed fields, never from the English of the message: ``status_code`` (HTTP status),
    ``retry_after`` (seconds the server asked to wait) and ``kind``, one of ``MODEL_ERROR_KINDS`` or None.
    """

    def __init__(self, message: str, *, status_code: int | None = None, retry_after: float | None = None,
                 kind: str | None = None, run: RunOutput | None = None):
        super().__init__(message)
        self.status_code = status_code
        self.retry_after = retry_after
        self.kind = kind if kind is not None else kind_of_status(status_code)
        self.run = run

    @property
    def retryable(self) -> bool:
        """Waiting can fix it: a rate limit (not an exhausted quota) or a timeout."""
        return self.kind in ("rate_limit", "timeout")


MODEL_ERROR_KINDS = ("rate_limit", "quota", "timeout", "auth", "not_found", "server", "connection", "malformed",
                     "request")
"""``rate_limit`` 429 · ``quota`` 429 insufficient_quota · ``timeout`` · ``auth`` 401/403 · ``not_found`` 404 ·
``server`` 5xx · ``connection`` cannot connect or dropped · ``malformed`` an unreadable or incomplete response ·
``request`` any other 4xx."""

_STATUS_KINDS = {401: "auth", 403: "auth", 404: "not_found", 408: "timeout", 429: "rate_limit"}


def kind_of_status(status_code: int | None) -> str | None:
    """The ``ModelError.kind`` an HTTP status means by itself (a 429 may still turn out to be a ``quota``)."""
    if status_code is None:
        return None
    return _STATUS_KINDS.get(status_code, "server" if status_code >= 500 else "request" if status_code >= 400
                             else None)


class InvalidInputError(NbSessionsError, ValueError):
    """An argument cannot be used (NaN in state, a lone surrogate, a negative count); nothing was written."""


class SessionNotFoundError(NbSessionsError, LookupError):
    """No session (or run) with that id exists in the database."""


class SessionAccessError(NbSessionsError, PermissionError):
    """The session belongs to another user; nbsessions never reads or writes across users."""


class RunNotPausedError(NbSessionsError, ValueError):
    """``continue_run`` on a run that is not (or no longer) paused: another continue took it, or it ended."""


class StorageError(NbSessionsError):
    """A file cannot be used as asked (the database, an export being written); it was left as it was."""


class StorageWarning(RuntimeWarning):
    """The database was read but something was skipped or postponed (a torn last line, a compaction that failed);
    the magic and the CLI show it as one plain line."""


class CorruptDatabaseError(StorageError):
    """A line other than the last one of a database file cannot be parsed."""


def exception_line(exc: BaseException) -> str:
    """An exception's message on one line (its type name when it has none): what runs store as ``error``."""
    return " ".join(str(exc).split()) or type(exc).__name__


@contextlib.contextmanager
def storage_warnings_as_lines(write: Callable[[str], object]) -> Iterator[None]:
    """Inside, each ``StorageWarning`` is written as one plain line (Python shows a warning as a library path and
    a line of its source code); other warnings go on to Python as they came."""
    seen: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always", StorageWarning)
            yield
    finally:
        for w in seen:
            if issubclass(w.category, StorageWarning):
                write(f"nbsessions: warning: {' '.join(str(w.message).split())}\n")
            else:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)
