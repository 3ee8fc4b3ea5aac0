"""Bad input is one clear line and nothing written: in the API (a typed ``NbSessionsError``), the magic (one red
``UsageError`` line) and the CLI (argparse's error, exit status 2)."""

from __future__ import annotations

import os
import stat

import pytest
from conftest import RecordingModel
from notebook_shell import SECRET, one_red_line, stored_runs

from nbsessions import Agent, NbSessionsError, TinyDb
from nbsessions.__main__ import main
from nbsessions.llm.openai import OpenAIChat
from nbsessions.records.errors import InvalidInputError
from nbsessions.records.schema import Session

NAN_STATE = {"a": float("nan")}
SURROGATE = "bad \ud800 text"



def nothing_written(db) -> bool:
    return db.list_sessions() == []


@pytest.fixture
def store(tmp_path):
    with TinyDb(tmp_path / "s.json") as db:
        yield db


# -- the API -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs", [
    {"input": SURROGATE},
    {"input": "hi", "session_state": NAN_STATE},
    {"input": "hi", "session_state": {"a": SURROGATE}},
    {"input": "hi", "session_state": {"a": float("inf")}},
    {"input": "hi", "instructions": SURROGATE},
    {"input": "hi", "user_id": 5},
    {"input": "hi", "user_id": ""},
    {"input": "hi", "num_history_runs": -1},
    {"input": "hi", "num_history_messages": -3},
    {"input": "hi", "max_history_tokens": -10},
    {"input": "hi", "num_history_runs": True},
], ids=["surrogate-prompt", "nan-state", "surrogate-state", "inf-state", "surrogate-instructions",
        "int-user", "empty-user", "neg-runs", "neg-messages", "neg-tokens", "bool-runs"])
def test_a_bad_run_argument_is_a_typed_error_and_writes_nothing(store, kwargs):
    agent = Agent(model=RecordingModel(), db=store, add_history_to_context=True)
    prompt = kwargs.pop("input")
    with pytest.raises(InvalidInputError) as caught:
        agent.run(prompt, **kwargs)
    assert isinstance(caught.value, NbSessionsError) and isinstance(caught.value, ValueError)
    assert "\n" not in str(caught.value)
    assert nothing_written(store)


@pytest.mark.parametrize("kwargs", [{"user_id": 7}, {"num_history_runs": -1}, {"max_history_tokens": -5},
                                    {"num_history_messages": -1}, {"session_state": NAN_STATE}])
def test_a_bad_agent_setting_is_refused_when_the_agent_is_built(kwargs):
    with pytest.raises(InvalidInputError):
        Agent(model=RecordingModel(), **kwargs)


def test_bad_state_through_the_session_api_writes_nothing(store):
    agent = Agent(model=RecordingModel(), db=store)
    with pytest.raises(InvalidInputError):
        agent.create_session("s", session_state={"a": SURROGATE})
    assert nothing_written(store)
    for bad in ({"session_name": SURROGATE}, {"session_name": "s", "user_id": 3}):
        with pytest.raises(InvalidInputError):
            agent.create_session(**bad)
    assert nothing_written(store)
    session = agent.create_session("s", session_state={"k": 1})
    with pytest.raises(InvalidInputError):
        agent.set_session_name(session.session_id, session_name=SURROGATE)
    assert agent.get_session(session.session_id).session_name == "s"
    for bad in (NAN_STATE, {"a": SURROGATE}):
        with pytest.raises(InvalidInputError):
            agent.update_session_state(bad, session_id=session.session_id)
    assert agent.get_session_state(session.session_id) == {"k": 1}


def test_a_prompt_holding_the_models_api_key_is_refused_before_anything_is_sent(store, openai_server):
    model = OpenAIChat("gpt-test", base_url=openai_server.base_url, api_key=SECRET, max_retries=0)
    agent = Agent(model=model, db=store)
    with pytest.raises(InvalidInputError) as caught:
        agent.run(f"please keep {SECRET} safe")
    assert SECRET not in str(caught.value) and "API key" in str(caught.value)
    assert openai_server.requests == [] and nothing_written(store)
    assert agent.run("an ordinary prompt").content  # the agent is not broken by the refusal


@pytest.mark.parametrize("variable", ["OPENAI_API_KEY", "GROQ_API_KEY"])
def test_the_api_key_from_the_environment_is_refused_too(store, openai_server, monkeypatch, variable):
    monkeypatch.setenv(variable, SECRET)
    named = {"api_key_env": variable} if variable != "OPENAI_API_KEY" else {}
    agent = Agent(model=OpenAIChat("gpt-test", base_url=openai_server.base_url, max_retries=0, **named), db=store)
    with pytest.raises(InvalidInputError):
        agent.run(f"key: {SECRET}")
    assert openai_server.requests == [] and nothing_written(store)


# -- the magic ---------------------------------------------------------------------------------------
def db_path(workdir):
    return workdir / "nbsessions.json"


def sessions_in(path):
    if not path.exists():
        return []
    with TinyDb(path) as db:
        return db.list_sessions()


