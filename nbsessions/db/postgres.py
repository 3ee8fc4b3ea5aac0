"""``PostgresDb``: sessions and runs in a PostgreSQL database, so a team on one JupyterHub shares one store.

psycopg 3 with a connection pool. Records are JSON documents beside the columns that list and order them;
the schema is created and migrated on first use (``postgres_schema``). Every read-modify-write is one statement
or one transaction holding the row lock, so kernels in different processes and on different machines lose
nothing. Writes notify listeners in other kernels (``postgres_listen``): an open panel updates without Refresh.
The password of the URL never leaves this object: reprs and error messages show it masked.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import Iterable
from dataclasses import fields as dataclass_fields
from typing import Any, TypeVar

import psycopg

from nbsessions.db.base import (
    BaseDb,
    apply_session_update,
    check_session_owner,
    check_sort,
    runs_from_records,
    unique_name,
)
from nbsessions.db.postgres_conn import Connections
from nbsessions.db.postgres_listen import ChangeFeed, ChangeListener
from nbsessions.db.postgres_schema import NAMES_LOCK_KEY, SCHEMA, check_readable, migrate
from nbsessions.db.urls import mask_url, url_password
from nbsessions.records.errors import SessionNotFoundError, StorageError
from nbsessions.records.redact import register
from nbsessions.records.schema import Metrics, RunOutput, RunStatus, Session, new_id, now

logging.getLogger("psycopg.pool").addHandler(logging.NullHandler())  # its reconnect warnings would print under
# a cell with no logging set up; failures reach the user as one StorageError line instead

_Record = TypeVar("_Record", Session, RunOutput)
_ORDER = {"updated_at": "updated_at", "created_at": "created_at", "session_name": 'session_name COLLATE "C"'}
_S, _R, _M = f"{SCHEMA}.sessions", f"{SCHEMA}.runs", f"{SCHEMA}.meta"
_SESSION_COLUMNS = "session_id, user_id, session_name, created_at, updated_at, data"
_INSERT_SESSION = f"INSERT INTO {_S} ({_SESSION_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s::json)"
_UPSERT_RUN = (f"INSERT INTO {_R} (run_id, session_id, user_id, parent_run_id, status, metrics, data) "
               "VALUES (%s, %s, %s, %s, %s, %s::jsonb, %s::json) ON CONFLICT (run_id) DO UPDATE SET "
               "session_id = EXCLUDED.session_id, user_id = EXCLUDED.user_id, parent_run_id = EXCLUDED.parent_run_id, "
               "status = EXCLUDED.status, metrics = EXCLUDED.metrics, data = EXCLUDED.data")
_RUN_IF_SESSION = (f"WITH s AS (UPDATE {_S} SET updated_at = %s WHERE session_id = %s RETURNING 1) "
                   + _UPSERT_RUN.replace("VALUES (", "SELECT ").replace(
                       "::json) ON", "::json WHERE EXISTS (SELECT 1 FROM s) ON") + " RETURNING 1")
_TOKENS = ("input_tokens", "output_tokens", "total_tokens", "cached_tokens", "reasoning_tokens")  # Metrics' order
_METRIC_FIELDS = {*_TOKENS, "time_to_first_token", "duration", "cost", "tokens_estimated"}  # what the SQL sums


def _dumps(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False)


def _session_row(data: dict[str, Any]) -> tuple[Any, ...]:
    return (data["session_id"], data.get("user_id"), data.get("session_name"), data["created_at"],
            data["updated_at"], _dumps(data))


class PostgresDb(BaseDb):
    """Sessions, runs and notebook settings in PostgreSQL (``postgresql://user@host/db``; libpq's PGPASSWORD and
    ``~/.pgpass`` work too, so a URL need not carry the password).

    ``meta_scope`` keeps notebook settings (the active session) apart when many notebooks and users share the
    database; the magic passes the user and notebook. ``pool_size`` bounds the connections of this kernel,
    ``timeout`` how long an operation waits for one (a server that is down is reported after that).
    """

    def __init__(self, url: str | None = None, *, db_url: str | None = None, meta_scope: str = "",
                 pool_size: int = 4, timeout: float = 5.0, read_only: bool = False) -> None:
        """``read_only``: never create or migrate the schema, and the server refuses writes (``NoSchema`` when
        nbsessions never wrote to the database). ``db_url`` is Agno's name for ``url``; its SQLAlchemy driver
        part (``postgresql+psycopg://``) is dropped, as libpq takes ``postgresql://``."""
        if (url is None) == (db_url is None):
            raise TypeError("PostgresDb needs one URL: PostgresDb(url) or PostgresDb(db_url=...)")
        url = url if url is not None else re.sub(r"^postgres(ql)?\+\w+://", "postgresql://", db_url or "")
        register(url_password(url))  # redacted wherever a record or a message goes, not only in this store's errors
        self.url = mask_url(url)
        self.path = self.url  # what panels and messages show
        self.meta_scope, self._read_only = meta_scope, read_only
        self.origin = new_id()  # tags this store's writes, so its own notifications are not echoed back
        self._conns = Connections(url, self.url, self.origin, pool_size=pool_size, timeout=timeout,
                                  read_only=read_only)
        with self._conns.errors("open"), self._conns.direct() as conn:  # fails at once, saying why (a pool
            self.schema_version = check_readable(conn) if read_only else migrate(conn)  # would retry)
            self.user: str = conn.info.user  # who the server took us for (the URL may not say: PGUSER...)
        self._conns.open()
        self._feed = ChangeFeed(self._conns.direct, self.origin, meta_scope)

    def __repr__(self) -> str:
        return f"PostgresDb({self.url!r})"

    def spool_key(self) -> str | None:
        return None if self._read_only else f"postgresql {self.url} as {self.user}"  # ``url``: password masked

    def _connection(self, doing: str) -> contextlib.AbstractContextManager[psycopg.Connection]:
        return self._conns.connection(doing)

    def _one(self, doing: str, sql: str, params: Any = ()) -> tuple[Any, ...] | None:
        with self._connection(doing) as conn:
            return conn.execute(sql, params).fetchone()

    def _all(self, doing: str, sql: str, params: Any = ()) -> list[tuple[Any, ...]]:
        with self._connection(doing) as conn:
            return conn.execute(sql, params).fetchall()

    def _write(self, doing: str, sql: str, params: Any = ()) -> None:
        with self._connection(doing) as conn:
            conn.execute(sql, params)

    # -- sessions -------------------------------------------------------------------------------
    def get_session(self, session_id: str) -> Session | None:
        row = self._one("read a session", f"SELECT data, updated_at FROM {_S} WHERE session_id = %s", [session_id])
        return self._session(*row) if row else None

    def list_sessions(self, *, user_id: str | None = None, limit: int | None = None, offset: int = 0,
                      sort: str = "updated_at", descending: bool = True) -> list[Session]:
        check_sort(sort)
        where, params = ("WHERE user_id = %s", [user_id]) if user_id is not None else ("", [])
        order = f"{_ORDER[sort]} {'DESC NULLS FIRST' if descending else 'ASC NULLS LAST'}, seq"
        rows = self._all("list sessions", f"SELECT data, updated_at FROM {_S} {where} ORDER BY {order} "
                         "LIMIT %s OFFSET %s", [*params, limit, offset])
        return [self._session(data, updated_at) for data, updated_at in rows]

    def create_session(self, session: Session) -> Session:
        """Insert unless the id exists, in one statement that also returns the stored owner for the check.

        A named session is inserted in a transaction holding its user's naming lock (``_names``), so the name
        it gets is free when it is stored."""
        data = session.to_dict()
        sql = (f"WITH inserted AS ({_INSERT_SESSION} ON CONFLICT (session_id) DO NOTHING RETURNING data, updated_at) "
               f"SELECT data, updated_at, true FROM inserted UNION ALL SELECT data, updated_at, false FROM {_S} "
               "WHERE session_id = %s AND NOT EXISTS (SELECT 1 FROM inserted)")
        with self._connection("create a session") as conn:
            with conn.transaction() if session.session_name else contextlib.nullcontext():
                if session.session_name:
                    data["session_name"] = unique_name(data["session_name"], self._names(conn, session.user_id))
                row = conn.execute(sql, [*_session_row(data), session.session_id]).fetchone()
            if row is None:  # inserted by another writer after this statement's snapshot: read it now
                row = conn.execute(f"SELECT data, updated_at, false FROM {_S} WHERE session_id = %s",
                                   [session.session_id]).fetchone()
        stored = self._session(row[0], row[1])
        if not row[2]:
            check_session_owner(stored.user_id, session.session_id, session.user_id)
        return stored

    def upsert_session(self, session: Session) -> None:
        self._write("store a session", f"{_INSERT_SESSION} ON CONFLICT (session_id) DO UPDATE SET "
                    "user_id = EXCLUDED.user_id, session_name = EXCLUDED.session_name, "
                    "created_at = EXCLUDED.created_at, updated_at = EXCLUDED.updated_at, data = EXCLUDED.data",
                    _session_row(session.to_dict()))

    def update_session(self, session_id: str, *, state_patch: dict[str, Any] | None = None,
                       state_delete: Iterable[str] = (), metadata_patch: dict[str, Any] | None = None,
                       **fields: Any) -> Session:
        """Read with ``FOR UPDATE``, merge (``apply_session_update``), write, in one transaction: concurrent
        writers queue on the row, so each merges over the other's result."""
        with self._connection("update a session") as conn, conn.transaction():
            row = conn.execute(f"SELECT data, updated_at FROM {_S} WHERE session_id = %s FOR UPDATE",
                               [session_id]).fetchone()
            if row is None:
                raise SessionNotFoundError(f"no session {session_id!r} in {self.url}")
            current = row[0]
            current["updated_at"] = row[1]
            data = apply_session_update(current, taken=lambda user: self._names(conn, user, session_id),
                                        state_patch=state_patch, state_delete=state_delete,
                                        metadata_patch=metadata_patch, **fields)
            session = self._load(Session, data, session_id)
            data = session.to_dict()
            conn.execute(f"UPDATE {_S} SET user_id = %s, session_name = %s, created_at = %s, updated_at = %s, "
                         "data = %s::json WHERE session_id = %s", [*_session_row(data)[1:], session_id])
        return session

    @staticmethod
    def _names(conn: psycopg.Connection, user_id: str | None, except_id: str | None = None) -> list[str | None]:
        """Names of the user's sessions, read inside the caller's transaction after taking the user's naming
        lock (held to its commit): a kernel naming a session of the same user meanwhile waits, then sees it."""
        conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", [NAMES_LOCK_KEY, user_id or ""])
        where, params = ("user_id = %s", [user_id]) if user_id is not None else ("user_id IS NULL", [])
        rows = conn.execute(f"SELECT session_name FROM {_S} WHERE {where} AND session_id IS DISTINCT FROM %s",
                            [*params, except_id]).fetchall()
        return [name for (name,) in rows]

    def delete_session(self, session_id: str) -> bool:
        """The session row first (locking out a run being written), then, in a statement that sees what such a
        writer committed, the runs: no run of the session is left behind."""
        with self._connection("delete a session") as conn, conn.transaction():
            row = conn.execute(f"DELETE FROM {_S} WHERE session_id = %s RETURNING 1", [session_id]).fetchone()
            conn.execute(f"DELETE FROM {_R} WHERE session_id = %s", [session_id])
        return row is not None

    # -- runs -----------------------------------------------------------------------------------
    def upsert_run(self, run: RunOutput, *, durable: bool = True) -> None:
        """The run and its session's ``updated_at`` in one statement; ``durable=False`` skips the WAL flush wait."""
        sql = f"WITH run AS ({_UPSERT_RUN}) UPDATE {_S} SET updated_at = %s WHERE session_id = %s"
        params = [*self._run_values(run), now(), run.session_id]
        with self._connection("store a run") as conn:
            if durable:
                conn.execute(sql, params)
                return
            with conn.pipeline(), conn.transaction():  # sent together: one round trip
                conn.execute("SET LOCAL synchronous_commit = off")
                conn.execute(sql, params)

    def upsert_run_if_session(self, run: RunOutput, *, durable: bool = True) -> bool:
        """One statement: bump the session's ``updated_at`` (locking its row) and insert or replace the run only if
        that found the session. A concurrent ``delete_session`` (session row first) waits for it, then deletes the
        run too; or it went first, and this finds no session and stores nothing."""
        params = [now(), run.session_id, *self._run_values(run)]
        with self._connection("store a run") as conn, conn.transaction() if not durable else contextlib.nullcontext():
            if not durable:  # a started run: no wait for the WAL flush, its outcome is written durably
                conn.execute("SET LOCAL synchronous_commit = off")
            return conn.execute(_RUN_IF_SESSION, params).fetchone() is not None

    def claim_run(self, run: RunOutput) -> bool:
        """``UPDATE … WHERE status = 'paused'``: a second continue waits on the row lock, then finds it running
        (the session row locked first, as ``delete_session`` does, so the two never deadlock)."""
        values = self._run_values(run)
        with self._connection("continue a run") as conn, conn.transaction():
            if conn.execute(f"UPDATE {_S} SET updated_at = %s WHERE session_id = %s RETURNING 1",
                            [now(), run.session_id]).fetchone() is None:
                return False
            if conn.execute(f"UPDATE {_R} SET status = %s, metrics = %s::jsonb, data = %s::json "
                            "WHERE run_id = %s AND status = 'paused' RETURNING 1",
                            [*values[4:], run.run_id]).fetchone() is None:
                raise psycopg.Rollback  # not claimed: the session's updated_at stays as it was too
            return True
        return False  # rolled back

    @staticmethod
    def _run_values(run: RunOutput) -> list[Any]:
        return [run.run_id, run.session_id, run.user_id, run.parent_run_id, run.status.value,
                _dumps(run.metrics.to_dict()), _dumps(run.to_dict(history_refs=True))]
    def get_run(self, run_id: str) -> RunOutput | None:
        row = self._one("read a run", f"SELECT data FROM {_R} WHERE run_id = %s", [run_id])
        return self._runs([row[0]])[0] if row else None

    def list_runs(self, session_id: str, *, last: int | None = None, resolve_history: bool = True
                  ) -> list[RunOutput]:
        if last is None:
            rows = self._all("list runs", f"SELECT data FROM {_R} WHERE session_id = %s ORDER BY seq", [session_id])
        elif last <= 0:
            return []
        else:
            rows = self._all("list runs", f"SELECT data FROM {_R} WHERE session_id = %s ORDER BY seq DESC "
                             "LIMIT %s", [session_id, last])[::-1]
        return self._runs([data for (data,) in rows], resolve_history)

    def _runs(self, records: list[dict[str, Any]], resolve_history: bool = True) -> list[RunOutput]:
        """Records to runs, the history they reference fetched in one more query (``runs_from_records``)."""
        try:
            return runs_from_records(records, self._fetch, resolve_history=resolve_history)
        except ValueError as exc:
            raise StorageError(f"PostgreSQL {self.url}: {exc}") from exc

    def _fetch(self, run_ids: set[str]) -> dict[str, dict[str, Any]]:
        rows = self._all("read history", f"SELECT run_id, data FROM {_R} WHERE run_id = ANY(%s)", [list(run_ids)])
        return dict(rows)

    def session_totals(self, session_id: str) -> tuple[int, Metrics]:
        """Counted and summed in the server over the metrics column: one row back, whatever the session holds.

        The rules of ``Metrics.total``: tokens summed, time to first token averaged, durations and costs summed
        over the runs that have them (None when none has). Should ``Metrics`` gain a field this query does not
        know, the runs' metrics are summed here by ``Metrics.total`` instead, so nothing is silently left out.
        """
        if {f.name for f in dataclass_fields(Metrics)} != _METRIC_FIELDS:
            rows = self._all("count runs", f"SELECT status, metrics FROM {_R} "
                             "WHERE session_id = %s AND parent_run_id IS NULL", [session_id])
            done = [Metrics.from_dict(m) for status, m in rows if status == RunStatus.completed.value]
            return len(rows), Metrics.total(done)
        ints = ", ".join(f"coalesce(sum((metrics->>'{name}')::bigint) FILTER (WHERE done), 0)" for name in _TOKENS)
        row = self._one("count runs", f"""
            SELECT count(*), {ints},
                   avg((metrics->>'time_to_first_token')::float8) FILTER (WHERE done),
                   sum((metrics->>'duration')::float8) FILTER (WHERE done),
                   sum((metrics->>'cost')::float8) FILTER (WHERE done),
                   coalesce(bool_or((metrics->>'tokens_estimated')::boolean) FILTER (WHERE done), false)
            FROM (SELECT metrics, status = %s AS done FROM {_R}
                  WHERE session_id = %s AND parent_run_id IS NULL) AS top""",
                        [RunStatus.completed.value, session_id])
        count, *tokens, ttft, duration, cost, estimated = row
        return count, Metrics(*map(int, tokens), time_to_first_token=ttft, duration=duration, cost=cost,
                              tokens_estimated=estimated)

    # -- notebook settings ----------------------------------------------------------------------
    def get_meta(self, key: str, default: Any = None) -> Any:
        row = self._one("read a setting", f"SELECT value FROM {_M} WHERE scope = %s AND key = %s",
                        [self.meta_scope, key])
        return row[0] if row else default

    def set_meta(self, key: str, value: Any) -> None:
        self._write("store a setting", f"INSERT INTO {_M} (scope, key, value) VALUES (%s, %s, %s::json) "
                    "ON CONFLICT (scope, key) DO UPDATE SET value = EXCLUDED.value",
                    [self.meta_scope, key, _dumps(value)])

    # -- changes from other processes -----------------------------------------------------------
    def add_change_listener(self, listener: ChangeListener) -> bool:
        """Call ``listener(event, session_id, user_id)`` when another kernel changes the store (LISTEN/NOTIFY)."""
        self._feed.add(listener)
        return True

    def remove_change_listener(self, listener: ChangeListener) -> None:
        self._feed.remove(listener)

    def close(self) -> None:
        self._feed.close()
        self._conns.close()

    def _session(self, data: dict[str, Any], updated_at: float) -> Session:
        """The stored document with the ``updated_at`` column, which storing a run bumps without a rewrite."""
        data["updated_at"] = updated_at
        return self._load(Session, data, data.get("session_id"))

    def _load(self, cls: type[_Record], data: dict[str, Any], record_id: Any) -> _Record:
        try:
            return cls.from_dict(data)
        except (ValueError, TypeError) as exc:
            raise StorageError(f"PostgreSQL {self.url}: {cls.__name__} {record_id!r} cannot be read: {exc}") from exc
