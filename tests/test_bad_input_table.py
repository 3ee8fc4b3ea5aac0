"""One table of bad inputs across the API, the magic and the CLI: each is refused in one clear line, and the folder
holding the database (the file, its lock, anything beside it) is byte for byte and name for name as it was."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import RecordingModel
from notebook_shell import Notebook, one_red_line

from nbsessions import Agent, Team, TinyDb, Workflow
from nbsessions.__main__ import main
from nbsessions.explore import batch, compare, export_session
from nbsessions.records.errors import NbSessionsError

NAN = float("nan")
SURROGATE = "bad \ud800 text"
HUGE = 10**29


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every name under ``folder`` (dot-files too) with its bytes; a link's target; None for a folder or a pipe."""
    out: dict[str, bytes | None] = {}
    for path in sorted(folder.rglob("*")):
        if path.is_symlink():
            out[str(path.relative_to(folder))] = os.readlink(path).encode()
        else:
            out[str(path.relative_to(folder))] = path.read_bytes() if path.is_file() else None
    return out


def assert_one_clear_line(text: str) -> None:
    assert text.strip(), "no message at all"
    assert "\n" not in text.strip(), text
    for internal in ("Traceback", ".py:", "object has no attribute", "islice(", "[Errno", "NoneType"):
        assert internal not in text, text
    assert len(text) < 400, text


@pytest.fixture
def world(tmp_path):
    """A database holding one session with one run, closed; a folder and a plain file beside it."""
    path = tmp_path / "s.json"
    with TinyDb(path) as db:
        agent = Agent(model=RecordingModel(), db=db)
        run = agent.run("hello")
    (tmp_path / "a-folder").mkdir()
    (tmp_path / "note.txt").write_text("not a database\n")
    (tmp_path / "loop").symlink_to(tmp_path / "loop2")
    (tmp_path / "loop2").symlink_to(tmp_path / "loop")
    (tmp_path / "dangling").symlink_to(tmp_path / "gone.json")
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "empty.json").write_bytes(b"")
    return tmp_path, path, run.session_id, run.run_id


# -- the API -----------------------------------------------------------------------------------------
# Each case gets (agent, session_id, run_id, folder) and must raise; ``None`` for the agent's db means the
# case builds what it needs itself (constructors).
Case = Callable[[Agent, str, str, Path], Any]


def _agent(**kwargs: Any) -> Case:
    return lambda agent, sid, rid, folder: Agent(model=RecordingModel(), db=agent.db, **kwargs)


def _run(prompt: Any = "hi", **kwargs: Any) -> Case:
    return lambda agent, sid, rid, folder: agent.run(prompt, session_id=sid, **kwargs)