@pytest.mark.parametrize("cell", [
    '%agent state {"a": NaN}',
    '%agent state {"a": Infinity}',
    '%agent state {"a": "\\ud800"}',
    '%%agent --state \'{"a":"\\ud800"}\'\nhello',
    '%%agent --state \'{"a": NaN}\'\nhello',
    "%%agent --state 'not json'\nhello",
    "%%agent -m ''\nhello",
    "%%agent -s ''\nhello",
    "%%agent -u ' '\nhello",
    "%%agent\nlook at {obj.__init__.__globals__[os]}",
    "%%agent\nwide {x:>100000000}",
])
def test_bad_magic_input_is_one_red_line_and_nothing_is_written(nb, workdir, cell):
    nb.run("import os\nclass Obj:\n    def __init__(self):\n        self.ok = 1\nobj = Obj(); x = 1")
    ran = nb.run(cell)
    assert not ran.result.success
    assert one_red_line(ran).startswith("UsageError")
    assert sessions_in(db_path(workdir)) == []


@pytest.mark.parametrize("n", ["-5", "0"])
def test_history_of_fewer_than_one_run_is_refused(nb, workdir, n):
    assert nb.run("%%agent\nfirst").result.success
    ran = nb.run(f"%agent history {n}")
    assert one_red_line(ran).startswith("UsageError") and "1 or more" in one_red_line(ran)


def test_bad_state_leaves_an_existing_session_as_it_was(nb, workdir):
    assert nb.run('%agent state {"k": 1}').result.success
    ran = nb.run('%agent state {"a": NaN}')
    assert one_red_line(ran).startswith("UsageError") and "NaN" in one_red_line(ran)
    sessions = sessions_in(db_path(workdir))
    assert len(sessions) == 1 and sessions[0].session_state == {"k": 1}


def test_a_cell_holding_the_api_key_is_refused_and_nothing_is_sent(served, workdir, openai_server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    served.run(f"k = {SECRET!r}")
    ran = served.run("%%agent\nmy key is {k}")
    line = one_red_line(ran)
    assert line.startswith("UsageError") and "API key" in line and SECRET not in line
    assert openai_server.requests == [] and stored_runs(db_path(workdir)) == []


def test_export_of_a_session_whose_id_holds_a_slash_writes_beside_the_db(nb, workdir):
    with TinyDb(db_path(workdir)) as db:
        db.upsert_session(Session(session_id="team/run 1", session_name="slashed"))
    assert nb.run("%agent use slashed").result.success
    ran = nb.run("%agent export md")
    assert ran.result.success, ran.stdout + ran.stderr
    written = [p for p in workdir.iterdir() if p.suffix == ".md"]
    assert [p.name for p in written] == ["nbsessions-team_run.md"]
    assert stat.S_IMODE(os.stat(written[0]).st_mode) == 0o600


def test_a_failed_db_switch_keeps_the_previous_database(nb, workdir):
    assert nb.run("%%agent\nfirst").result.success
    (workdir / "a-directory.json").mkdir()
    ran = nb.run("%agent db a-directory.json")
    assert one_red_line(ran).startswith("UsageError") and "a-directory.json" in one_red_line(ran)
    assert nb.run("%%agent\nsecond").result.success
    assert [r.input for r in stored_runs(db_path(workdir))] == ["first", "second"]
    assert f"database: {db_path(workdir)}" in nb.run("%agent db").stdout


# -- the CLI -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("argv", [["ls", "-n", "-1"], ["ls", "-n", "0"], ["show", "--last", "-1"],
                                  ["show", "--last", "x"]])
def test_cli_counts_below_one_are_refused(tmp_path, capsys, argv):
    path = tmp_path / "s.json"
    with TinyDb(path) as db:
        Agent(model=RecordingModel(), db=db).run("hello")
        sid = db.list_sessions()[0].session_id
    command, *rest = argv
    args = [command, str(path), *([sid] if command == "show" else []), *rest]
    with pytest.raises(SystemExit) as caught:
        main(args)
    assert caught.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("python -m nbsessions") and ("needs 1 or more" in err[-1] or "whole number" in err[-1])


def test_batch_and_compare_refuse_a_prompt_holding_the_key_before_any_session_or_request(store, openai_server):
    from nbsessions.explore import batch, compare
    from nbsessions.presentation.templating import TemplateError

    model = OpenAIChat("gpt-test", base_url=openai_server.base_url, api_key=SECRET, max_retries=0)
    agent = Agent(model=model, db=store)
    with pytest.raises(TemplateError, match="row 1: the prompt contains the configured API key"):
        batch(agent, "say {x}", [{"x": "hello"}, {"x": SECRET}], progress=False)
    with pytest.raises(InvalidInputError, match="API key"):
        compare(agent, f"say {SECRET}", models=[model, OpenAIChat("other", base_url=openai_server.base_url)])
    assert openai_server.requests == [] and nothing_written(store)


def test_a_workflow_refuses_bad_input_before_opening_a_session(store):
    from nbsessions import Workflow

    flow = Workflow(steps=[Agent(model=RecordingModel())], db=store)
    for bad in ({"input": SURROGATE}, {"input": "ok", "user_id": 1}, {"input": "ok", "session_state": NAN_STATE}):
        with pytest.raises(InvalidInputError):
            flow.run(**bad)
    assert nothing_written(store)
