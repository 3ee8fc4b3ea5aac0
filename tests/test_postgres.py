"""PostgreSQL store: schema, secrets, atomic writes, and several kernels (real processes) on one real server.

The contract every store keeps is in test_db_contract.py (which runs on PostgreSQL too); this file checks what only
a shared server brings. The server is started by the ``postgres_server`` fixture (conftest.py, pg_server.py).
"""

from __future__ import annotations

import queue
import threading

import psycopg
import pytest
from journal_worker import payload
from pg_server import PASSWORD, PASSWORD_USER
from worker_protocol import Worker

from nbsessions.db.postgres import PostgresDb
from nbsessions.db.postgres_schema import MIGRATIONS
from nbsessions.db.urls import mask_url
from nbsessions.errors import SessionAccessError, StorageError
from nbsessions.schema import RunOutput, RunStatus, Session

pytestmark = pytest.mark.postgres

WAIT = 30  # seconds a test waits for another process before failing (never a sleep: it returns at once when done)


@pytest.fixture
def pg(postgres_url):
    with PostgresDb(postgres_url) as store:
        yield store


@pytest.fixture
def fresh_url(postgres_server):
    """A database nothing has touched yet (no nbsessions schema)."""
    url, name = postgres_server.create_database()
    yield url
    postgres_server.drop_database(name)


# -- schema ---------------------------------------------------------------------------------------
def versions(url: str) -> list[tuple[int, str]]:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT version, name FROM nbsessions.schema_version ORDER BY version").fetchall()


def test_schema_is_created_on_first_use_and_each_migration_recorded_once(fresh_url):
    with psycopg.connect(fresh_url) as conn:
        assert conn.execute("SELECT to_regclass('nbsessions.sessions')").fetchone()[0] is None
    with PostgresDb(fresh_url) as db:
        db.upsert_session(Session(session_name="first"))
    expected = [(m.number, m.name) for m in MIGRATIONS]
    assert versions(fresh_url) == expected
    with PostgresDb(fresh_url) as db:  # opening again applies nothing twice and keeps the data
        assert [s.session_name for s in db.list_sessions()] == ["first"]
    assert versions(fresh_url) == expected


def test_a_database_of_an_older_schema_is_migrated_with_its_data(fresh_url):
    from nbsessions.schema import Metrics

    with PostgresDb(fresh_url) as db:
        session = Session()
        db.upsert_session(session)
        db.upsert_run(RunOutput(session_id=session.session_id, status=RunStatus.completed,
                                metrics=Metrics(input_tokens=7, output_tokens=3, total_tokens=10)))
    with psycopg.connect(fresh_url) as conn:  # as version 2 left it: no metrics column yet
        conn.execute("ALTER TABLE nbsessions.runs DROP COLUMN metrics")
        conn.execute("DELETE FROM nbsessions.schema_version WHERE version > 2")
    with PostgresDb(fresh_url) as db:
        count, totals = db.session_totals(session.session_id)
    assert (count, totals.input_tokens, totals.output_tokens) == (1, 7, 3)
    assert [v for v, _ in versions(fresh_url)] == list(range(1, len(MIGRATIONS) + 1))


def test_kernels_opening_a_new_database_at_once_migrate_it_once(fresh_url):
    errors: list[BaseException] = []
    stores: list[PostgresDb] = []
    start = threading.Barrier(4)

    def open_store() -> None:
        start.wait()
        try:
            stores.append(PostgresDb(fresh_url))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_store) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for store in stores:
        store.close()
    assert errors == [] and len(stores) == 4
    assert len(versions(fresh_url)) == len(MIGRATIONS)


def test_a_database_from_a_newer_nbsessions_is_refused_untouched(fresh_url):
    PostgresDb(fresh_url).close()
    with psycopg.connect(fresh_url) as conn:
        conn.execute("INSERT INTO nbsessions.schema_version (version, name) VALUES (99, 'from the future')")
    with pytest.raises(StorageError, match="newer than this nbsessions knows.*upgrade nbsessions"):
        PostgresDb(fresh_url)
    assert versions(fresh_url)[-1] == (99, "from the future")


def test_a_member_role_without_create_rights_uses_a_database_set_up_by_another(postgres_server, fresh_url):
    PostgresDb(fresh_url).close()  # the first kernel (or an admin) creates the schema
    dbname = fresh_url.split("/")[3].split("?")[0]
    postgres_server.admin("DO $$ BEGIN CREATE ROLE member LOGIN PASSWORD 'member-pass'; "
                          "EXCEPTION WHEN duplicate_object THEN NULL; END $$")
    with psycopg.connect(fresh_url, autocommit=True) as conn:
        conn.execute(GRANTS)
    with PostgresDb(postgres_server.url(dbname, user="member", password="member-pass")) as db:
        session = db.create_session(Session(user_id="member", session_state={"a": 1}))
        db.upsert_run(RunOutput(session_id=session.session_id, user_id="member"))
        assert db.update_session(session.session_id, state_patch={"b": 2}).session_state == {"a": 1, "b": 2}
        assert len(db.list_runs(session.session_id)) == 1
    with psycopg.connect(fresh_url, autocommit=True) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("SET ROLE member; CREATE TABLE nbsessions.other (x int)")


