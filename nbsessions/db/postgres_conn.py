"""The connections of one ``PostgresDb``: a pool that survives server restarts, and driver errors as one line.

A pooled connection is checked before use at no cost (its socket is polled): after ``pg_ctl restart`` the first
operation gets a fresh connection instead of the stale one's error. Errors are told apart by what happened: a
statement timeout, a permission refused, a connection lost, a server that cannot be reached. The URL's password
never appears: messages show the URL masked and the password scrubbed from the driver's text.
"""

from __future__ import annotations

import contextlib
import select
import threading
import time
from collections.abc import Iterator

import psycopg
from psycopg import errors as pg_errors
from psycopg_pool import ConnectionPool, PoolTimeout

from nbsessions.db.postgres_schema import MigrationRefused
from nbsessions.db.urls import scrub, url_password
from nbsessions.errors import StorageError

_CHECK_AFTER = 2.0  # seconds idle after which a pooled connection is tested before use (a server may have restarted)


class Connections:
    """``connection(doing)`` hands out a working pooled connection and turns driver errors into ``StorageError``
    lines saying what the store was doing; ``direct()`` opens one outside the pool (migrations, LISTEN)."""

    def __init__(self, conninfo: str, shown_url: str, origin: str, *, pool_size: int, timeout: float,
                 read_only: bool = False) -> None:
        self._conninfo, self.url, self._origin, self._read_only = conninfo, shown_url, origin, read_only
        self._secret = url_password(conninfo)
        self._timeout, self._pool_size = timeout, pool_size
        self._last_used: dict[int, float] = {}  # id(connection) -> when it last answered
        self._out, self._lock = 0, threading.Lock()  # connections handed out now
        self._pool = self._new_pool()

    def open(self) -> None:
        try:
            with self.errors("open"):
                self._pool.open(wait=True, timeout=self._timeout)
        except BaseException:
            self._pool.close()  # else its workers keep trying to connect in the background
            raise

    def close(self) -> None:
        self._pool.close()

    def direct(self) -> psycopg.Connection:
        return psycopg.connect(self._conninfo, autocommit=True, connect_timeout=max(1, int(self._timeout)))

    # -- handing out connections -----------------------------------------------------------------
    @contextlib.contextmanager
    def connection(self, doing: str) -> Iterator[psycopg.Connection]:
        with self.errors(doing):
            pool, conn = self._live_connection()
            try:
                with conn:  # as the pool's own connection(): ends a transaction left open, keeps the connection
                    yield conn
            finally:
                self._last_used[id(conn)] = time.monotonic()
                with self._lock:
                    self._out -= 1
                pool.putconn(conn)

    def _new_pool(self) -> ConnectionPool:
        return ConnectionPool(self._conninfo, min_size=1, max_size=self._pool_size, timeout=self._timeout,
                              open=False, kwargs={"autocommit": True}, configure=self._configure, name="nbsessions")

    def _configure(self, conn: psycopg.Connection) -> None:
        conn.execute("SELECT set_config('nbsessions.origin', %s, false)", [self._origin])
        if self._read_only:  # a reader (python -m nbsessions ls/show/export): the server refuses any write
            conn.execute("SET default_transaction_read_only = on")
        self._last_used[id(conn)] = time.monotonic()

    def _live_connection(self) -> tuple[ConnectionPool, psycopg.Connection]:
        """A pooled connection that works, so the first operation after a server restart succeeds.

        Dead connections (the server restarted since) are dropped and replaced at once. A pool with nothing to
        give while this store holds fewer than it may is waiting out the back-off of reconnection attempts made
        while the server was down: once the server answers, a fresh pool replaces it instead.
        """
        deadline = time.monotonic() + self._timeout
        while True:
            pool = self._pool
            try:
                conn = pool.getconn(timeout=max(min(deadline - time.monotonic(), 0.5), 0.001))
            except PoolTimeout:
                if time.monotonic() >= deadline:
                    raise
                if self._out < self._pool_size and self._reachable():
                    self._replace_pool(pool)
                continue
            if self._usable(conn):
                with self._lock:
                    self._out += 1
                return pool, conn
            conn.close()  # the pool sees it closed, forgets it and opens a new one in its worker
            pool.putconn(conn)

    def _usable(self, conn: psycopg.Connection) -> bool:
        """Whether a pooled connection can take a query, costing no round trip in the common case.

        An idle connection has nothing to read; a server that shut down or restarted has sent it an error and
        closed it, so a readable socket means the connection must be tested (``SELECT`` nothing) before use. One
        idle for a while is tested too: a server that vanished without a word (a crashed host) sends nothing.
        """
        if conn.closed or conn.broken:
            return False
        poller = select.poll()
        poller.register(conn.fileno(), select.POLLIN)
        if not poller.poll(0) and time.monotonic() - self._last_used.get(id(conn), 0.0) <= _CHECK_AFTER:
            return True
        try:
            ConnectionPool.check_connection(conn)
        except psycopg.Error:
            return False
        return True

    def _reachable(self) -> bool:
        try:
            psycopg.connect(self._conninfo, connect_timeout=1).close()
        except psycopg.Error:
            return False
        return True

    def _replace_pool(self, old: ConnectionPool) -> None:
        with self._lock:
            if self._pool is not old:  # another thread did it
                return
            self._pool = self._new_pool()
            self._pool.open(wait=False)
        threading.Thread(target=old.close, name="nbsessions-pool-close", daemon=True).start()

    # -- errors -----------------------------------------------------------------------------------
    @contextlib.contextmanager
    def errors(self, doing: str) -> Iterator[None]:
        """Driver errors become one ``StorageError`` line naming the (masked) database; never the password."""
        try:
            yield
        except PoolTimeout:
            raise StorageError(self.message(doing, self._why_unreachable())) from None
        except MigrationRefused as exc:
            raise StorageError(self.message(doing, str(exc))) from None
        except pg_errors.QueryCanceled as exc:  # an OperationalError, but the connection is fine
            why = f"{exc} (the server's statement_timeout or a cancel; the connection is fine, nothing was changed)"
            raise StorageError(self.message(doing, why)) from None
        except psycopg.OperationalError as exc:
            if doing == "open":  # never connected: the reason alone (bad password, no server...)
                raise StorageError(self.message(doing, str(exc))) from None
            with contextlib.suppress(Exception):  # the server went away: drop every idle connection it broke
                self._pool.check()  # too, so the next operation starts on a fresh one
            why = f"{exc} (the connection was lost; the next operation reconnects)"
            raise StorageError(self.message(doing, why)) from None
        except psycopg.Error as exc:
            raise StorageError(self.message(doing, str(exc))) from None

    def message(self, doing: str, detail: str) -> str:
        detail = " ".join(scrub(detail, self._secret).split())
        return f"PostgreSQL {self.url}: cannot {doing}: {detail}"

    def _why_unreachable(self) -> str:
        """The pool only says it timed out; one direct attempt says why (server down, bad password...)."""
        try:
            psycopg.connect(self._conninfo, connect_timeout=2).close()
        except psycopg.Error as exc:
            return str(exc)
        return f"no free connection within {self._timeout:g} s; the server is reachable again now"
