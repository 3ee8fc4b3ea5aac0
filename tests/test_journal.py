"""The journal file: persistence, format, damage handling, compaction and TinyDB's own API on top of it."""

from __future__ import annotations

import json
import os
import stat
import threading
import warnings

import pytest
from tinydb import Query

from nbsessions.db import TinyDb
from nbsessions.db.journal import JournalStorage
from nbsessions.db.journal_format import FORMAT_VERSION
from nbsessions.db.lockfile import lock_path
from nbsessions.errors import CorruptDatabaseError, StorageError
from nbsessions.schema import Message, Metrics, RunOutput, RunStatus, Session


@pytest.fixture
def path(tmp_path):
    return tmp_path / "sessions.json"


def fill(db: TinyDb, runs: int = 5) -> Session:
    session = Session(session_name="s", session_state={"k": [1, 2]})
    db.upsert_session(session)
    for i in range(runs):
        db.upsert_run(RunOutput(session_id=session.session_id, run_id=f"run-{i}", content=f"reply {i}",
                                status=RunStatus.completed, messages=[Message(role="user", content=f"q{i}")],
                                metrics=Metrics(input_tokens=i)))
    return session


def lines(path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


# -- persistence and format -----------------------------------------------------------------------
def test_reopening_the_file_gives_the_same_data(path):
    with TinyDb(path) as db:
        session = fill(db)
        db.set_meta("active", {"nb": session.session_id})
        gone = Session()
        db.upsert_session(gone)
        db.upsert_run(RunOutput(session_id=gone.session_id))
        db.delete_session(gone.session_id)
        db.update_session(session.session_id, state_patch={"x": 1})
        before = (db.get_session(session.session_id), db.list_runs(session.session_id))
    with TinyDb(path) as db:
        assert (db.get_session(session.session_id), db.list_runs(session.session_id)) == before
        assert db.get_meta("active") == {"nb": session.session_id}
        assert [s.session_id for s in db.list_sessions()] == [session.session_id]
        assert [r.content for r in db.list_runs(session.session_id, last=2)] == ["reply 3", "reply 4"]


def test_new_files_are_private_to_the_user(path):
    with TinyDb(path) as db:
        fill(db)
        db.compact()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(lock_path(path)).st_mode) == 0o600


def test_first_line_is_a_header_with_the_format_version(path):
    with TinyDb(path) as db:
        fill(db, runs=1)
    header = json.loads(lines(path)[0])
    assert header["nbsessions"] == FORMAT_VERSION == 3
    assert header["format"] == "journal"
    assert all(json.loads(line)["t"] in ("sessions", "runs") for line in lines(path)[1:])


def test_a_file_from_a_newer_version_is_refused_untouched(path):
    path.write_text(json.dumps({"nbsessions": FORMAT_VERSION + 1}) + "\n" + '{"t":"x","id":"1","new":1}\n')
    before = path.read_bytes()
    with pytest.raises(StorageError, match=rf"newer nbsessions \(format {FORMAT_VERSION + 1}.*Upgrade nbsessions"):
        TinyDb(path)
    assert path.read_bytes() == before


def test_a_plain_tinydb_file_is_refused_untouched(path):
    path.write_text('{"_default": {"1": {"a": 1}}}')
    with pytest.raises(StorageError, match="not an nbsessions database.*plain TinyDB"):
        TinyDb(path)
    assert path.read_text() == '{"_default": {"1": {"a": 1}}}'


def test_an_empty_file_becomes_a_journal(path):
    path.touch()
    with TinyDb(path) as db:
        fill(db, runs=1)
    with TinyDb(path) as db:
        assert len(db.list_sessions()) == 1
    assert json.loads(lines(path)[0])["nbsessions"] == FORMAT_VERSION


def test_a_write_appends_only_the_changed_document(path):
    with TinyDb(path) as db:
        session = fill(db, runs=50)
        before = path.read_bytes()
        run = RunOutput(session_id=session.session_id, content="new")
        db.upsert_run(run)
        after = path.read_bytes()
    assert after.startswith(before)
    added = after[len(before):].splitlines()
    assert len(added) == 2  # the run, and its session's new updated_at, in one append
    record, touched = map(json.loads, added)
    assert (record["t"], record["id"], record["g"], record["doc"]) == ("runs", run.run_id, session.session_id,
                                                                       run.to_dict())
    assert (touched["t"], touched["id"]) == ("sessions", session.session_id)
    assert list(touched["upd"]) == ["set"] and touched["upd"]["set"]["updated_at"] > session.updated_at


