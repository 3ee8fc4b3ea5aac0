"""Migrations are named functions in one registry per store: numbered in order, each applied once."""

import json

import pytest

from nbsessions import Session, TinyDb
from nbsessions.db import journal_migrations, postgres_schema
from nbsessions.db.journal_format import FORMAT_VERSION

SHIPPED_POSTGRES = [  # rows of nbsessions.schema_version in every database out there: never renamed
    "sessions, runs and meta tables",
    "notify listeners of every change",
    "runs keep their metrics in a column: session totals read no run bodies",
    "run metrics as jsonb: summing a session's totals parses each run's metrics once, not once per field",
]


@pytest.mark.parametrize("registry", [postgres_schema.MIGRATIONS, journal_migrations.MIGRATIONS],
                         ids=["postgres", "journal"])
def test_each_registry_is_numbered_in_order_with_unique_names(registry):
    steps = list(registry)
    assert [m.number for m in steps] == list(range(1, len(steps) + 1)) and steps
    assert [m.apply.__name__[:5] for m in steps] == [f"m{m.number:03d}_" for m in steps]
    assert len({m.name for m in steps}) == len({m.apply for m in steps}) == len(steps)
    assert registry.after(len(steps)) == [] and registry.after(0) == steps


def test_shipped_migrations_keep_their_numbers_and_names():
    assert [(m.number, m.name) for m in postgres_schema.MIGRATIONS] == list(enumerate(SHIPPED_POSTGRES, 1))
    assert FORMAT_VERSION == 1 + journal_migrations.MIGRATIONS.latest == 3


def test_a_journal_gets_only_the_migrations_its_format_lacks():
    names = [m.name for m in journal_migrations.MIGRATIONS]
    assert journal_migrations.migrate({"nbsessions": 1}, {}) == names
    assert journal_migrations.migrate({"nbsessions": 2}, {}) == names[1:]
    assert journal_migrations.migrate({"nbsessions": FORMAT_VERSION}, {}) == []
    assert journal_migrations.migrate(None, {}) == []  # a new file, its header not read yet


def test_a_format_1_journal_is_migrated_once_on_its_first_write(tmp_path):
    path = tmp_path / "old.json"
    with TinyDb(path) as db:
        session = db.create_session(Session(session_name="old", session_state={"k": 1}))
    lines = path.read_bytes().split(b"\n", 1)
    path.write_bytes(json.dumps({**json.loads(lines[0]), "nbsessions": 1}).encode() + b"\n" + lines[1])
    with TinyDb(path) as db:
        db.update_session(session.session_id, state_patch={"k": 2})
    header = path.read_bytes().split(b"\n", 1)[0]
    assert json.loads(header)["nbsessions"] == FORMAT_VERSION and "compacted_at" in json.loads(header)
    migrated = path.read_bytes()
    with TinyDb(path) as db:  # current now: a write appends, it migrates and compacts nothing again
        db.update_session(session.session_id, state_patch={"k": 3})
        assert db.get_session(session.session_id).session_state == {"k": 3}
    assert path.read_bytes().startswith(migrated)
