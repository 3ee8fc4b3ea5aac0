"""Bad input that is about files and sizes: a full disk, huge and odd strings, a huge flag line, a torn last line,
readers that must create nothing, and what ``Agent(model=..., db=...)`` accepts besides objects."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import RecordingModel
from IPython.core.error import UsageError
from IPython.utils.process import arg_split
from notebook_shell import Notebook, one_red_line

from nbsessions import Agent, OfflineModel, TinyDb
from nbsessions.__main__ import main
from nbsessions.llm.openai import OpenAIChat, OpenAIResponses
from nbsessions.magic.cellopts import split_args

HERE = Path(__file__).parent


# -- a full disk -------------------------------------------------------------------------------------
def _private_mounts() -> list[str] | None:
    """``unshare`` arguments for a mount namespace of our own (a tmpfs mounted there is seen by nobody else and
    goes away with the process), or None when this machine allows none."""
    if shutil.which("unshare") is None:
        return None
    base = ["unshare", "--mount", "--propagation", "private"]
    if os.geteuid() != 0:
        base.insert(1, "--map-root-user")
    probe = subprocess.run([*base, "true"], capture_output=True)
    return base if probe.returncode == 0 else None


def test_on_a_full_disk_compaction_and_exports_fail_whole_naming_the_path(tmp_path):
    """A real full filesystem: a 1 MB tmpfs in a private mount namespace, filled to ENOSPC."""
    unshare = _private_mounts()
    if unshare is None:
        pytest.skip("no private mount namespace (unshare) here: a full disk needs a tmpfs of its own")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parent), str(HERE)])}
    done = subprocess.run([*unshare, sys.executable, str(HERE / "full_disk_worker.py"), str(tmp_path)],
                          capture_output=True, text=True, env=env, timeout=300)
    if done.returncode != 0 and "mount" in done.stderr and "nbsessions" not in done.stderr:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()[-200:]}")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    folder = str(tmp_path)
    assert report["compact"] == {"type": "StorageError", "message": f"could not compact {folder}/s.json: No space "
                                 "left on device; the database was left as it was"}
    for key, name in (("export_new", "new.md"), ("export_over", "old.md")):
        assert report[key] == {"type": "StorageError", "message": f"could not write {folder}/{name}: No space "
                               "left on device; nothing was written"}
    assert report["cli"] == {"code": 1, "stderr": f"nbsessions: could not write {folder}/cli.md: No space left on "
                             "device; nothing was written\n"}
    assert report["run"]["type"] == "StorageError"
    assert report["run"]["message"].startswith(f"could not write to {folder}/s.json: No space left on device")
    assert report["unchanged"]  # the database and the earlier export byte for byte; no half-written file
    assert report["names"] == [".s.json.lock", "filler", "old.md", "s.json"]
    assert report["after"] == ["hello hell", "after the "]


# -- odd and huge strings ----------------------------------------------------------------------------
def test_nul_bytes_and_50_mb_strings_in_prompts_state_and_names_read_back_exactly(tmp_path):
    nul = "a\x00b\x00\x00c"
    big = ("0123456789abcdef" * (50 * 2**20 // 16))[:-1] + "\x00"  # 50 MB, ending in a NUL
    path = tmp_path / "s.json"
    with TinyDb(path) as db:
        agent = Agent(model=RecordingModel("ok"), db=db, user_id=nul)
        run = agent.run(nul, session_state={nul: nul})
        agent.set_session_name(run.session_id, session_name=nul)
        big_run = agent.run(big, session_id=run.session_id, session_state={"big": big})
        agent.set_session_name(run.session_id, session_name=big)
        sid, ids = run.session_id, [run.run_id, big_run.run_id]
    with TinyDb(path) as db:
        session = db.get_session(sid)
        assert session.user_id == nul and session.session_name == big
        assert session.session_state == {nul: nul, "big": big}
        assert [db.get_run(i).input for i in ids] == [nul, big]


def test_nul_bytes_through_the_magic_read_back_exactly(nb, workdir):
    for cell in ("%%agent\nabc\x00def", '%%agent --state \'{"k": "a\\u0000b"}\'\nhi', "%agent rename x\x00y"):
        assert nb.run(cell).result.success, cell
    with TinyDb(workdir / "nbsessions.json") as db:
        (session,) = db.list_sessions()
        assert session.session_name == "x\x00y" and session.session_state == {"k": "a\x00b"}
        assert [r.input for r in db.list_runs(session.session_id)] == ["abc\x00def", "hi"]


# -- a huge flag line --------------------------------------------------------------------------------
def test_the_flag_line_splits_exactly_as_ipython_splits_it():
    """``split_args`` replaces IPython's ``arg_split`` (quadratic); on every line, both give the same words or
    both refuse an unclosed quote."""
    rng = random.Random(21)
    alphabet = " \t\n\r'\"ab\\#\x0b-={}"
    for _ in range(20000):
        line = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 14)))
        try:
            expected = arg_split(line)
        except ValueError:
            with pytest.raises(UsageError, match="unclosed"):
                split_args(line)
            continue
        assert split_args(line) == expected, line


def test_a_50_mb_flag_line_is_split_whole():
    value = json.dumps({"k": "x" * (50 * 2**20)})
    assert split_args(f"--state '{value}' -m offline") == ["--state", f"'{value}'", "-m", "offline"]


def test_a_large_state_flag_runs_the_cell_and_is_stored_exactly(nb, workdir):
    state = {"k": "x" * (5 * 2**20), "nul": "a\x00b"}  # 5 MB took minutes to split before
    ran = nb.run(f"%%agent --state '{json.dumps(state)}'\nhello")
    assert ran.result.success, ran.stderr
    with TinyDb(workdir / "nbsessions.json") as db:
        assert db.list_sessions()[0].session_state == state


def test_history_counts_beyond_any_list_are_refused_in_one_line(nb, workdir):
    assert nb.run("%%agent\nfirst").result.success
    for cell in (f"%%agent --history {10**29}\nhi", f"%agent context --history {10**29} --next hi",
                 "%agent context --history -1 --next"):
        line = one_red_line(nb.run(cell))
        assert line.startswith("UsageError: --history ") and "islice" not in line


# -- readers create nothing; a torn line is one plain line ------------------------------------------
@pytest.fixture
def stored(tmp_path):
    path = tmp_path / "s.json"
    with TinyDb(path) as db:
        run = Agent(model=RecordingModel(), db=db).run("hello")
    (tmp_path / ".s.json.lock").unlink()  # as after a copy of the file alone
    return path, run.session_id


@pytest.mark.parametrize("command", [["ls", "--plain"], ["show", "SID"], ["export", "SID", "-f", "json"]])
def test_cli_readers_create_no_lock_file_beside_the_database(stored, capsys, command):
    path, sid = stored
    before = sorted(os.listdir(path.parent))
    assert main([command[0], str(path), *[sid if a == "SID" else a for a in command[1:]]]) == 0
    assert sorted(os.listdir(path.parent)) == before == ["s.json"]
    assert capsys.readouterr().out


def test_a_reader_locks_once_a_writer_has_made_the_lock_file(stored):
    path, sid = stored
    with TinyDb(path, read_only=True) as reader:
        assert not (path.parent / ".s.json.lock").exists()
        with TinyDb(path) as writer:
            Agent(model=RecordingModel(), db=writer).run("again", session_id=sid)
            assert len(reader.list_runs(sid)) == 2  # read under the lock the writer made
    assert sorted(os.listdir(path.parent)) == [".s.json.lock", "s.json"]


def test_a_torn_last_line_is_one_plain_line_in_the_cli(stored, capsys):
    path, sid = stored
    with open(path, "ab") as f:
        f.write(b'{"t":"runs","id":"x","d":{"half')
    assert main(["ls", str(path), "--plain"]) == 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"nbsessions: warning: {path}: skipped an incomplete last line")
    assert "RuntimeWarning" not in err and ".py" not in err


def test_a_torn_last_line_is_one_plain_line_in_the_magic(workdir):
    first = Notebook()
    assert first.run("%%agent\nfirst").result.success
    first.close()
    with open(workdir / "nbsessions.json", "ab") as f:
        f.write(b'{"t":"runs","id":"x","d":{"half')
    ran = Notebook().run("%%agent\nsecond")
    assert ran.result.success
    lines = [line for line in ran.stderr.splitlines() if "incomplete" in line]
    assert len(lines) == 1 and lines[0].startswith("nbsessions: warning: ")
    assert "RuntimeWarning" not in ran.stderr and ".py:" not in ran.stderr


# -- what Agent(model=..., db=...) accepts -----------------------------------------------------------
def test_agent_takes_a_model_name_as_the_magic_resolves_it(monkeypatch, openai_server, tmp_path):
    monkeypatch.setenv("OPENAI_BASE_URL", openai_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key-000")
    agent = Agent(model="gpt-test", db=tmp_path / "s.json")
    assert isinstance(agent.model, OpenAIChat) and agent.model.id == "gpt-test"  # a custom server speaks Chat
    assert agent.run("hello").content
    assert [r["model"] for r in openai_server.requests] == ["gpt-test"]
    assert isinstance(Agent(model="openai:gpt-4o").model, OpenAIChat)  # Agno's spelling
    assert isinstance(Agent(model="offline").model, OfflineModel)
    monkeypatch.delenv("OPENAI_BASE_URL")
    assert isinstance(Agent(model="gpt-4").model, OpenAIResponses)  # OpenAI itself: the Responses API


def test_agent_takes_a_path_and_opens_a_tinydb_there(tmp_path):
    agent = Agent(model=RecordingModel(), db=str(tmp_path / "sub" / "s.json"))
    run = agent.run("hello")
    assert isinstance(agent.db, TinyDb)
    agent.db.close()
    with TinyDb(tmp_path / "sub" / "s.json") as db:
        assert db.get_run(run.run_id).input == "hello"
    assert oct(os.stat(tmp_path / "sub" / "s.json").st_mode & 0o777) == "0o600"
