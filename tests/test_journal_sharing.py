"""One journal file shared: TinyDB's API read while other threads write, and a file reached through a symlink."""

from __future__ import annotations

import os
import threading

import pytest
from tinydb import Query

from nbsessions.db import TinyDb
from nbsessions.records.schema import RunOutput, Session

pytestmark = pytest.mark.usefixtures("frequent_thread_switches")  # reads land inside other threads' commits


def test_tinydb_api_reads_a_consistent_snapshot_while_another_thread_writes(tmp_path):
    """Each commit sets two documents to the same number: a reader must never see them differ, or fail."""
    with TinyDb(tmp_path / "sessions.json") as db:
        storage = db.tinydb.storage
        storage.commit([("pairs", "a", {"n": 0}), ("pairs", "b", {"n": 0})])
        pairs = db.tinydb.table("pairs")
        stop, errors, reads = threading.Event(), [], []

        def write() -> None:
            n = 0
            while not stop.is_set():
                n += 1
                ops = [("pairs", "a", {"n": n}), ("pairs", "b", {"n": n})]
                if n % 7 == 0:
                    ops.append(("pairs", f"tmp-{n}", {"n": n}))
                if n % 7 == 3:
                    ops.append(("pairs", f"tmp-{n - 3}", None))
                storage.commit(ops, durable=False)

        def read() -> None:
            try:
                for _ in range(400):
                    docs = {d.doc_id: d["n"] for d in pairs.all()}
                    found = {d.doc_id: d["n"] for d in pairs.search(Query().n.exists())}
                    reads.append((docs["a"], docs["b"], found["a"], found["b"]))
                    assert pairs.get(doc_id="a")["n"] >= 0 and len(pairs) >= 2
                    assert all(isinstance(d["n"], int) for d in pairs)
            except Exception as exc:  # reported below, with its type
                errors.append(repr(exc))

        writer = threading.Thread(target=write)
        readers = [threading.Thread(target=read) for _ in range(2)]
        writer.start()
        for t in readers:
            t.start()
        for t in readers:
            t.join()
        stop.set()
        writer.join()
    assert errors == []
    assert len(reads) == 800
    assert all(a == b and fa == fb for a, b, fa, fb in reads), "a read mixed two commits"
    assert len({a for a, *_ in reads}) > 1, "the writer should have committed while readers read"


def test_a_db_reached_through_a_symlink_stays_one_file_after_compaction(tmp_path):
    real_dir, link_dir = tmp_path / "data", tmp_path / "project"
    real_dir.mkdir()
    link_dir.mkdir()
    real, link = real_dir / "sessions.json", link_dir / "sessions.json"
    with TinyDb(real) as db:
        session = Session()
        db.upsert_session(session)
    link.symlink_to(real)
    via_link, via_real = TinyDb(link, compact_min_lines=10), TinyDb(real, compact_min_lines=10)
    try:
        for i in range(30):  # enough rewrites of one run to compact several times
            via_link.upsert_run(RunOutput(session_id=session.session_id, run_id="r", content=f"link {i}"))
            via_real.upsert_run(RunOutput(session_id=session.session_id, run_id=f"real-{i}"))
        assert link.is_symlink() and os.path.samefile(link, real)
        assert not (link_dir / ".sessions.json.lock").exists(), "the lock must be the real file's"
        assert via_real.get_run("r").content == "link 29"
        assert len(via_link.list_runs(session.session_id)) == 31
    finally:
        via_link.close()
        via_real.close()
    with TinyDb(real) as db:
        assert [r.run_id for r in db.list_runs(session.session_id)] == ["r"] + [f"real-{i}" for i in range(30)]
    assert sorted(p.name for p in link_dir.iterdir()) == ["sessions.json"]
