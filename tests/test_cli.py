"""``python -m nbsessions``: list, show and export a notebook's sessions without changing the file."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import subprocess
import sys
import types
from pathlib import Path

import pytest
from conftest import RecordingModel

from nbsessions import Agent, FunctionModel, ModelError, TinyDb
from nbsessions.__main__ import main
from nbsessions.schema import RunOutput

HOSTILE = "ok \x1b[31mred\x1b[0m \x1b]0;pwned\x07 [bold]markup[/bold]"


def fingerprint(path: Path) -> tuple[str, int]:
    data = path.read_bytes()
    return hashlib.sha256(data).hexdigest(), len(data)


@pytest.fixture
def dbfile(tmp_path) -> Path:
    """A notebook's file: a named active session with two runs (one failed) and an unnamed one."""
    path = tmp_path / "analysis.nbsessions.json"
    calls = []

    def model(messages):
        calls.append(1)
        if len(calls) == 2:
            raise ModelError("503 server error from example: overloaded", status_code=503)
        return HOSTILE if "hostile" in messages[-1].content else f"reply to {messages[-1].content}"

    with TinyDb(path) as db:
        agent = Agent(model=FunctionModel(model, id="fn-model"), db=db)
        main_session = agent.create_session("churn analysis")
        agent.run("Summarise the data", session_id=main_session.session_id)
        with pytest.raises(ModelError):
            agent.run("And the outliers?", session_id=main_session.session_id)
        agent.set_active_session(main_session.session_id)
        agent.run("be hostile")
    return path


