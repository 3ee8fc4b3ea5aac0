"""``python -m nbsessions copy SRC DST``: sessions and runs between any two stores, idempotent, with progress."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import RecordingModel

from nbsessions import Agent, TinyDb
from nbsessions.__main__ import main
from nbsessions.db.base import BaseDb

ROOT = Path(__file__).resolve().parent.parent


def fill(db: BaseDb) -> None:
    """Two users, a fork, an errored and a superseded run: everything a copy must carry over."""
    agent = Agent(model=RecordingModel(), db=db, add_history_to_context=True)
    ann = agent.create_session("ann's", user_id="ann", session_state={"topic": "ml", "n": 1})
    for prompt in ("one", "two", "three"):
        agent.run(prompt, session_id=ann.session_id, user_id="ann", cell_id="c1" if prompt != "one" else None)
    bob = agent.create_session("bob's", user_id="bob")
    agent.run("bob asks", session_id=bob.session_id, user_id="bob")
    agent.fork_session(ann.session_id, session_name="fork")


def dump(db: BaseDb) -> dict:
    return {s.session_id: (s.to_dict(), [r.to_dict() for r in db.list_runs(s.session_id)])
            for s in db.list_sessions()}


def cli(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    return main(list(argv), out=out), out.getvalue()


def test_copy_between_files_is_exact_and_running_it_again_changes_nothing(tmp_path, capsys):
    src, dst = tmp_path / "a.nbsessions.json", tmp_path / "b.nbsessions.json"
    with TinyDb(src) as db:
        fill(db)
        expected = dump(db)
    assert cli("copy", str(src), str(dst)) == (0, f"copied 3 sessions and 7 runs into {dst}\n")
    assert "copying: 100%" in capsys.readouterr().err  # the progress bar, on stderr
    with TinyDb(dst) as db:
        assert dump(db) == expected
    assert cli("copy", str(src), str(dst), "--no-progress")[0] == 0
    with TinyDb(dst) as db:
        assert dump(db) == expected


def test_a_session_used_in_the_target_since_the_last_copy_is_not_overwritten(tmp_path):
    src, dst = tmp_path / "a.json", tmp_path / "b.json"
    with TinyDb(src) as db:
        fill(db)
    cli("copy", str(src), str(dst), "--no-progress")
    with TinyDb(dst) as db:
        ann = next(s for s in db.list_sessions() if s.session_name == "ann's")
        db.update_session(ann.session_id, state_patch={"n": 2})
    code, text = cli("copy", str(src), str(dst), "--no-progress")
    assert code == 0 and "1 left as they were (newer in the target)" in text
    with TinyDb(dst) as db:
        assert db.get_session(ann.session_id).session_state == {"topic": "ml", "n": 2}


def test_copy_of_one_users_sessions(tmp_path):
    src, dst = tmp_path / "a.json", tmp_path / "b.json"
    with TinyDb(src) as db:
        fill(db)
    assert cli("copy", str(src), str(dst), "-u", "bob", "--no-progress")[1].startswith("copied 1 sessions and 1 runs")
    with TinyDb(dst) as db:
        assert [s.user_id for s in db.list_sessions()] == ["bob"]


def test_a_missing_source_is_one_line_and_creates_nothing(tmp_path):
    result = subprocess.run([sys.executable, "-m", "nbsessions", "copy", str(tmp_path / "nope.json"),
                             str(tmp_path / "out.json")], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 1 and result.stderr.count("\n") == 1 and "no such database file" in result.stderr
    assert not (tmp_path / "out.json").exists()


@pytest.mark.postgres
def test_file_to_postgres_and_back_round_trips_and_repeats_as_a_no_op(tmp_path, postgres_server, postgres_url,
                                                                       capsys):
    from pg_server import PASSWORD, PASSWORD_USER

    from nbsessions.db.postgres import PostgresDb

    src, back = tmp_path / "notebook.nbsessions.json", tmp_path / "back.nbsessions.json"
    with TinyDb(src) as db:
        fill(db)
        expected = dump(db)
    dbname = postgres_url.split("/")[3].split("?")[0]
    url = postgres_server.url(dbname, user=PASSWORD_USER, password=PASSWORD)
    for _ in range(2):  # the second copy finds everything there already
        code, text = cli("copy", str(src), url)
        assert code == 0 and text.startswith("copied 3 sessions and 7 runs into postgresql://ann:***@/")
        assert PASSWORD not in text + capsys.readouterr().err
        with PostgresDb(postgres_url) as db:
            assert dump(db) == expected
    assert cli("copy", url, str(back), "--no-progress")[0] == 0
    with TinyDb(back) as db:
        assert dump(db) == expected
    code, text = cli("ls", url, "--plain")
    assert code == 0 and "ann's" in text and "bob's" in text