GRANTS = """REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA nbsessions TO member;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA nbsessions TO member;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA nbsessions TO member"""  # what README's "Sharing sessions" section lists


# -- secrets --------------------------------------------------------------------------------------
def test_the_password_is_masked_in_repr_path_and_errors(postgres_server, postgres_url):
    dbname = postgres_url.split("/")[3].split("?")[0]
    good = postgres_server.url(dbname, user=PASSWORD_USER, password=PASSWORD)
    with PostgresDb(good) as db:  # the password works...
        db.set_meta("k", 1)
        shown = [repr(db), str(db.path), db.url]
        assert all(PASSWORD not in text and "***" in text for text in shown), shown
    wrong = postgres_server.url(dbname, user=PASSWORD_USER, password="wrong-" + PASSWORD)
    with pytest.raises(StorageError) as info:
        PostgresDb(wrong, timeout=2)
    message = str(info.value)
    assert "password authentication failed" in message and "\n" not in message
    assert "wrong-" not in message and PASSWORD not in message and "***" in message
    assert PASSWORD not in repr(info.value) and info.value.__cause__ is None  # no chained driver error


def test_mask_url_covers_every_place_a_password_can_be():
    assert mask_url("postgresql://ann:s3cr%40t@db.example:5432/team") == "postgresql://ann:***@db.example:5432/team"
    assert mask_url("postgresql://ann@/team?host=/run/pg&password=s3cret") == \
        "postgresql://ann@/team?host=/run/pg&password=***"
    assert mask_url("host=db user=ann password='s e c' dbname=x") == "host=db user=ann password=*** dbname=x"
    assert mask_url("postgresql://ann@db/team") == "postgresql://ann@db/team"


def test_a_server_that_is_down_is_one_clear_line(postgres_server):
    url = postgres_server.url("postgres", user=PASSWORD_USER, password=PASSWORD).replace(
        str(postgres_server.socket_dir).replace("/", "%2F"), "%2Fnonexistent")
    with pytest.raises(StorageError) as info:
        PostgresDb(url, timeout=1)
    message = str(info.value)
    assert message.startswith("PostgreSQL postgresql://ann:***@/postgres?host=%2Fnonexistent: cannot open: ")
    assert "No such file or directory" in message and "\n" not in message and PASSWORD not in message