API_CASES: dict[str, Case] = {
    # building an agent
    "model-int": lambda a, s, r, f: Agent(model=123, db=a.db),
    "model-empty-name": lambda a, s, r, f: Agent(model="", db=a.db),
    "model-blank-name": lambda a, s, r, f: Agent(model="   ", db=a.db),
    "model-list": lambda a, s, r, f: Agent(model=["gpt-4"], db=a.db),
    "model-agno-prefix-empty": lambda a, s, r, f: Agent(model="openai:", db=a.db),
    "summary-model-int": lambda a, s, r, f: Agent(model=RecordingModel(), summary_model=5, db=a.db),
    "db-int": lambda a, s, r, f: Agent(model=RecordingModel(), db=42),
    "db-empty-path": lambda a, s, r, f: Agent(model=RecordingModel(), db=""),
    "db-bytes-path": lambda a, s, r, f: Agent(model=RecordingModel(), db=b"x.json"),
    "db-a-folder": lambda a, s, r, f: Agent(model=RecordingModel(), db=str(f / "a-folder")),
    "db-under-a-file": lambda a, s, r, f: Agent(model=RecordingModel(), db=str(f / "note.txt" / "x.json")),
    "db-not-a-database": lambda a, s, r, f: Agent(model=RecordingModel(), db=f / "note.txt"),
    "db-a-pipe": lambda a, s, r, f: Agent(model=RecordingModel(), db=f / "pipe"),
    "db-a-symlink-loop": lambda a, s, r, f: Agent(model=RecordingModel(), db=f / "loop"),
    "db-path-and-bad-user": lambda a, s, r, f: Agent(model=RecordingModel(), db=f / "new.json", user_id=7),
    "user-int": _agent(user_id=7),
    "user-empty": _agent(user_id=""),
    "user-blank": _agent(user_id="   "),
    "user-surrogate": _agent(user_id=SURROGATE),
    "runs-negative": _agent(num_history_runs=-1),
    "runs-huge": _agent(num_history_runs=HUGE),
    "runs-float": _agent(num_history_runs=1.5),
    "runs-text": _agent(num_history_runs="3"),
    "runs-bool": _agent(num_history_runs=True),
    "messages-negative": _agent(num_history_messages=-1),
    "messages-huge": _agent(num_history_messages=HUGE),
    "tokens-negative": _agent(max_history_tokens=-5),
    "tool-call-limit-negative": _agent(tool_call_limit=-1),
    "tool-call-limit-huge": _agent(tool_call_limit=HUGE),
    "summary-every-zero": _agent(enable_session_summaries=True, session_summary_every=0),
    "summary-every-huge": _agent(enable_session_summaries=True, session_summary_every=HUGE),
    "runs-last-huge": lambda a, s, r, f: a.get_runs(s, last=HUGE),
    "sessions-limit-huge": lambda a, s, r, f: a.get_sessions(limit=HUGE),
    "state-nan": _agent(session_state={"a": NAN}),
    "state-object": _agent(session_state={"a": object()}),
    "state-surrogate": _agent(session_state={"a": SURROGATE}),
    "metadata-nan": _agent(metadata={"a": NAN}),
    "unknown-keyword": _agent(no_such_option=1),
    # running
    "prompt-int": _run(123),
    "prompt-none": _run(None),
    "prompt-bytes": _run(b"hello"),
    "prompt-list": _run(["hello"]),
    "prompt-empty": _run(""),
    "prompt-blank": _run(" \n\t "),
    "prompt-surrogate": _run(SURROGATE),
    "run-state-nan": _run(session_state={"a": NAN}),
    "run-state-inf": _run(session_state={"a": float("-inf")}),
    "run-state-set": _run(session_state={"a": {1, 2}}),
    "run-state-surrogate-key": _run(session_state={SURROGATE: 1}),
    "run-user-int": _run(user_id=5),
    "run-user-empty": _run(user_id=""),
    "run-runs-negative": _run(num_history_runs=-1),
    "run-runs-huge": _run(num_history_runs=HUGE),
    "run-messages-huge": _run(add_history_to_context=True, num_history_messages=HUGE),
    "run-tokens-negative": _run(max_history_tokens=-10),
    "run-instructions-surrogate": _run(instructions=SURROGATE),
    "run-model-int": _run(model=5),
    "run-model-empty": _run(model=""),
    "run-parent-unknown": _run(parent_run_id="no-such-run"),
    "run-parent-int": _run(parent_run_id=5),
    "run-parent-empty": _run(parent_run_id=""),
    "run-parent-other-session": lambda a, s, r, f: a.run("hi", session_id="another", parent_run_id=r),
    "run-unknown-keyword": _run(no_such_option=1),
    "stream-prompt-int": lambda a, s, r, f: a.run(123, stream=True),
    "preview-model-int": lambda a, s, r, f: a.preview_context("hi", s, model=5),
    "run-state-list": _run(session_state=[1]),
    "run-state-text": _run(session_state="topic=ml"),
    "run-session-id-int": _run(session_id=5),
    "run-session-id-surrogate": lambda a, s, r, f: a.run("hi", session_id=SURROGATE),
    "run-tags-int": _run(tags=5),
    "run-tags-text": _run(tags="abc"),
    "run-tags-of-ints": _run(tags=[1, 2]),
    "preview-prompt-int": lambda a, s, r, f: a.preview_context(5, s),
    "state-list": _agent(session_state=[1]),
    "metadata-list": _agent(metadata=["a"]),
    "agent-name-int": _agent(name=5),
    "history-sessions-negative": _agent(num_history_sessions=-1),
    # reading
    "runs-last-negative": lambda a, s, r, f: a.get_runs(s, last=-1),
    "sessions-limit-negative": lambda a, s, r, f: a.get_sessions(limit=-1),
    "sessions-offset-negative": lambda a, s, r, f: a.get_sessions(offset=-2),
    "chat-history-negative": lambda a, s, r, f: a.get_chat_history(s, last_n_runs=-1),
    "messages-limit-negative": lambda a, s, r, f: a.get_session_messages(s, limit=-3),
    # sessions
    "state-update-list": lambda a, s, r, f: a.update_session_state([1], session_id=s),
    "create-session-state-list": lambda a, s, r, f: a.create_session("n", session_state=[1]),
    "continue-int": lambda a, s, r, f: a.continue_run(5),
    "name-int": lambda a, s, r, f: a.set_session_name(s, session_name=123),
    "name-none": lambda a, s, r, f: a.set_session_name(s),
    "name-empty": lambda a, s, r, f: a.set_session_name(s, session_name=""),
    "name-blank": lambda a, s, r, f: a.set_session_name(s, session_name="  "),
    "name-surrogate": lambda a, s, r, f: a.set_session_name(s, session_name=SURROGATE),
    "name-unknown-session": lambda a, s, r, f: a.set_session_name("no-such", session_name="x"),
    "state-update-nan": lambda a, s, r, f: a.update_session_state({"a": NAN}, session_id=s),
    "state-update-surrogate": lambda a, s, r, f: a.update_session_state({"a": SURROGATE}, session_id=s),
    "state-update-unknown-session": lambda a, s, r, f: a.update_session_state({"a": 1}, session_id="no-such"),
    "create-session-nan": lambda a, s, r, f: a.create_session("n", session_state={"a": NAN}),
    "create-session-user-int": lambda a, s, r, f: a.create_session("n", user_id=3),
    "create-session-surrogate-name": lambda a, s, r, f: a.create_session(SURROGATE),
    "get-unknown-session": lambda a, s, r, f: a.get_session("no-such"),
    "context-unknown-run": lambda a, s, r, f: a.get_run_context("no-such-run"),
    "continue-unknown-run": lambda a, s, r, f: a.continue_run(run_id="no-such-run"),
    "continue-completed-run": lambda a, s, r, f: a.continue_run(run_id=r),
    "fork-unknown-session": lambda a, s, r, f: a.fork_session("no-such"),
    "regenerate-unknown-run": lambda a, s, r, f: a.regenerate(s, "no-such-run"),
    # exports
    "export-format": lambda a, s, r, f: export_session(a, s, "pdf"),
    "export-format-int": lambda a, s, r, f: export_session(a, s, 5),
    "export-unknown-session": lambda a, s, r, f: export_session(a, "no-such", "md"),
    "export-to-folder": lambda a, s, r, f: export_session(a, s, "md", f / "a-folder"),
    "export-to-db-folder": lambda a, s, r, f: export_session(a, s, "json", f),
    "export-under-a-file": lambda a, s, r, f: export_session(a, s, "md", f / "note.txt" / "x.md"),
    "export-into-missing-folder": lambda a, s, r, f: export_session(a, s, "csv", f / "missing" / "x.csv"),
    # teams, workflows, experiments
    "team-member-not-an-agent": lambda a, s, r, f: Team(members=["researcher"], db=a.db),  # members=[] is Agno's
    "team-bad-mode": lambda a, s, r, f: Team(members=[Agent(model=RecordingModel())], mode="vote", db=a.db),
    "team-db-int": lambda a, s, r, f: Team(members=[Agent(model=RecordingModel())], db=3),
    "workflow-no-steps": lambda a, s, r, f: Workflow(steps=[], db=a.db),
    "workflow-db-int": lambda a, s, r, f: Workflow(steps=[Agent(model=RecordingModel())], db=3),
    "workflow-prompt-int": lambda a, s, r, f: Workflow(steps=[Agent(model=RecordingModel())], db=a.db).run(7),
    "batch-rows-not-dicts": lambda a, s, r, f: batch(a, "say {x}", [1, 2], progress=False),
    "batch-missing-field": lambda a, s, r, f: batch(a, "say {x}", [{"y": 1}], progress=False),
    "compare-model-int": lambda a, s, r, f: compare(a, "hi", models=[5]),
    "compare-models-one-string": lambda a, s, r, f: compare(a, "hi", models="offline"),
    "compare-concurrency-zero": lambda a, s, r, f: compare(a, "hi", models=["offline"], concurrency=0),
    "batch-concurrency-zero": lambda a, s, r, f: batch(a, "say {x}", [{"x": 1}], concurrency=0, progress=False),
    "batch-template-int": lambda a, s, r, f: batch(a, 5, [{"x": 1}], progress=False),
    "workflow-state-list": lambda a, s, r, f: Workflow(steps=[Agent(model=RecordingModel())], session_state=[1]),
    "compare-prompt-empty": lambda a, s, r, f: compare(a, "", models=["offline"]),
}


