"""The PostgreSQL schema of nbsessions as named, append-only migrations, applied on first use.

Everything lives in the ``nbsessions`` schema, so a team database shared with other tools keeps its own names.
``nbsessions.schema_version`` records each applied migration by number and name; a kernel that opens the
database applies the missing ones under an advisory lock (two kernels opening a new database at once do it once),
and refuses a database that a newer nbsessions has already migrated further.
Never edit a migration that has shipped: add a new one at the end.

Records are stored as ``json``, not ``jsonb``: ``jsonb`` reorders object keys (a session state would come back
sorted by key length) and refuses ``\u0000``, while ``json`` keeps the text exactly as written and still answers
``->`` / ``->>`` in queries. The columns beside it are what listings filter and sort on; a run's metrics, which
only sums read and whose key order does not matter, are ``jsonb``.
"""

from __future__ import annotations

from typing import Any

from nbsessions.db.migrations import Registry
from nbsessions.errors import StorageError

SCHEMA = "nbsessions"
CHANNEL = "nbsessions"  # LISTEN/NOTIFY channel of change events
_LOCK_KEY = 0x6E627365  # pg_advisory_xact_lock key: "nbse"
NAMES_LOCK_KEY = 0x6E626E6D  # "nbnm", with a hash of the user: naming one user's sessions, one kernel at a time

MIGRATIONS = Registry()
"""The schema's migrations; the number and name of each applied one are rows of ``schema_version``."""


@MIGRATIONS("sessions, runs and meta tables")
def m001_tables(conn: Any) -> None:
    conn.execute(f"""
        CREATE TABLE {SCHEMA}.sessions (
            session_id   text PRIMARY KEY,
            seq          bigserial NOT NULL,          -- insertion order: ties in a listing keep it
            user_id      text,
            session_name text,
            created_at   double precision NOT NULL,
            updated_at   double precision NOT NULL,
            data         json NOT NULL                 -- Session.to_dict(); its updated_at is the column's
        );
        CREATE INDEX sessions_by_user_updated ON {SCHEMA}.sessions (user_id, updated_at DESC);
        CREATE INDEX sessions_by_updated ON {SCHEMA}.sessions (updated_at DESC);
        CREATE TABLE {SCHEMA}.runs (
            run_id        text PRIMARY KEY,
            session_id    text NOT NULL,               -- no foreign key: a run may be stored before its session
            seq           bigserial NOT NULL,          -- storage order within a session; a replace keeps it
            user_id       text,
            parent_run_id text,
            status        text NOT NULL,
            data          json NOT NULL                -- the whole RunOutput.to_dict()
        );
        CREATE INDEX runs_by_session_seq ON {SCHEMA}.runs (session_id, seq);
        CREATE TABLE {SCHEMA}.meta (
            scope text NOT NULL,                       -- whose setting: a notebook (and user) of a shared store
            key   text NOT NULL,
            value json,
            PRIMARY KEY (scope, key)
        );
    """)


@MIGRATIONS("notify listeners of every change")
def m002_notify(conn: Any) -> None:
    conn.execute(f"""
        CREATE FUNCTION {SCHEMA}.notify_change() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            changed record;
        BEGIN
            IF TG_OP = 'DELETE' THEN changed := OLD; ELSE changed := NEW; END IF;
            PERFORM pg_notify('{CHANNEL}', json_build_object(
                'table', TG_TABLE_NAME, 'op', TG_OP, 'session_id', changed.session_id,
                'user_id', changed.user_id, 'origin', current_setting('nbsessions.origin', true))::text);
            RETURN NULL;
        END $$;
        CREATE FUNCTION {SCHEMA}.notify_meta_change() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            changed record;
        BEGIN
            IF TG_OP = 'DELETE' THEN changed := OLD; ELSE changed := NEW; END IF;
            PERFORM pg_notify('{CHANNEL}', json_build_object(
                'table', TG_TABLE_NAME, 'op', TG_OP, 'scope', changed.scope, 'key', changed.key,
                'value', changed.value, 'origin', current_setting('nbsessions.origin', true))::text);
            RETURN NULL;
        END $$;
        CREATE TRIGGER sessions_notify AFTER INSERT OR UPDATE OR DELETE ON {SCHEMA}.sessions
            FOR EACH ROW EXECUTE FUNCTION {SCHEMA}.notify_change();
        CREATE TRIGGER runs_notify AFTER INSERT OR UPDATE OR DELETE ON {SCHEMA}.runs
            FOR EACH ROW EXECUTE FUNCTION {SCHEMA}.notify_change();
        CREATE TRIGGER meta_notify AFTER INSERT OR UPDATE OR DELETE ON {SCHEMA}.meta
            FOR EACH ROW EXECUTE FUNCTION {SCHEMA}.notify_meta_change();
    """)


