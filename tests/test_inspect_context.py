"""What a run sent, and what the next run would send: ``get_run_context`` and the dry-run ``preview_context``."""

from __future__ import annotations

import pytest
from conftest import RecordingModel

from nbsessions import Agent, FunctionModel, OfflineModel, SessionAccessError, TinyDb
from nbsessions.llm import OpenAIChat
from nbsessions.presentation.render_context import headline
from nbsessions.records.schema import Message, RunOutput, RunStatus

SECRET = "sk-test-never-shown-0123456789"


def lookup_city(name: str) -> str:
    """Facts about a city."""
    return f"{name}: 2 million people"


def wire(message: dict) -> tuple[str, str | None]:
    return message["role"], message.get("content")


@pytest.fixture
def served_agent(tmp_path, openai_server):
    db = TinyDb(tmp_path / "nb.nbsessions.json")
    model = OpenAIChat("gpt-5.2", base_url=openai_server.base_url, api_key=SECRET, max_retries=0)
    agent = Agent(model=model, db=db, add_history_to_context=True, num_history_runs=2, tools=[lookup_city],
                  instructions="You help with {topic}.", session_state={"topic": "geography"})
    yield agent
    db.close()


def test_the_preview_is_exactly_what_the_server_receives_on_the_next_run(served_agent, openai_server):
    agent = served_agent
    sid = agent.create_session("trip").session_id
    for prompt in ("Capital of France?", "Of Spain?", "Of Italy?"):
        agent.run(prompt, session_id=sid)
    preview = agent.preview_context("And of Portugal?", sid)
    before = len(openai_server.requests)
    agent.run("And of Portugal?", session_id=sid)
    body = openai_server.requests[before]
    assert [wire(m) for m in body["messages"]] == [(m.role, m.content) for m in preview.to_messages()]
    assert [t["function"]["name"] for t in body["tools"]] == [t["name"] for t in preview.tools] == ["lookup_city"]
    assert [t["function"]["parameters"] for t in body["tools"]] == [t["parameters"] for t in preview.tools]
    assert body["messages"][0]["content"] == "You help with geography."
    assert len(body["messages"]) == 1 + 4 + 1  # system, two history exchanges, the prompt


def test_a_preview_writes_nothing_not_even_a_new_session(tmp_path):
    path = tmp_path / "s.json"
    db = TinyDb(path)
    agent = Agent(model=RecordingModel("hi"), db=db, add_history_to_context=True)
    sid = agent.run("first").session_id
    size = path.stat().st_size
    preview = agent.preview_context("second", sid, session_state={"k": 1})
    fresh = agent.preview_context("hello", "no-such-session-yet")
    assert path.stat().st_size == size and len(agent.get_runs(sid)) == 1
    assert db.get_session("no-such-session-yet") is None and agent.get_session_state(sid) == {}
    assert preview.is_preview and preview.run_id is None
    assert [(m.part, m.content) for m in preview.messages] == [("history", "first"), ("history", "hi"),
                                                              ("prompt", "second")]
    assert [(m.part, m.content) for m in fresh.messages] == [("prompt", "hello")]
    db.close()


def test_a_stored_run_shows_each_history_message_with_the_run_it_came_from(served_agent, openai_server):
    agent = served_agent
    sid = agent.create_session().session_id
    first = agent.run("Capital of France?", session_id=sid)
    openai_server.fail_next("error-500")
    with pytest.raises(Exception):  # noqa: B017  (the failed run is kept, never sent as history)
        agent.run("Broken?", session_id=sid)
    second = agent.run("Of Spain?", session_id=sid)
    third = agent.run("Of Italy?", session_id=sid)
    sent = agent.get_run_context(third.run_id)
    assert [(m.part, m.from_run_id) for m in sent.messages] == [
        ("system", None), ("history", first.run_id), ("history", first.run_id),
        ("history", second.run_id), ("history", second.run_id), ("prompt", None)]
    assert sent.messages[0].content == "You help with geography." and sent.messages[-1].content == "Of Italy?"
    assert sent.tools == [{"name": "lookup_city"}] and sent.run_id == third.run_id
    assert sent.context_window == 400_000 and sent.tokens_estimated  # gpt-5.2, from the price table
    assert sent.reported_input_tokens == third.metrics.input_tokens > 0 and not sent.reported_estimated
    assert sent.total_tokens == sum(m.tokens for m in sent.messages) and 0 < sent.window_share < 0.01
    assert "Broken?" not in [m.content for m in sent.messages]
    assert SECRET not in repr(sent)


