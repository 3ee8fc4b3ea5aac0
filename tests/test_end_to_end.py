"""The Agent against a real OpenAI-compatible server and real TinyDB files, across processes."""

import json
import os
import stat
import subprocess
import sys
import textwrap

import pytest

from nbsessions import Agent, ModelError, OpenAIChat, OpenAIResponses, RunStatus, TinyDb, tool

API_CLASSES = [OpenAIChat, OpenAIResponses]
FAKE_KEY = "test-key-not-real-0123"


@pytest.mark.parametrize("api", API_CLASSES)
def test_the_seed_example_works_unchanged_but_for_base_url(openai_server, api):
    agent = Agent(model=api(id="gpt-5.2", base_url=openai_server.base_url))
    r = agent.run("Hi")
    assert r.content == "echo: Hi"
    assert len(r.run_id) == 36 and len(r.session_id) == 36
    usage = openai_server.last.usage
    assert (r.metrics.input_tokens, r.metrics.output_tokens) == (usage["input_tokens"], usage["output_tokens"])
    assert r.metrics.cost is None  # gpt-5.2 has a public price, but this server is not OpenAI's


@pytest.mark.parametrize("api", API_CLASSES)
def test_history_reaches_the_server_only_when_asked(openai_server, api):
    model = api(id="local-llama", base_url=openai_server.base_url)
    agent = Agent(model=model, add_history_to_context=True, num_history_runs=2)
    sid = agent.run("one").session_id
    for prompt in ("two", "three"):
        agent.run(prompt, session_id=sid)
    last = agent.run("four", session_id=sid)
    sent = [m.get("content") for m in openai_server.last.body.get("messages") or openai_server.last.body["input"]]
    assert sent == ["two", "echo: two", "three", "echo: three", "four"]
    assert last.metrics.cost is None  # a local model has no known price
    Agent(model=model).run("alone", session_id=sid)
    assert "three" not in json.dumps(openai_server.last.body)


@pytest.mark.parametrize("api", API_CLASSES)
def test_token_budget_is_what_the_server_receives(openai_server, api):
    agent = Agent(model=api(id="m", base_url=openai_server.base_url), add_history_to_context=True,
                  num_history_runs=10, token_counter=len)
    sid = agent.run("a" * 100).session_id
    agent.run("b" * 100, session_id=sid)
    agent.run("c", session_id=sid, max_history_tokens=1 + 100 + len("echo: " + "b" * 100) + 5)
    sent = json.dumps(openai_server.last.body)
    assert "b" * 100 in sent and "a" * 100 not in sent


@pytest.mark.parametrize("api", API_CLASSES)
def test_tool_calls_over_the_wire_for_both_apis(openai_server, api):
    @tool
    def lookup(key: str) -> str:
        """Look a key up."""
        return f"value-of-{key}"

    openai_server.script({"content": "", "tool_calls": [{"name": "lookup", "arguments": '{"key": "k1"}'}]},
                         "the value is value-of-k1")
    agent = Agent(model=api(id="m", base_url=openai_server.base_url), tools=[lookup])
    run = agent.run("what is k1?")
    assert run.status == RunStatus.completed and run.content == "the value is value-of-k1"
    assert [m.role for m in run.messages] == ["user", "assistant", "tool", "assistant"]
    second_request = json.dumps(openai_server.calls[-1].body)
    assert "value-of-k1" in second_request and "lookup" in second_request
    assert run.metrics.input_tokens == sum(c.usage["input_tokens"] for c in openai_server.calls[-2:])


@pytest.mark.parametrize("mode, status", [("error-401", 401), ("error-429", 429), ("error-500", 500),
                                          ("garbage", None)])
def test_provider_failures_are_stored_and_raised_as_one_line(openai_server, tmp_path, mode, status):
    db = TinyDb(tmp_path / "s.json")
    agent = Agent(model=OpenAIChat(id=mode, base_url=openai_server.base_url, max_retries=0, api_key=FAKE_KEY),
                  db=db)
    with pytest.raises(ModelError) as caught:
        agent.run("hello")
    assert caught.value.status_code == status
    assert "\n" not in str(caught.value) and str(caught.value)
    stored = db.get_run(caught.value.run.run_id)
    assert stored.status == RunStatus.error and stored.error == str(caught.value)
    db.close()
    assert FAKE_KEY not in (tmp_path / "s.json").read_text()


def test_the_api_key_never_reaches_the_db_file_or_reprs(openai_server, tmp_path):
    path = tmp_path / "s.json"
    model = OpenAIResponses(id="gpt-5.2", base_url=openai_server.base_url, api_key=FAKE_KEY)
    agent = Agent(model=model, db=TinyDb(path))
    run = agent.run("hi")
    assert FAKE_KEY not in repr(agent) + repr(model) + repr(run) + str(vars(model))
    agent.db.close()
    assert FAKE_KEY not in path.read_text()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert openai_server.last.headers["authorization"] == f"Bearer {FAKE_KEY}"  # it was used, just never stored


WRITER = textwrap.dedent("""
    import sys
    from nbsessions import Agent, OpenAIChat, TinyDb
    path, base_url, session_id, prompt = sys.argv[1:5]
    agent = Agent(model=OpenAIChat(id="m", base_url=base_url), db=TinyDb(path), add_history_to_context=True)
    run = agent.run(prompt, session_id=session_id if session_id != "-" else None)
    agent.set_session_name(run.session_id, session_name="persisted")
    print(run.session_id)
""")


def test_runs_written_by_one_process_are_read_with_history_by_another(openai_server, tmp_path):
    path = str(tmp_path / "nb.nbsessions.json")

    def in_new_process(session_id: str, prompt: str) -> str:
        done = subprocess.run([sys.executable, "-c", WRITER, path, openai_server.base_url, session_id, prompt],
                              capture_output=True, text=True, timeout=60, check=True)
        return done.stdout.strip()

    sid = in_new_process("-", "first question")
    assert in_new_process(sid, "second question") == sid
    second_body = json.dumps(openai_server.last.body)
    assert "first question" in second_body and "echo: first question" in second_body
    agent = Agent(db=TinyDb(path))
    assert agent.get_session(sid).session_name == "persisted"
    assert [r.input for r in agent.get_runs(sid)] == ["first question", "second question"]
    assert [m.content for m in agent.get_chat_history(sid)] == [
        "first question", "echo: first question", "second question", "echo: second question"]
