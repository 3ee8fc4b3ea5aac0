"""Run bodies stay in the file: opening costs memory by the number of documents, reads come from the file."""

from __future__ import annotations

import os
import sys
import tracemalloc

import pytest

from nbsessions.db import TinyDb
from nbsessions.records.schema import Message, Metrics, RunOutput, RunStatus, Session


@pytest.fixture
def path(tmp_path):
    return tmp_path / "sessions.json"


def big_file(path, runs: int = 400, size: int = 20_000) -> list[str]:
    with TinyDb(path) as db:
        session = Session(session_name="big")
        db.upsert_session(session)
        db.tinydb.storage.commit(
            ("runs", f"run-{i}", RunOutput(session_id=session.session_id, run_id=f"run-{i}", content="x" * size,
                                           status=RunStatus.completed, metrics=Metrics(input_tokens=i),
                                           messages=[Message("user", f"q{i}")]).to_dict(history_refs=True))
            for i in range(runs))
    return [session.session_id]


def test_opening_a_file_keeps_no_run_bodies_in_memory(path):
    (sid,) = big_file(path)
    size = path.stat().st_size
    tracemalloc.start()
    try:
        db = TinyDb(path)
        assert db.session_totals(sid)[0] == 400  # every run read once for its totals, none kept
        _, peak = tracemalloc.get_traced_memory()
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert size > 8_000_000
    assert peak < size / 4 and held < size / 10  # before: every body held, more than the file
    assert db.get_run("run-7").content == "x" * 20_000
    assert [r.run_id for r in db.list_runs(sid, last=2)] == ["run-398", "run-399"]
    db.close()


def test_reads_follow_compaction_and_new_versions(path):
    (sid,) = big_file(path, runs=30, size=100)
    with TinyDb(path) as db, TinyDb(path) as other:
        assert db.session_totals(sid)[1].input_tokens == sum(range(30))
        run = db.get_run("run-3")
        run.status = RunStatus.error
        other.upsert_run(run)  # another process's new version: its totals memo must not be reused
        other.compact()  # and the file is replaced under the first one
        assert db.session_totals(sid)[1].input_tokens == sum(range(30)) - 3
        assert db.get_run("run-3").status == RunStatus.error
        assert db.get_run("run-29").content == "x" * 100
        db.compact()
        assert db.get_run("run-0").messages[0].content == "q0"
        assert other.get_run("run-0").messages[0].content == "q0"


def test_a_snapshot_reads_the_documents_it_saw_after_compactions(path):
    big_file(path, runs=20, size=50)
    with TinyDb(path) as db, TinyDb(path) as other:
        snapshot = db.tinydb.table("runs")._read_table()  # what a stock TinyDB query iterates
        other.tinydb.table("runs").remove(doc_ids=["run-0"])
        other.compact()  # another process replaces the file...
        db.get_session("x")  # ...which this one notices, re-reading the new file
        db.compact()  # and replaces again itself
        assert [snapshot[f"run-{i}"]["content"] for i in range(20)] == ["x" * 50] * 20
        assert snapshot["run-5"]["messages"][0]["content"] == "q5"
        assert db.get_run("run-0") is None and db.get_run("run-5").content == "x" * 50


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="counts descriptors in /proc/self/fd (Linux)")
def test_replaced_files_are_closed_once_nothing_refers_to_them(path):
    (sid,) = big_file(path, runs=20, size=50)
    with TinyDb(path) as db, TinyDb(path) as other:
        db.session_totals(sid)
        before = len(os.listdir("/proc/self/fd"))
        for _ in range(15):
            db.compact()
            other.compact()
            assert db.get_run("run-3").content == "x" * 50 and other.session_totals(sid)[0] == 20
        assert len(os.listdir("/proc/self/fd")) <= before