def test_a_summary_is_shown_apart_from_the_system_prompt(tmp_path):
    db = TinyDb(tmp_path / "s.json")
    agent = Agent(model=RecordingModel("ok"), db=db, instructions="Be brief.",
                  add_session_summary_to_context=True)
    sid = agent.create_session().session_id
    db.update_session(sid, summary="We talked about maps.")
    run = agent.run("Next?", session_id=sid)
    sent = agent.get_run_context(run.run_id)
    assert [(m.part, m.content) for m in sent.messages] == [
        ("system", "Be brief."), ("summary", "We talked about maps."), ("prompt", "Next?")]
    assert [m.content for m in sent.to_messages()] == [m.content for m in run.messages[:2]]
    db.close()


def test_tool_rounds_are_shown_after_the_prompt_and_counted_as_requests(tmp_path):
    from nbsessions.llm.base import ToolCall

    def reply(messages, tools):
        if messages[-1].role == "tool":
            return "Paris has 2 million people."
        return ToolCall("call_1", "lookup_city", '{"name": "Paris"}')

    agent = Agent(model=FunctionModel(reply), tools=[lookup_city], token_counter=lambda text: len(text.split()))
    run = agent.run("How big is Paris?")
    sent = agent.get_run_context(run.run_id)
    assert [m.part for m in sent.messages] == ["prompt", "tool call", "tool result"]
    assert sent.messages[2].content == "Paris: 2 million people" and sent.requests == 2
    assert not sent.tokens_estimated and sent.messages[0].tokens == 4  # the agent's own counter, words here
    assert sent.reported_estimated and sent.context_window is None  # a function model: no window known


@pytest.mark.parametrize("model", [OfflineModel(), FunctionModel(lambda m: "ok")], ids=["offline", "function"])
def test_a_scripted_models_counts_are_stored_as_estimated_and_its_context_says_so(tmp_path, model):
    path = tmp_path / "s.json"
    with TinyDb(path) as db:
        run_id = Agent(model=model, db=db).run("How big is Paris?").run_id
    with TinyDb(path) as db:
        assert db.get_run(run_id).metrics.tokens_estimated
        sent = Agent(model=model, db=db).get_run_context(run_id)
    assert sent.reported_estimated and f"provider reported ~{sent.reported_input_tokens:,} input" in headline(sent)


def test_a_servers_count_is_exact_unless_the_server_sent_none(served_agent, openai_server):
    exact = served_agent.run("Capital of France?")
    openai_server.send_usage = False
    estimated = served_agent.run("Of Spain?")
    assert not served_agent.get_run_context(exact.run_id).reported_estimated
    sent = served_agent.get_run_context(estimated.run_id)
    assert estimated.metrics.tokens_estimated and sent.reported_estimated  # the run's flag, whatever the provider
    assert f"provider reported ~{sent.reported_input_tokens:,} input" in headline(sent)


@pytest.mark.parametrize("model", [OfflineModel(), FunctionModel(lambda m: "ok")], ids=["offline", "function"])
def test_an_offline_or_function_run_stored_before_counts_were_flagged_still_reads_as_estimated(tmp_path, model):
    path = tmp_path / "old.json"
    with TinyDb(path) as db:
        run = Agent(model=model, db=db).run("How big is Paris?")
        run.metrics.tokens_estimated = False  # as these models' runs were stored before they flagged their usage
        db.upsert_run(run)
    with TinyDb(path) as db:
        assert not db.get_run(run.run_id).metrics.tokens_estimated
        sent = Agent(model=model, db=db).get_run_context(run.run_id)
    assert sent.reported_estimated and sent.reported_input_tokens == run.metrics.input_tokens > 0


def test_runs_stored_before_the_source_was_recorded_are_matched_to_earlier_runs():
    agent = Agent(model=RecordingModel("a1"), add_history_to_context=True)
    first = agent.run("q1")
    old = RunOutput(session_id=first.session_id, status=RunStatus.completed, input="q2", content="a2",
                    messages=[Message("user", "q1", from_history=True), Message("assistant", "a1", from_history=True),
                              Message("user", "q2"), Message("assistant", "a2")])
    agent.db.upsert_run(old)
    sent = agent.get_run_context(old.run_id)
    assert [(m.part, m.from_run_id) for m in sent.messages] == [
        ("history", first.run_id), ("history", first.run_id), ("prompt", None)]


def test_another_users_run_is_refused(tmp_path):
    db = TinyDb(tmp_path / "u.json")
    run = Agent(model=RecordingModel("hi"), db=db, user_id="alice").run("secret plan")
    bob = Agent(db=db, user_id="bob")
    with pytest.raises(SessionAccessError):
        bob.get_run_context(run.run_id)
    with pytest.raises(SessionAccessError):
        bob.preview_context("peek", run.session_id)
    db.close()