def test_an_unstorable_value_raises_and_writes_nothing(path):
    with TinyDb(path) as db:
        before = path.read_bytes()
        with pytest.raises(StorageError, match="cannot store meta/k"):
            db.set_meta("k", {1, 2})
        with pytest.raises(StorageError, match="cannot store meta/nan"):
            db.set_meta("nan", float("nan"))
        assert db.get_meta("k") is None
    assert path.read_bytes() == before


def test_a_bad_record_names_the_file_and_the_id(path):
    with open(path, "w") as f:
        f.write(json.dumps({"nbsessions": 1}) + "\n")
        f.write(json.dumps({"t": "runs", "id": "r1", "doc": {"content": "no ids"}}) + "\n")
    with TinyDb(path) as db, pytest.raises(StorageError, match=r"sessions.json: RunOutput 'r1'.*missing run_id"):
        db.get_run("r1")


def test_a_closed_db_refuses_work(path):
    db = TinyDb(path)
    db.close()
    with pytest.raises(StorageError, match="closed"):
        db.get_session("x")


# -- damage ---------------------------------------------------------------------------------------
def test_a_torn_last_line_is_skipped_with_a_warning_and_cut_by_the_next_write(path):
    with TinyDb(path) as db:
        session = fill(db, runs=3)
    torn = b'{"t":"runs","id":"run-9","doc":{"run_id":"run-9","sess'
    with open(path, "ab") as f:
        f.write(torn)
    with pytest.warns(RuntimeWarning, match="incomplete last line"), TinyDb(path) as db:
        assert [r.run_id for r in db.list_runs(session.session_id)] == ["run-0", "run-1", "run-2"]
        assert db.get_run("run-9") is None
        db.upsert_run(RunOutput(session_id=session.session_id, run_id="run-3"))
    assert torn not in path.read_bytes()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with TinyDb(path) as db:
            assert [r.run_id for r in db.list_runs(session.session_id)] == ["run-0", "run-1", "run-2", "run-3"]


def test_a_garbled_complete_last_line_is_damage_and_the_file_is_left_alone(path):
    with TinyDb(path) as db:
        fill(db, runs=2)
    with open(path, "ab") as f:
        f.write(b"\x00\x00\x00garbage\n")
    before = path.read_bytes()
    with pytest.raises(CorruptDatabaseError, match=r"line \d+ is damaged.*left untouched"):
        TinyDb(path)
    assert path.read_bytes() == before


def test_a_bit_flip_in_the_last_complete_line_keeps_the_confirmed_write(path):
    """A confirmed state update is the last line; one flipped bit in it must not make the next open cut it off."""
    with TinyDb(path) as db:
        session = fill(db, runs=2)
        db.update_session(session.session_id, state_patch={"confirmed": "yes"})
    data = bytearray(path.read_bytes())
    at = data.rindex(b"confirmed")
    data[at] ^= 0x01  # "confirmed" -> "bonfirmed": still JSON, the checksum no longer matches
    path.write_bytes(bytes(data))
    before = path.read_bytes()
    for _ in range(2):  # neither opening nor trying again writes anything
        with pytest.raises(CorruptDatabaseError, match=r"line \d+ is damaged \(checksum mismatch\).*left untouched"):
            TinyDb(path)
    assert path.read_bytes() == before


@pytest.mark.parametrize("garbage", [b'{"t":"runs","id":"run-1","doc":{"run_', b"not json", b'{"t": 1}', b"[]"])
def test_damage_before_the_last_line_stops_with_file_and_line_and_leaves_the_file_alone(path, garbage):
    with TinyDb(path) as db:
        fill(db, runs=4)
    damaged = lines(path)
    damaged[3] = garbage + b"\n"  # line 4: the header, the session, run-0, then this
    path.write_bytes(b"".join(damaged))
    before = path.read_bytes()
    with pytest.raises(CorruptDatabaseError, match=rf"{path}: line 4 is damaged.*left untouched"):
        TinyDb(path)
    assert path.read_bytes() == before


def _line_of(records: list[bytes], needle: bytes) -> int:
    return next(i for i, line in enumerate(records) if needle in line)


def test_a_changed_byte_inside_a_stored_document_fails_its_checksum(path):
    with TinyDb(path) as db:
        fill(db, runs=4)
    damaged = lines(path)
    i = _line_of(damaged, b'"id":"run-1"')
    damaged[i] = damaged[i].replace(b"reply 1", b"reply X")  # same length, still valid JSON
    path.write_bytes(b"".join(damaged))
    before = path.read_bytes()
    with pytest.raises(CorruptDatabaseError, match=f"line {i + 1} is damaged \\(checksum mismatch\\)"):
        TinyDb(path)
    assert path.read_bytes() == before