@pytest.mark.parametrize("name", sorted(API_CASES))
def test_bad_api_input_is_one_clear_line_and_writes_nothing(world, name):
    folder, path, sid, rid = world
    with TinyDb(path) as db:
        agent = Agent(model=RecordingModel(), db=db)
        before = snapshot(folder)
        with pytest.raises((NbSessionsError, TypeError, ValueError, LookupError)) as caught:
            result = API_CASES[name](agent, sid, rid, folder)
            if hasattr(result, "__iter__") and not isinstance(result, str | dict):
                list(result)  # a stream is refused when it is made, not only when read
        assert not isinstance(caught.value, AttributeError | KeyError)
        assert_one_clear_line(str(caught.value))
        assert snapshot(folder) == before
        assert [r.run_id for r in db.list_runs(sid)] == [rid]
        assert len(db.list_sessions()) == 1


# -- the magic ---------------------------------------------------------------------------------------
SETUP = ("import os\nclass Obj:\n    def __init__(self):\n        self.ok = 1\nobj = Obj(); x = 1; lst = [1, 2]\n"
         "bad = 'bad \\ud800 text'\nrows = [{'a': 1}]")

MAGIC_CASES = [
    # the %%agent line
    "%%agent --state 'not json'\nhi",
    "%%agent --state '[1, 2]'\nhi",
    '%%agent --state \'{"a": NaN}\'\nhi',
    '%%agent --state \'{"a": Infinity}\'\nhi',
    '%%agent --state \'{"a": -Infinity}\'\nhi',
    '%%agent --state \'{"a":"\\ud800"}\'\nhi',
    '%%agent --state \'{"a": 1\nhi',
    "%%agent --state\nhi",
    "%%agent --history -1\nhi",
    f"%%agent --history {HUGE}\nhi",
    "%%agent --history x\nhi",
    "%%agent --history 1.5\nhi",
    "%%agent --history-messages -2\nhi",
    f"%%agent --history-messages {HUGE}\nhi",
    "%%agent --history-tokens 0\nhi",
    "%%agent --history-tokens -5\nhi",
    f"%%agent --history-tokens {HUGE}\nhi",
    "%%agent --history 2 --no-history\nhi",
    "%%agent --history 2 --history-messages 3\nhi",
    "%%agent --no-history --history-tokens 5\nhi",
    "%%agent -m ''\nhi",
    "%%agent -m '  '\nhi",
    "%%agent -m 'gpt 5'\nhi",
    "%%agent -s ''\nhi",
    "%%agent -s no-such-session\nhi",
    "%%agent -s x --new y\nhi",
    "%%agent -u ''\nhi",
    "%%agent -u ' '\nhi",
    "%%agent -o ''\nhi",
    "%%agent --bogus\nhi",
    "%%agent -x\nhi",
    "%%agent 'unclosed\nhi",
    '%%agent "unclosed\nhi',
    "%%agent\n",
    "%%agent\n   \n  ",
    "%%agent\nlook at {undefined_name}",
    "%%agent\n{obj.__init__.__globals__[os]}",
    "%%agent\nwide {x:>100000000}",
    "%%agent\n{x:not-a-spec}",
    "%%agent\nsay {bad}",
    "%%agent -j 0 --compare offline,offline\nhi",
    f"%%agent -j {HUGE} --compare offline,offline\nhi",
    "%%agent --compare ''\nhi",
    "%%agent --compare 'gpt 5,offline'\nhi",
    "%%agent --variants nope\nhi",
    "%%agent --variants x\nhi",
    "%%agent --over nope\n{a}",
    "%%agent --over x\n{a}",
    "%%agent --over lst\n{a}",
    "%%agent --over rows\n{b}",
    "%%agent --checks nope --compare offline,offline\nhi",
    "%%agent --sweep temperature\nhi",
    "%%agent --sweep =1,2\nhi",
    "%%agent --team nope\nhi",
    "%%agent --workflow nope\nhi",
    "%%agent --agent nope\nhi",
    "%%agent --state '{}' --over rows\n{a}",
    "%%agent --new n --compare offline,offline\nhi",
    # %agent subcommands
    "%agent nosuchcommand",
    "%agent use",
    "%agent use no-such-session",
    "%agent rename",
    "%agent rename '   '",
    '%agent state {"a": NaN}',
    "%agent state [1]",
    "%agent state not-json",
    '%agent state {"a": "\\ud800"}',
    "%agent history -5",
    "%agent history 0",
    "%agent history x",
    "%agent delete no-such --yes",
    "%agent fork nosuchrun",
    "%agent export pdf",
    "%agent export md a-folder",
    "%agent export md nbsessions.json/x.md",
    "%agent export md --result nope",
    "%agent export md --result x",
    "%agent export ipynb --result x",
    "%agent context nosuchrun",
    "%agent context --history -1 --next",
    f"%agent context --history {HUGE} --next hi",
    "%agent context --history 2 --no-history --next",
    "%agent context -m gpt-4",
    "%agent context --history 3",
    "%agent context --bogus",
    "%agent continue nosuchrun",
    "%agent regenerate nosuchrun",
    "%agent variants nosuchrun",
    "%agent keep nosuchrun",
    "%agent tools nope",
    "%agent register t x",
    "%agent db a-folder",
    "%agent db pipe",
    "%agent db nbsessions.json/inner.json",
    "%agent model 'gpt 5'",
    "%agent sessions --bogus",
    "%agent user ''",
    "%agent user '  '",
    "%agent model ''",
    "%agent sessions extra",
    "%agent history 1 2",
    "%agent delete",
    "%agent keep",
    "%agent register a",
    "%agent register --remove nope",
    "%agent tools --clear extra",
    "%agent continue --input 'not json'",
    "%agent continue --results '[1]'",
    "%agent export md --result rows",
    "%%agent -o 1abc\nhi",
    "%%agent -o 'a b'\nhi",
    "%%agent --over rows -j -1\n{a}",
    "%%agent --sweep temperature=1 --over rows\n{a}",
    "%%agent -s x --state '{}' --compare offline,offline\nhi",
    "%%agent --variants rows\nhi",
    "%%agent --checks x --compare offline,offline\nhi",
    # extra words are refused, never glued onto the argument or ignored
    "%agent db a b",
    "%agent db 'my dir/s.json' extra",
    "%agent db 'unclosed",
    "%agent panel extra",
    "%agent metrics extra",
    "%agent summary extra",
    "%agent model offline extra",
    "%agent fork a b",
    "%agent keep a b",
    "%agent user --clear extra",
    "%agent user --bogus",
]


