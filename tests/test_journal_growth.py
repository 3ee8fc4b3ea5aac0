"""What a run costs the journal in bytes: the run, never the session's state or metadata again.

Bytes appended are measured on real files: the file's size before and after.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import RecordingModel

from nbsessions import Agent
from nbsessions.db import TinyDb
from nbsessions.schema import Session

MB_STATE = {"table": "x" * 1_000_000}
BIG_METADATA = {"notes": {str(i): "y" * 100 for i in range(5_000)}}  # ~0.6 MB


def appended_by_runs(path: Path, state: dict, metadata: dict, runs: int = 20) -> int:
    """Bytes 20 runs (from cells, so each also records its cell in the session's metadata) append."""
    with TinyDb(path) as db:
        session = db.create_session(Session(session_state=state, metadata=metadata))
        agent = Agent(model=RecordingModel(), db=db, add_history_to_context=True)
        before = os.path.getsize(path)
        for i in range(runs):
            agent.run(f"question {i}", session_id=session.session_id, cell_id=f"cell-{i % 3}")
        return os.path.getsize(path) - before


def test_a_runs_bytes_do_not_grow_with_the_sessions_state_or_metadata(tmp_path):
    small = appended_by_runs(tmp_path / "small.json", {}, {})
    large = appended_by_runs(tmp_path / "large.json", MB_STATE, BIG_METADATA)
    # before: each run re-appended the whole session three times (started, ended, cell recorded): 100 MB here
    assert large - small < 20 * 200, (small, large)
    assert large < 200_000


def test_the_appended_changes_replay_to_the_same_session(tmp_path):
    path = tmp_path / "s.json"
    appended_by_runs(path, MB_STATE, BIG_METADATA, runs=5)
    with TinyDb(path) as db:
        (session,) = db.list_sessions()
        sid = session.session_id
        db.update_session(sid, state_patch={"n": 1}, state_delete=["gone"], metadata_patch={"notes": {"0": None}})
        db.update_session(sid, session_name="named")
        expected = db.get_session(sid).to_dict()
    assert expected["session_state"] == {**MB_STATE, "n": 1} and "0" not in expected["metadata"]["notes"]
    assert expected["metadata"]["cells"] == {"cell-0": expected["metadata"]["cells"]["cell-0"],
                                             "cell-1": expected["metadata"]["cells"]["cell-1"],
                                             "cell-2": expected["metadata"]["cells"]["cell-2"]}
    with TinyDb(path) as db:  # replayed from the file
        assert db.get_session(sid).to_dict() == expected
        assert [s.to_dict() for s in db.list_sessions()] == [expected]
        db.compact()  # folded into one whole record
    assert sum(1 for line in path.read_bytes().splitlines() if b'"upd":' in line) == 0
    with TinyDb(path) as db:
        assert db.get_session(sid).to_dict() == expected


def test_a_state_update_appends_the_key_it_sets_not_the_state(tmp_path):
    path = tmp_path / "s.json"
    with TinyDb(path) as db:
        session = db.create_session(Session(session_state=MB_STATE))
        before = os.path.getsize(path)
        db.update_session(session.session_id, state_patch={"topic": "ml"})
        assert os.path.getsize(path) - before < 300
        assert db.get_session(session.session_id).session_state == {**MB_STATE, "topic": "ml"}


def test_another_process_sees_appended_changes(tmp_path):
    path = tmp_path / "s.json"
    with TinyDb(path) as db:
        session = db.create_session(Session(session_state={"a": 1}))
        db.get_session(session.session_id)  # parsed here before the other process changes it
        code = ("import sys; from nbsessions.db import TinyDb\n"
                "with TinyDb(sys.argv[1]) as db: db.update_session(sys.argv[2], state_patch={'b': 2}, "
                "session_name='theirs')")
        subprocess.run([sys.executable, "-c", code, str(path), session.session_id], check=True,
                       env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)})
        seen = db.get_session(session.session_id)
        assert (seen.session_name, seen.session_state) == ("theirs", {"a": 1, "b": 2})


def test_a_format_2_file_opens_and_is_migrated_on_first_write(tmp_path):
    path = tmp_path / "old.json"
    with TinyDb(path) as db:
        session = db.create_session(Session(session_name="old", session_state={"k": 1}))
    raw = path.read_bytes().split(b"\n", 1)
    header = json.loads(raw[0])
    path.write_bytes(json.dumps({**header, "nbsessions": 2}).encode() + b"\n" + raw[1])
    with TinyDb(path) as db:
        assert db.get_session(session.session_id).session_state == {"k": 1}
        db.update_session(session.session_id, state_patch={"k": 2})
    assert json.loads(path.read_bytes().split(b"\n", 1)[0])["nbsessions"] == 3
    with TinyDb(path) as db:
        assert db.get_session(session.session_id).session_state == {"k": 2}