def cli(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(list(argv), out=out)
    return code, out.getvalue()


def session_ids(path: Path) -> dict[str, str]:
    with TinyDb(path) as db:
        return {s.session_name or "": s.session_id for s in db.list_sessions()}


def test_ls_lists_sessions_with_runs_and_marks_the_active_one(dbfile, monkeypatch):
    monkeypatch.setitem(sys.modules, "rich", None)  # plain text when rich is not installed (and in a pipe)
    code, out = cli("ls", str(dbfile))
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["id", "name", "user", "runs", "updated", "tokens", "in/out", "cost"]
    churn = next(line for line in lines if "churn analysis" in line)
    assert churn.startswith("*") and " 2 " in churn
    assert len(lines) == 3
    assert cli("ls", str(dbfile), "--plain")[1] == out  # the same, on request, when rich is installed


def test_show_prints_each_run_with_its_footer_and_marks_failures(dbfile):
    code, out = cli("show", str(dbfile), "churn analysis")
    assert code == 0
    assert "name     churn analysis" in out and "runs     2 ·" in out
    assert "> Summarise the data\nreply to Summarise the data\n— fn-model · churn analysis" in out
    assert "> And the outliers?\n(no reply)" in out and "error: 503 server error from example" in out
    code, last = cli("show", str(dbfile), session_ids(dbfile)["churn analysis"][:6], "--last", "1")
    assert code == 0 and "#2 " in last and "Summarise" not in last


def test_model_text_cannot_send_escape_sequences_to_the_terminal(dbfile):
    unnamed = session_ids(dbfile)[""]
    code, out = cli("show", str(dbfile), unnamed)
    assert code == 0 and "\x1b" not in out and "\x07" not in out
    assert "ok [31mred[0m ]0;pwned [bold]markup[/bold]" in out


def test_export_writes_md_json_or_csv_to_stdout_or_a_file(dbfile, tmp_path):
    code, md = cli("export", str(dbfile), "churn analysis")
    assert code == 0 and md.startswith("# churn analysis") and "reply to Summarise the data" in md
    code, text = cli("export", str(dbfile), "churn analysis", "-f", "json")
    assert [r["status"] for r in json.loads(text)["runs"]] == ["completed", "error"]
    target = tmp_path / "out.csv"
    code, out = cli("export", str(dbfile), "churn analysis", "--format", "csv", "-o", str(target))
    assert code == 0 and out == ""
    rows = list(csv.DictReader(target.open(encoding="utf-8")))
    assert [r["input"] for r in rows] == ["Summarise the data", "And the outliers?"]


def test_no_command_changes_the_database_file(dbfile, tmp_path):
    before = fingerprint(dbfile)
    sid = session_ids(dbfile)["churn analysis"]
    for argv in (["ls", str(dbfile)], ["show", str(dbfile), sid, "--full"],
                 ["export", str(dbfile), sid, "-f", "json"], ["export", str(dbfile), sid, "-o", str(tmp_path / "x")],
                 ["show", str(dbfile), "no-such-session"]):
        cli(*argv)
        assert fingerprint(dbfile) == before, argv


def test_a_missing_or_empty_file_is_an_error_and_is_not_created(tmp_path, capsys):
    missing = tmp_path / "missing.json"
    assert cli("ls", str(missing))[0] == 1
    assert not missing.exists() and "no such database file" in capsys.readouterr().err
    empty = tmp_path / "empty.json"
    empty.touch()
    assert cli("ls", str(empty))[0] == 1
    assert empty.read_bytes() == b"" and "is empty" in capsys.readouterr().err


def test_unknown_and_ambiguous_sessions_are_reported(dbfile, capsys):
    assert cli("show", str(dbfile), "nope")[0] == 1
    assert "no session 'nope'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as caught:  # every id starts with "": refused rather than matched
        cli("show", str(dbfile), "")
    assert caught.value.code == 2 and "SESSION: is empty" in capsys.readouterr().err


def test_a_repeated_name_shows_the_newest_session_as_the_magic_does(tmp_path):
    from nbsessions import Session

    path = tmp_path / "old.nbsessions.json"  # written before names were unique: it holds twins
    older, newer = Session(session_name="twin", created_at=1.0, updated_at=1.0), Session(session_name="twin")
    with TinyDb(path) as db:
        for session in (older, newer):
            db.upsert_session(session)
    code, out = cli("show", str(path), "twin")
    assert code == 0 and f"session  {newer.session_id}" in out and older.session_id not in out


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_tables_use_rich_on_a_terminal_when_it_is_installed_without_reading_markup(dbfile, monkeypatch):
    rendered: list[tuple] = []

    class Text(str):
        pass

    class Table:
        def __init__(self, *headers):
            self.headers, self.rows = headers, []

        def add_row(self, *cells):
            self.rows.append(cells)

    class Console:
        def __init__(self, file, highlight):
            self.file = file

        def print(self, table):
            rendered.append((table.headers, table.rows))

    modules = {"rich": types.ModuleType("rich"), "rich.console": types.SimpleNamespace(Console=Console),
               "rich.table": types.SimpleNamespace(Table=Table), "rich.text": types.SimpleNamespace(Text=Text)}
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    assert main(["ls", str(dbfile)], out=Terminal()) == 0
    assert main(["ls", str(dbfile), "--plain"], out=Terminal()) == 0  # not through rich
    assert cli("ls", str(dbfile))[0] == 0  # a pipe: not through rich either
    (headers, rows), = rendered
    assert headers[1:3] == ("id", "name") and len(rows) == 2
    assert all(type(cell) is Text for row in rows for cell in row)


def test_python_dash_m_runs_the_cli(dbfile):
    done = subprocess.run([sys.executable, "-m", "nbsessions", "ls", "--plain", str(dbfile)], capture_output=True,
                          text=True, timeout=60, cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0 and "churn analysis" in done.stdout


def test_show_last_builds_only_the_runs_it_shows(tmp_path, monkeypatch):
    path = tmp_path / "long.nbsessions.json"
    with TinyDb(path) as db:
        agent = Agent(model=RecordingModel(), db=db, add_history_to_context=True)
        sid = agent.run("prompt 0").session_id
        for i in range(1, 60):
            agent.run(f"prompt {i}", session_id=sid)
    built = []
    original = RunOutput.from_dict.__func__
    monkeypatch.setattr(RunOutput, "from_dict",
                        classmethod(lambda cls, d, *a: built.append(d["run_id"]) or original(cls, d, *a)))
    out = io.StringIO()
    assert main(["show", str(path), sid[:8], "--last", "2"], out) == 0
    text = out.getvalue()
    assert "#59 " in text and "#60 " in text and "> prompt 59" in text and "#58 " not in text
    assert "runs     60" in text  # the totals still count every run
    assert len(built) <= 3  # the newest window (2 runs and one more), not 60