def test_a_changed_byte_in_a_record_head_fails_its_checksum(path):
    with TinyDb(path) as db:
        fill(db, runs=4)
    damaged = lines(path)
    i = _line_of(damaged, b'"id":"run-1"')
    damaged[i] = damaged[i].replace(b'"id":"run-1"', b'"id":"run-7"')
    path.write_bytes(b"".join(damaged))
    with pytest.raises(CorruptDatabaseError, match=f"line {i + 1} is damaged \\(checksum mismatch\\)"):
        TinyDb(path)


def test_ids_and_keys_that_need_escaping_survive_a_reopen(path):
    odd = 'quote " backslash \\ newline \n tab \t é 🙂'
    with TinyDb(path) as db:
        db.upsert_session(Session(session_id=odd, session_name=odd))
        db.upsert_run(RunOutput(session_id=odd, run_id=odd + "-run", content=odd))
        db.set_meta(odd, odd)
        db.set_meta("gone " + odd, 1)
        db.set_meta("gone " + odd, 2)
    assert len(lines(path)) == 7  # no raw newline leaked into a record (the run also touched its session)
    with TinyDb(path) as db:
        assert db.get_session(odd).session_name == odd
        assert [r.content for r in db.list_runs(odd)] == [odd]
        assert (db.get_meta(odd), db.get_meta("gone " + odd)) == (odd, 2)
        assert db.delete_session(odd)
    with TinyDb(path) as db:
        assert db.get_session(odd) is None and db.get_run(odd + "-run") is None


def test_records_written_by_hand_without_checksum_are_read_and_indexed(path):
    with TinyDb(path) as db:
        session = fill(db, runs=1)
    run = RunOutput(session_id=session.session_id, run_id="by-hand", content="typed in")
    with open(path, "a") as f:
        f.write(json.dumps({"doc": run.to_dict(), "id": "by-hand", "t": "runs"}) + "\n")
        f.write(json.dumps({"t": "runs", "id": "run-0", "del": True}) + "\n")
    with TinyDb(path) as db:
        assert [(r.run_id, r.content) for r in db.list_runs(session.session_id)] == [("by-hand", "typed in")]


def test_damage_appended_by_another_writer_stops_an_open_db(path):
    with TinyDb(path) as db:
        session = fill(db, runs=1)
        with open(path, "ab") as f:
            f.write(b"oops\n" + lines(path)[-1])
        before = path.read_bytes()
        with pytest.raises(CorruptDatabaseError, match="line 5 is damaged"):  # header, session, run, session
            db.list_runs(session.session_id)
        with pytest.raises(CorruptDatabaseError):
            db.upsert_run(RunOutput(session_id=session.session_id))
    assert path.read_bytes() == before


# -- compaction -----------------------------------------------------------------------------------
def test_compaction_keeps_only_live_documents_in_order(path):
    with TinyDb(path, compact_min_lines=30) as db:
        session = fill(db, runs=10)
        for round_ in range(3):
            for i in range(10):
                db.upsert_run(RunOutput(session_id=session.session_id, run_id=f"run-{i}", content=f"v{round_}"))
        # 1 session + 40 run lines > max(30, 2 x 11 live docs): compacted on the way
        assert len(lines(path)) < 30
        expected = db.list_runs(session.session_id)
    assert [r.run_id for r in expected] == [f"run-{i}" for i in range(10)]
    assert {r.content for r in expected} == {"v2"}
    with TinyDb(path) as db:
        assert db.list_runs(session.session_id) == expected
        assert db.get_session(session.session_id).session_state == {"k": [1, 2]}


def test_compaction_replaces_the_file_atomically_and_leaves_no_temp(path, tmp_path):
    with TinyDb(path) as db:
        session = fill(db, runs=3)
        ino = os.stat(path).st_ino
        db.compact()
        assert os.stat(path).st_ino != ino
        assert len(lines(path)) == 1 + 1 + 3
        db.upsert_run(RunOutput(session_id=session.session_id, run_id="run-3"))
    assert sorted(os.listdir(tmp_path)) == [".sessions.json.lock", "sessions.json"]  # the lock is a dot-file
    with TinyDb(path) as db:
        assert len(db.list_runs(session.session_id)) == 4


# -- cost: reads touch only what they return ------------------------------------------------------
def test_list_runs_last_n_builds_only_n_runs(path, monkeypatch):
    with TinyDb(path) as db:
        session = fill(db, runs=200)
        built = []
        original = RunOutput.from_dict.__func__
        monkeypatch.setattr(RunOutput, "from_dict",
                            classmethod(lambda cls, d, *a: built.append(d) or original(cls, d, *a)))
        assert [r.run_id for r in db.list_runs(session.session_id, last=3)] == ["run-197", "run-198", "run-199"]
        assert len(built) == 3