@MIGRATIONS("runs keep their metrics in a column: session totals read no run bodies")
def m003_metrics_column(conn: Any) -> None:
    conn.execute(f"""
        ALTER TABLE {SCHEMA}.runs ADD COLUMN metrics json;
        UPDATE {SCHEMA}.runs SET metrics = data->'metrics';
    """)


@MIGRATIONS("run metrics as jsonb: summing a session's totals parses each run's metrics once, not once per field")
def m004_metrics_jsonb(conn: Any) -> None:
    conn.execute(f"""
        ALTER TABLE {SCHEMA}.runs ALTER COLUMN metrics TYPE jsonb USING metrics::jsonb;
    """)


def current_version(conn: Any) -> int:
    """The newest migration applied to this database (0: none, not even the version table)."""
    if conn.execute(f"SELECT to_regclass('{SCHEMA}.schema_version')").fetchone()[0] is None:
        return 0
    return conn.execute(f"SELECT coalesce(max(version), 0) FROM {SCHEMA}.schema_version").fetchone()[0]


def _check_not_newer(version: int) -> None:
    if version > len(MIGRATIONS):
        raise StorageError(f"this database is at nbsessions schema version {version}, newer than this "
                           f"nbsessions knows ({len(MIGRATIONS)}): upgrade nbsessions to use it")


def migrate(conn: Any) -> int:
    """Bring the database to the newest schema; returns the version it is at. ``conn`` is a psycopg connection.

    An up-to-date database is only read, so members whose role may not create tables can use one that the
    first (or an admin's) kernel set up.
    """
    version = current_version(conn)
    _check_not_newer(version)
    if version == len(MIGRATIONS):
        return version
    try:
        return _apply_migrations(conn)
    except Exception as exc:
        if getattr(exc, "sqlstate", None) != "42501":  # insufficient_privilege
            raise
        role = conn.execute("SELECT current_user").fetchone()[0]
        pending = MIGRATIONS[version + 1]
        raise MigrationRefused(
            f"the database is at nbsessions schema version {version} and this nbsessions needs "
            f"{len(MIGRATIONS)}, but role {role!r} may not apply migration {pending.number} ({pending.name}): {exc}. "
            "Open it once as a role that may (its owner or an admin), or grant this one CREATE on the database"
        ) from None


def check_readable(conn: Any) -> int:
    """A reader's ``migrate``: the version, never a change. ``NoSchema`` when nbsessions never wrote here, a
    clear refusal when the schema is older than this nbsessions reads (a kernel opening it migrates it)."""
    version = current_version(conn)
    _check_not_newer(version)
    if version == 0:
        raise NoSchema("no nbsessions schema in this database: nothing was stored here yet")
    if version < len(MIGRATIONS):
        raise StorageError(f"the database is at nbsessions schema version {version}, older than this nbsessions "
                           f"reads ({len(MIGRATIONS)}); a reader changes nothing: open it once from a kernel "
                           "(or copy into it) to migrate it")
    return version


class NoSchema(StorageError):
    """A database nbsessions never wrote to (a reader does not create the schema)."""


class MigrationRefused(StorageError):
    """The schema needs a migration that the connected role has no right to run."""


def _apply_migrations(conn: Any) -> int:
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK_KEY])
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
        conn.execute(f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.schema_version (
                             version    integer PRIMARY KEY,
                             name       text NOT NULL,
                             applied_at timestamptz NOT NULL DEFAULT now())""")
        version = current_version(conn)  # another kernel may have migrated while we waited for the lock
        _check_not_newer(version)
        for step in MIGRATIONS.after(version):
            step.apply(conn)
            conn.execute(f"INSERT INTO {SCHEMA}.schema_version (version, name) VALUES (%s, %s)",
                         [step.number, step.name])
    return len(MIGRATIONS)