# -- atomic writes --------------------------------------------------------------------------------
def test_create_session_races_have_one_winner_and_the_owner_check_holds(pg):
    session_id = "shared-id"
    results: list[object] = []
    start = threading.Barrier(8)

    def create(user: str) -> None:
        start.wait()
        try:
            results.append(pg.create_session(Session(session_id=session_id, user_id=user, session_name=user)))
        except SessionAccessError as exc:
            results.append(exc)

    threads = [threading.Thread(target=create, args=(f"user{i % 2}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stored = pg.get_session(session_id)
    winners = [r for r in results if isinstance(r, Session)]
    refused = [r for r in results if isinstance(r, SessionAccessError)]
    assert len(winners) == 4 and len(refused) == 4  # the owner's four get the stored one, the others are refused
    assert all(w == stored and w.user_id == stored.user_id for w in winners)
    assert stored.session_name == stored.user_id  # written once, by its owner
    assert pg.create_session(Session(session_id=session_id)) == stored  # no user: the stored one, unchanged


def test_session_totals_summed_in_sql_equal_metrics_total(pg, monkeypatch):
    import random

    from nbsessions.db import postgres
    from nbsessions.schema import Metrics

    rng = random.Random(7)
    session = Session()
    pg.upsert_session(session)
    runs = []
    for i in range(60):
        metrics = Metrics(input_tokens=rng.randint(0, 999), output_tokens=rng.randint(0, 99),
                          total_tokens=rng.randint(0, 1099), cached_tokens=rng.randint(0, 9),
                          reasoning_tokens=rng.randint(0, 9), tokens_estimated=i == 17,
                          time_to_first_token=rng.choice([None, rng.random()]),
                          duration=rng.choice([None, rng.random() * 5]), cost=rng.choice([None, rng.random()]))
        run = RunOutput(session_id=session.session_id, metrics=metrics, parent_run_id="p" if i % 7 == 0 else None,
                        status=rng.choice([RunStatus.completed, RunStatus.completed, RunStatus.error]))
        pg.upsert_run(run)
        runs.append(run)
    top = [r for r in runs if r.parent_run_id is None]
    expected = Metrics.total([r.metrics for r in top if r.status == RunStatus.completed])
    in_sql = pg.session_totals(session.session_id)
    monkeypatch.setattr(postgres, "_METRIC_FIELDS", set())  # as if Metrics had grown a field the SQL lacks
    in_python = pg.session_totals(session.session_id)
    for count, metrics in (in_sql, in_python):
        assert count == len(top)
        for name, value in vars(expected).items():
            assert getattr(metrics, name) == (pytest.approx(value) if value is not None else None), name
    assert in_sql[1].tokens_estimated == any(r.metrics.tokens_estimated for r in top
                                             if r.status == RunStatus.completed)


def test_four_processes_store_250_runs_each_and_none_is_lost(postgres_url, pg):
    session = Session(user_id="ann")
    pg.upsert_session(session)
    kernels = [Worker("journal_worker.py", postgres_url) for _ in range(4)]  # all connected before any writes
    try:
        for kernel, tag in zip(kernels, "abcd", strict=True):
            kernel.send(cmd="stream", session=session.session_id, tag=tag, n=250,
                        stages=["running", "completed"])
        confirmed = [kernel.read_until_done() for kernel in kernels]
    finally:
        for kernel in kernels:
            kernel.close()
    runs = pg.list_runs(session.session_id)
    assert len(runs) == 1000 and len({r.run_id for r in runs}) == 1000
    for tag, expected in zip("abcd", confirmed, strict=True):
        mine = [r for r in runs if r.run_id.startswith(tag)]
        assert [r.run_id for r in mine] == expected  # each process's runs in the order it stored them
        assert all(r.status == RunStatus.completed and r.content == payload(r.run_id, i, 200)
                   for i, r in enumerate(mine))
    assert pg.session_totals(session.session_id)[0] == 1000


def test_state_patches_from_two_processes_all_survive(postgres_url, pg):
    session = Session(session_state={"kept": True})
    pg.upsert_session(session)
    kernels = [Worker("journal_worker.py", postgres_url), Worker("journal_worker.py", postgres_url)]
    try:
        for kernel, tag in zip(kernels, "ab", strict=True):
            kernel.send(cmd="patch", session=session.session_id, tag=tag, n=150)
        assert [kernel.read() for kernel in kernels] == [{"done": 150}] * 2
    finally:
        for kernel in kernels:
            kernel.close()
    expected = {"kept": True, **{f"{tag}-{i}": i for tag in "ab" for i in range(150)}}
    assert pg.get_session(session.session_id).session_state == expected


# -- changes reach other kernels ------------------------------------------------------------------
def test_another_process_hears_each_change_as_it_is_committed(postgres_url, pg):
    kernel = Worker("journal_worker.py", postgres_url)
    try:
        assert kernel.call(cmd="listen") == {"listening": True}
        session = Session(user_id="ann")
        pg.upsert_session(session)
        assert kernel.read() == {"event": "session", "session": session.session_id, "user": "ann"}
        pg.upsert_run(RunOutput(session_id=session.session_id, user_id="ann"))
        # the run and its session's updated_at are one statement: both rows notify
        assert {kernel.read()["event"], kernel.read()["event"]} == {"run", "session"}
        pg.update_session(session.session_id, state_patch={"a": 1})
        assert kernel.read()["event"] == "session"
        pg.delete_session(session.session_id)
        events = {kernel.read()["event"], kernel.read()["event"]}
        assert events == {"run", "deleted"}
    finally:
        kernel.close()


def test_a_store_does_not_hear_its_own_writes(postgres_url, pg):
    heard: queue.Queue[tuple[str, str, str | None]] = queue.Queue()
    pg.add_change_listener(lambda *event: heard.put(event))
    with PostgresDb(postgres_url) as other:
        mine, theirs = Session(session_name="mine"), Session(session_name="theirs", user_id="bob")
        pg.upsert_session(mine)
        other.upsert_session(theirs)
        # notifications arrive in commit order: had our own write been delivered, it would come first
        assert heard.get(timeout=WAIT) == ("session", theirs.session_id, "bob")


def test_listening_survives_a_server_restart(postgres_url, postgres_server, pg):
    heard: queue.Queue[tuple[str, str, str | None]] = queue.Queue()
    pg.add_change_listener(lambda *event: heard.put(event))
    postgres_server.restart()
    # back on its own: first a change of unknown session (what happened meanwhile is lost), then live changes
    assert heard.get(timeout=WAIT) == ("session", "", None)
    with PostgresDb(postgres_url) as other:
        session = Session(user_id="bob")
        other.upsert_session(session)
    assert heard.get(timeout=WAIT) == ("session", session.session_id, "bob")
