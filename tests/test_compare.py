"""``compare``: one prompt on a grid of models × variants × settings, concurrently, each in its own fork."""

from __future__ import annotations

import sys
import threading
import types

import pytest
from conftest import RecordingModel
from xss import active_content

from nbsessions import Agent, FunctionModel, InMemoryDb, RunStatus, SessionNotFoundError
from nbsessions.explore import JobStatus, compare, contains, is_json
from nbsessions.llm import OpenAIChat

KEY = "test-key-compare"


@pytest.fixture(autouse=True)
def no_openai_env(monkeypatch):
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


def chat(server, model_id: str) -> OpenAIChat:
    return OpenAIChat(model_id, base_url=server.base_url, api_key=KEY, max_retries=0, timeout=10)



def test_cells_run_concurrently_and_a_failing_model_fails_only_its_own_cell(openai_server):
    arrived = threading.Barrier(3, timeout=5)

    def reply(body):  # all three requests must be at the server at once, or the barrier breaks
        arrived.wait()
        return f"answer from {body['model']}"

    openai_server.reply = reply
    agent = Agent(model=chat(openai_server, "gpt-a"))
    models = [chat(openai_server, "gpt-a"), chat(openai_server, "slow-150"), chat(openai_server, "error-500")]
    result = compare(agent, "What is 2+2?", models=models, concurrency=3)
    assert [c.model for c in result.cells] == ["gpt-a", "slow-150", "error-500"]
    assert [c.status for c in result.cells] == [JobStatus.completed, JobStatus.completed, JobStatus.error]
    assert result[0].content == "answer from gpt-a" and result[1].content == "answer from slow-150"
    failed = result[2]
    assert failed.error.startswith("500 server error") and failed.run.status == RunStatus.error
    assert failed.metrics.duration is not None and result[1].metrics.duration >= 0.15
    assert result[0].metrics.input_tokens > 0 and result[0].metrics.output_tokens == 3


def test_every_cell_gets_its_own_fork_of_the_current_session_with_equal_history(openai_server):
    agent = Agent(model=chat(openai_server, "gpt-a"), add_history_to_context=True)
    base = agent.create_session("research")
    agent.set_active_session(base.session_id)
    agent.run("first question", session_id=base.session_id)
    agent.run("second question", session_id=base.session_id)
    openai_server.reset()
    result = compare(agent, "third question", models=["gpt-a", "gpt-b"])
    sessions = {c.session_id for c in result.cells}
    assert len(sessions) == 2 and base.session_id not in sessions
    for cell in result.cells:
        fork = agent.get_session(cell.session_id)
        assert fork.forked_from["session_id"] == base.session_id
        assert fork.session_name == f"compare: {cell.model}"
        assert [r.input for r in agent.get_runs(cell.session_id)] == [
            "first question", "second question", "third question"]
    sent = sorted(openai_server.requests, key=lambda body: body["model"])
    assert [b["model"] for b in sent] == ["gpt-a", "gpt-b"]
    assert sent[0]["messages"] == sent[1]["messages"]  # the same history for every model
    assert [m["content"] for m in sent[0]["messages"]] == [
        "first question", "echo: first question", "second question", "echo: second question", "third question"]
    assert [r.input for r in agent.get_runs(base.session_id)] == ["first question", "second question"]


def test_model_names_use_the_agent_endpoint_and_key(openai_server):
    openai_server.api_key = KEY  # the server refuses any other key
    agent = Agent(model=chat(openai_server, "base"))
    result = compare(agent, "hi", models=["small-model", "large-model"])
    assert [c.status for c in result.cells] == [JobStatus.completed] * 2
    assert sorted(b["model"] for b in openai_server.requests) == ["large-model", "small-model"]


def test_variants_and_settings_multiply_the_grid_and_reach_the_server(openai_server):
    agent = Agent(model=chat(openai_server, "gpt-a"))
    result = compare(agent, "Name a colour.", variants={"terse": "Be terse.", "pirate": "Talk like a pirate."},
                     settings=[{"temperature": 0}, {"temperature": 0.7}])
    assert [c.label for c in result.cells] == [
        "gpt-a · terse · temperature=0", "gpt-a · terse · temperature=0.7",
        "gpt-a · pirate · temperature=0", "gpt-a · pirate · temperature=0.7"]
    sent = {(b["messages"][0]["content"], b["temperature"]) for b in openai_server.requests}
    assert sent == {("Be terse.", 0), ("Be terse.", 0.7), ("Talk like a pirate.", 0), ("Talk like a pirate.", 0.7)}
    assert agent.model.settings == {}  # sweeps use copies; the agent's model is unchanged
    assert all(agent.get_runs(c.session_id)[-1].tags[:2] == ["compare", f"variant:{c.variant}"]
               for c in result.cells)


