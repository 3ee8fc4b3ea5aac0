"""Two kernels on one file, and kernels killed mid-write: real processes on real files."""

from __future__ import annotations

import json
import os
import random
import time
import warnings
from pathlib import Path

import pytest
from journal_worker import payload
from worker_protocol import Worker

from nbsessions.db import TinyDb
from nbsessions.records.schema import RunOutput, RunStatus, Session


def journal_process(path: Path, compact_min_lines: int = 1000) -> Worker:
    """A TinyDb in another process (journal_worker.py); returns once that process has the file open."""
    return Worker("journal_worker.py", path, compact_min_lines)


def new_session(path: Path) -> str:
    with TinyDb(path) as db:
        session = Session()
        db.upsert_session(session)
        return session.session_id


@pytest.mark.parametrize("shared_session", [True, False], ids=["same-session", "different-sessions"])
def test_two_processes_append_300_runs_each_and_none_is_lost(tmp_path, shared_session):
    path = tmp_path / "sessions.json"
    sessions = [new_session(path)] * 2 if shared_session else [new_session(path), new_session(path)]
    workers = [journal_process(path), journal_process(path)]  # both have the file open before either writes
    for worker, session, tag in zip(workers, sessions, "ab", strict=True):
        worker.send(cmd="stream", session=session, tag=tag, n=300)
    confirmed = [worker.read_until_done() for worker in workers]
    seen_by_a = workers[0].call(cmd="list", session=sessions[1])["runs"]
    for worker in workers:
        worker.close()
    assert [len(c) for c in confirmed] == [300, 300]
    assert [run_id for run_id, _ in seen_by_a if run_id.startswith("b")] == confirmed[1]
    with TinyDb(path) as db:
        for session, tag, expected in zip(sessions, "ab", confirmed, strict=True):
            runs = db.list_runs(session)
            assert [r.run_id for r in runs if r.run_id.startswith(tag)] == expected  # all there, in order
            for i, run in enumerate(r for r in runs if r.run_id.startswith(tag)):
                assert run.content == payload(run.run_id, i, 200)
        assert len({r.run_id for s in set(sessions) for r in db.list_runs(s)}) == 600


def test_state_patches_from_two_processes_to_different_keys_all_survive(tmp_path):
    path = tmp_path / "sessions.json"
    session = new_session(path)
    workers = [journal_process(path), journal_process(path)]
    for worker, tag in zip(workers, "ab", strict=True):
        worker.send(cmd="patch", session=session, tag=tag, n=150)
    for worker in workers:
        assert worker.read() == {"done": 150}
        worker.close()
    with TinyDb(path) as db:
        state = db.get_session(session).session_state
    assert state == {f"{tag}-{i}": i for tag in "ab" for i in range(150)}


def test_compaction_in_one_process_is_seen_by_another_that_holds_the_file_open(tmp_path):
    path = tmp_path / "sessions.json"
    session = new_session(path)
    mine = TinyDb(path)
    for i in range(10):
        mine.upsert_run(RunOutput(session_id=session, run_id=f"r{i}", content="v0"))
    assert len(mine.list_runs(session)) == 10
    worker = journal_process(path, compact_min_lines=20)
    ino = os.stat(path).st_ino
    rewrites = [RunOutput(session_id=session, run_id=f"r{i}", content=f"v{v}").to_dict()
                for v in range(1, 6) for i in range(10)]
    news = [RunOutput(session_id=session, run_id=f"n{i}", content="new").to_dict() for i in range(10)]
    assert worker.call(cmd="upsert", runs=rewrites + news) == {"done": 60}
    assert os.stat(path).st_ino != ino, "the worker should have compacted the file"
    expected = [(f"r{i}", "v5") for i in range(10)] + [(f"n{i}", "new") for i in range(10)]
    assert [(r.run_id, r.content) for r in mine.list_runs(session)] == expected

    mine.upsert_run(RunOutput(session_id=session, run_id="p0", content="mine"))
    ino = os.stat(path).st_ino
    mine.compact()  # now the other way round: this process compacts while the worker holds the file open
    assert os.stat(path).st_ino != ino
    assert [tuple(r) for r in worker.call(cmd="list", session=session)["runs"]] == expected + [("p0", "mine")]
    worker.call(cmd="upsert", runs=[RunOutput(session_id=session, run_id="q0", content="theirs").to_dict()])
    assert [r.run_id for r in mine.list_runs(session, last=2)] == ["p0", "q0"]
    worker.close()
    mine.close()
    with TinyDb(path) as db:
        assert [(r.run_id, r.content) for r in db.list_runs(session)] == expected + [("p0", "mine"),
                                                                                     ("q0", "theirs")]


def jitter(rng: random.Random) -> None:
    """Spin up to 3 ms, so kills land at different points of a write (not a synchronisation)."""
    until = time.perf_counter() + rng.uniform(0, 0.003)
    while time.perf_counter() < until:
        pass


def test_kill_9_at_random_moments_loses_at_most_the_run_in_flight(tmp_path):
    path = tmp_path / "sessions.json"
    session = new_session(path)
    rng = random.Random(20240917)
    durable: dict[str, int] = {}  # run id -> index, for every run a worker confirmed
    in_flights: set[str] = set()  # the run each killed worker was writing
    compactions = set()  # a compacted file's header says when
    for round_ in range(20):
        tag = f"k{round_:02d}"
        worker = journal_process(path, compact_min_lines=40)
        worker.send(cmd="stream", session=session, tag=tag, n=100_000, max_size=65536,
                    stages=["pending", "running", "completed"], compact_every=3 if round_ % 2 else 0)
        confirmed = [worker.read()["run"] for _ in range(rng.randint(1, 12))]
        jitter(rng)
        confirmed += worker.kill()
        with open(path, "rb") as f:
            compactions.add(json.loads(f.readline()).get("compacted_at"))
        # A kill cannot cut one write(2) to a regular file, so a torn tail here is rare; test_journal.py tears
        # files on purpose. When one occurs, the reader must say it skipped it, and never otherwise.
        torn = not path.read_bytes().endswith(b"\n")
        durable.update({run_id: i for i, run_id in enumerate(confirmed)})
        in_flight = f"{tag}-{len(confirmed):05d}"
        in_flights.add(in_flight)

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with TinyDb(path) as db:  # the file always opens
                stored = {r.run_id: r for r in db.list_runs(session)}
        reported = any("incomplete last line" in str(w.message) for w in caught)
        assert reported == torn, f"round {round_}: torn last line {torn}, reported {reported}"
        assert set(durable) <= set(stored), f"round {round_}: confirmed runs went missing"
        for run_id, index in durable.items():
            run = stored[run_id]
            assert (run.status, run.content) == (RunStatus.completed, payload(run_id, index, 65536))
        assert set(stored) - set(durable) <= in_flights, "a run nobody was writing appeared"
        if in_flight in stored:  # whole, at whatever stage its last complete write reached
            run = stored[in_flight]
            expected = payload(in_flight, len(confirmed), 65536) if run.status == RunStatus.completed else ""
            assert run.content == expected
        ids = [r for r in stored if r.startswith(tag)]
        assert ids == sorted(ids)
    with TinyDb(path) as db:
        db.upsert_run(RunOutput(session_id=session, run_id="after"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with TinyDb(path) as db:
            assert db.list_runs(session, last=1)[0].run_id == "after"
    assert len(compactions - {None}) >= 5, "workers should have compacted the file several times between kills"