@pytest.fixture(scope="module")
def notebook(tmp_path_factory):
    """One shell for the whole table (a refused cell changes nothing, so cases cannot leak into each other),
    in a folder whose database holds one session."""
    folder = tmp_path_factory.mktemp("magic")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)
        for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "NBSESSIONS_MODEL", "JPY_SESSION_NAME",
                     "NBSESSIONS_DB_URL"):
            mp.delenv(name, raising=False)
        nb = Notebook()
        assert nb.run(SETUP).result.success
        assert nb.run("%%agent\nfirst").result.success
        (folder / "a-folder").mkdir()
        os.mkfifo(folder / "pipe")
        yield nb, folder
        nb.close()


@pytest.mark.parametrize("setting", ["history", "history_tokens", "summaries"])
@pytest.mark.parametrize("value", [-1, HUGE])
def test_a_bad_count_in_config_is_refused_there_and_the_next_cell_still_runs(notebook, caplog, setting, value):
    """``%config`` reports a refused value through IPython's log, in one line."""
    nb, folder = notebook
    nb.run(f"%config AgentMagics.{setting} = {value}")
    assert [r.getMessage() for r in caplog.records] == [f"AgentMagics.{setting} must be 0 or more (and at most "
                                                        f"{sys.maxsize})"]
    assert getattr(nb.magics, setting) != value
    assert nb.run(f"%%agent\nafter %config {setting} = {value}").result.success