def test_opening_parses_no_run_until_it_is_read(path, monkeypatch):
    with TinyDb(path) as db:
        session = fill(db, runs=50)
    parsed = []
    original = JournalStorage._parse
    monkeypatch.setattr(JournalStorage, "_parse", lambda self, name, doc_id, lazy: parsed.append(name) or
                        original(self, name, doc_id, lazy))
    with TinyDb(path) as db:
        assert len(db.list_sessions()) == 1
        assert parsed == ["sessions"]
        assert len(db.list_runs(session.session_id, last=2)) == 2
        assert parsed == ["sessions", "runs", "runs"]


def test_listing_sessions_and_totals_build_no_runs(path, monkeypatch):
    with TinyDb(path) as db:
        session = fill(db, runs=5)

        def forbidden(cls, data):
            raise AssertionError("a run object was built")

        monkeypatch.setattr(RunOutput, "from_dict", classmethod(forbidden))
        assert [s.session_id for s in db.list_sessions()] == [session.session_id]
        count, metrics = db.session_totals(session.session_id)
        assert (count, metrics.input_tokens) == (5, 0 + 1 + 2 + 3 + 4)


# -- TinyDB's own API on the same file ------------------------------------------------------------
def test_tinydb_api_reads_and_writes_the_same_documents(path):
    with TinyDb(path) as db:
        session = fill(db, runs=5)
        runs = db.tinydb.table("runs")
        assert len(runs) == 5
        assert runs.get(doc_id="run-2")["content"] == "reply 2"
        assert [d.doc_id for d in runs.search(Query().content == "reply 3")] == ["run-3"]
        before = len(lines(path))
        assert runs.update({"content": "edited"}, Query().content == "reply 3") == ["run-3"]
        assert len(lines(path)) == before + 1  # only the changed document was appended
        assert db.get_run("run-3").content == "edited"
        notes = db.tinydb.table("notes")
        ids = notes.insert_multiple([{"n": 1}, {"n": 2}])
        assert all(isinstance(i, str) and len(i) == 36 for i in ids)  # uuids, never 1, 2, 3
        notes.remove(Query().n == 1)
        runs.search(Query().content == "edited")[0]["content"] = "mutated copy"
        assert db.get_run("run-3").content == "edited"
    with TinyDb(path) as db:
        assert [d["n"] for d in db.tinydb.table("notes").all()] == [2]
        assert [r.content for r in db.list_runs(session.session_id)][3] == "edited"
        db.tinydb.drop_table("notes")
        assert "notes" not in db.tinydb.tables()
    with TinyDb(path) as db:
        assert db.tinydb.table("notes").all() == []


def test_tinydb_query_cache_sees_writes_from_another_handle(path):
    with TinyDb(path) as a, TinyDb(path) as b:
        session = fill(a, runs=2)
        table = b.tinydb.table("runs")
        assert len(table.search(Query().status == "completed")) == 2
        a.upsert_run(RunOutput(session_id=session.session_id, status=RunStatus.completed))
        assert len(table.search(Query().status == "completed")) == 3


def test_storage_works_as_a_plain_tinydb_storage(path):
    from tinydb import TinyDB

    with TinyDB(path, storage=JournalStorage) as tdb:  # stock Table: whole-dict writes, diffed into records
        tdb.insert({"a": 1})
        tdb.update({"a": 2})
        assert [dict(d) for d in tdb.all()] == [{"a": 2}]
    assert len(lines(path)) == 3
    with TinyDB(path, storage=JournalStorage) as tdb:
        assert [dict(d) for d in tdb.all()] == [{"a": 2}]


# -- threads --------------------------------------------------------------------------------------
def test_threads_writing_at_once_lose_nothing(path):
    with TinyDb(path) as db:
        session = Session()
        db.upsert_session(session)
        start = threading.Barrier(4)

        def write(tag: str) -> None:
            start.wait()
            for i in range(25):
                db.upsert_run(RunOutput(session_id=session.session_id, run_id=f"{tag}-{i:02d}"))
                db.update_session(session.session_id, state_patch={f"{tag}-{i}": i})

        threads = [threading.Thread(target=write, args=(t,)) for t in "abcd"]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        ids = [r.run_id for r in db.list_runs(session.session_id)]
        assert len(db.get_session(session.session_id).session_state) == 100
    for tag in "abcd":
        assert [i for i in ids if i.startswith(tag)] == [f"{tag}-{i:02d}" for i in range(25)]
    with TinyDb(path) as db:
        assert [r.run_id for r in db.list_runs(session.session_id)] == ids