def test_checks_give_pass_fail_per_cell_and_a_pass_rate_per_model():
    agent = Agent(model=RecordingModel())
    json_model = RecordingModel('{"answer": 4}', id="json-bot")
    prose_model = RecordingModel("The answer is four.", id="prose-bot")
    result = compare(agent, "2+2 as JSON", models=[json_model, prose_model],
                     settings=[{"temperature": 0}, {"temperature": 1}], checks=[is_json, contains("4")])
    assert result.check_names == ["is_json", "contains '4'"]
    assert result.pass_rates() == {"json-bot": 1.0, "prose-bot": 0.0}
    prose = result.cells[2]
    assert [(c.name, c.passed) for c in prose.checks] == [("is_json", False), ("contains '4'", False)]
    assert prose.checks[1].detail == "missing '4'"


def test_a_failed_cell_fails_its_checks_and_lowers_the_pass_rate():
    def broken(messages):
        raise TimeoutError("no answer")

    agent = Agent(model=RecordingModel())
    result = compare(agent, "q", models=[RecordingModel(id="ok"), FunctionModel(broken, id="broken")],
                     checks=[contains("echo")])
    assert result.pass_rates() == {"ok": 1.0, "broken": 0.0}
    assert result[1].checks[0].detail == "no reply (error: TimeoutError: no answer)"


def test_without_any_session_each_cell_starts_a_fresh_one():
    agent = Agent(model=RecordingModel())
    result = compare(agent, "hello", models=[RecordingModel(id="a"), RecordingModel(id="b")])
    for cell in result.cells:
        session = agent.get_session(cell.session_id)
        assert session.forked_from is None and len(agent.get_runs(cell.session_id)) == 1


def test_an_unknown_base_session_fails_before_anything_runs():
    db = InMemoryDb()
    agent = Agent(model=RecordingModel(), db=db)
    with pytest.raises(SessionNotFoundError):
        compare(agent, "hello", session_id="no-such-session")
    assert db.list_sessions() == []
    with pytest.raises(ValueError, match="empty"):
        compare(agent, "   ")


def test_records_are_flat_one_per_cell():
    agent = Agent(model=RecordingModel(id="m"))
    records = compare(agent, "hi", checks=[contains("hi")]).to_records()
    assert len(records) == 1
    record = records[0]
    assert {k: record[k] for k in ("cell", "model", "variant", "settings", "status", "content", "passed")} == {
        "cell": "m", "model": "m", "variant": None, "settings": {}, "status": "completed", "content": "echo hi",
        "passed": True}
    assert record["check:contains 'hi'"] is True and record["input_tokens"] > 0 and record["run_id"]


def test_to_pandas_says_how_to_get_pandas_when_it_is_missing(monkeypatch):
    result = compare(Agent(model=RecordingModel()), "hi")
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas now raises ImportError
    with pytest.raises(ImportError, match=r"pip install pandas.*to_records\(\)"):
        result.to_pandas()
    fake = types.SimpleNamespace(DataFrame=types.SimpleNamespace(from_records=lambda records: ("frame", records)))
    monkeypatch.setitem(sys.modules, "pandas", fake)
    assert result.to_pandas() == ("frame", result.to_records())


def test_html_shows_cells_side_by_side_and_no_model_text_stays_active():
    payload = 'Some **bold** text\n\n<script>alert(1)</script>\n\n<img src=x onerror="alert(2)">'

    def hostile(messages):
        raise RuntimeError('<script>alert("error")</script>')

    agent = Agent(model=RecordingModel())
    result = compare(agent, "hi <b>there</b>", models=[RecordingModel(payload, id="<i>evil</i>"),
                                                       FunctionModel(hostile, id="failing")],
                     checks=[check_that_quotes_the_reply()])
    page = result._repr_html_()
    assert active_content(page) == []
    assert "<script" not in page and "<img" not in page and "<i>evil</i>" not in page
    assert "&lt;i&gt;evil&lt;/i&gt;" in page and "<strong>bold</strong>" in page
    assert "hi &lt;b&gt;there&lt;/b&gt;" in page
    assert page.count("<th style") == 1 + 2 + 6  # corner, two model columns, six row headers (5 + one check)
    for word in ("tokens", "latency", "cost", "✓", "✗"):
        assert word in page


def check_that_quotes_the_reply():
    from nbsessions.explore import check

    return check(lambda reply: (True, reply), name="quotes <script>")


def test_ctrl_c_keeps_finished_cells_and_marks_the_rest_not_run():
    def interrupts(messages):
        raise KeyboardInterrupt

    agent = Agent(model=RecordingModel())
    models = [RecordingModel(id="first"), FunctionModel(interrupts, id="second"), RecordingModel(id="third")]
    with pytest.warns(RuntimeWarning, match="1 of 3 cells completed"):
        result = compare(agent, "hi", models=models, concurrency=1)
    assert result.interrupted
    assert [c.status for c in result.cells] == [JobStatus.completed, JobStatus.cancelled, JobStatus.not_run]
    assert result[1].run.status == RunStatus.cancelled and result[2].session_id is None
    assert result.pass_rates() == {"first": 1.0, "second": 0.0, "third": None}