@pytest.mark.parametrize("cell", MAGIC_CASES, ids=[re.sub(r"\s+", " ", c)[:60] for c in MAGIC_CASES])
def test_bad_magic_input_is_one_red_line_and_writes_nothing(notebook, cell):
    nb, folder = notebook
    os.chdir(folder)
    before = snapshot(folder)
    ran = nb.run(cell)
    assert not ran.result.success
    line = one_red_line(ran)
    assert line.startswith("UsageError: ")
    assert_one_clear_line(line)
    assert snapshot(folder) == before


# -- the CLI -----------------------------------------------------------------------------------------
def _cli_cases(folder: Path, db: str, sid: str) -> dict[str, list[str]]:
    loop = folder / "loop"
    return {
        "ls-missing": ["ls", str(folder / "missing.json")],
        "ls-folder": ["ls", str(folder / "a-folder")],
        "ls-symlink-loop": ["ls", str(loop)],
        "ls-dangling-symlink": ["ls", str(folder / "dangling")],
        "ls-fifo": ["ls", str(folder / "pipe")],
        "ls-not-a-database": ["ls", str(folder / "note.txt")],
        "ls-empty-file": ["ls", str(folder / "empty.json")],
        "ls-under-a-file": ["ls", str(folder / "note.txt" / "x.json")],
        "ls-limit-zero": ["ls", db, "-n", "0"],
        "ls-limit-negative": ["ls", db, "-n", "-3"],
        "ls-limit-text": ["ls", db, "-n", "many"],
        "ls-unknown-flag": ["ls", db, "--bogus"],
        "ls-no-db": ["ls"],
        "show-unknown-session": ["show", db, "no-such"],
        "show-other-user": ["show", db, sid, "-u", "mallory"],
        "show-last-zero": ["show", db, sid, "--last", "0"],
        "show-last-text": ["show", db, sid, "--last", "x"],
        "show-no-session": ["show", db],
        "export-unknown-session": ["export", db, "no-such"],
        "export-format": ["export", db, sid, "-f", "pdf"],
        "export-to-folder": ["export", db, sid, "-o", str(folder / "a-folder")],
        "export-to-db-folder": ["export", db, sid, "-o", str(folder)],
        "export-under-a-file": ["export", db, sid, "-o", str(folder / "note.txt" / "x.md")],
        "export-into-missing-folder": ["export", db, sid, "-o", str(folder / "missing" / "x.md")],
        "export-from-folder": ["export", str(folder / "a-folder"), sid],
        "copy-from-missing": ["copy", str(folder / "missing.json"), str(folder / "copy.json")],
        "copy-into-folder": ["copy", db, str(folder / "a-folder")],
        "copy-into-a-file-as-folder": ["copy", db, str(folder / "note.txt" / "x.json")],
        "copy-into-not-a-database": ["copy", db, str(folder / "note.txt")],
        "copy-into-a-pipe": ["copy", db, str(folder / "pipe")],
        "copy-into-a-symlink-loop": ["copy", db, str(folder / "loop")],
        "ls-empty-path": ["ls", ""],
        "ls-empty-user": ["ls", db, "-u", ""],
        "ls-limit-huge": ["ls", db, "-n", str(HUGE)],
        "show-empty-session": ["show", db, ""],
        "show-blank-session": ["show", db, "  "],
        "show-last-huge": ["show", db, sid, "--last", str(HUGE)],
        "export-empty-user": ["export", db, sid, "-u", " "],
        "export-format-upper": ["export", db, sid, "-f", "PDF"],
        "unknown-command": ["drop", db],
        "no-command": [],
    }


SAYS = {"ls-missing": "no such database file", "ls-folder": "is a directory", "ls-symlink-loop": "symlink loop",
        "ls-dangling-symlink": "is a symlink to", "ls-fifo": "is a named pipe", "ls-empty-file": "is empty",
        "ls-not-a-database": "is not an nbsessions database", "export-to-folder": "is a directory",
        "export-to-db-folder": "is a directory", "export-from-folder": "is a directory",
        "copy-into-folder": "is a directory", "export-into-missing-folder": "x.md",
        "copy-into-a-pipe": "is a named pipe", "copy-into-a-symlink-loop": "is a symlink loop"}
"""What the line says, where the point is to name what the path is."""

CLI_NAMES = sorted(_cli_cases(Path("."), "db", "sid"))


@pytest.mark.parametrize("name", CLI_NAMES)
def test_bad_cli_input_is_one_line_and_writes_nothing(world, capsys, name):
    folder, path, sid, _ = world
    before = snapshot(folder)
    try:
        code = main(_cli_cases(folder, str(path), sid)[name])
    except SystemExit as exc:  # argparse: its usage, then one error line; exit status 2
        code = exc.code
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].startswith("python -m nbsessions") and ": error: " in err[-1], err
        assert_one_clear_line(err[-1])
    else:
        err = capsys.readouterr().err.strip()
        assert err.startswith("nbsessions: ")
        assert_one_clear_line(err)
        assert SAYS.get(name, "") in err
    assert code in (1, 2)
    assert snapshot(folder) == before
