import pytest
from conftest import RecordingModel, echo

from nbsessions import Agent, FunctionModel, Message, ModelError, OfflineModel, RunStatus
from nbsessions.runs.summary import SUMMARY_PROMPT


def is_summary_request(messages: list[Message]) -> bool:
    return messages[0].content.startswith(SUMMARY_PROMPT)


def scripted(messages: list[Message]) -> str:
    """Answers summary requests with a marked summary (counting the prompts it covers); echoes the rest."""
    if is_summary_request(messages):
        return "SUMMARY of " + str(messages[-1].content.count("user:")) + " prompts"
    return echo(messages)


def test_summary_refreshes_every_n_runs_in_the_background(db):
    agent = Agent(model=RecordingModel(scripted), db=db, enable_session_summaries=True, session_summary_every=2)
    sid = agent.run("first").session_id
    agent.summarizer.wait()
    assert agent.get_session_summary(sid) is None
    agent.run("second", session_id=sid)
    agent.summarizer.wait()
    assert agent.get_session_summary(sid).summary == "SUMMARY of 2 prompts"
    agent.run("third", session_id=sid)
    agent.summarizer.wait()
    assert agent.get_session_summary(sid).summary == "SUMMARY of 2 prompts"  # only one new run since
    agent.run("fourth", session_id=sid)
    agent.summarizer.wait()
    assert agent.get_session_summary(sid).summary == "SUMMARY of 2 prompts"  # a new summary of the two new runs
    assert db.get_session(sid).metadata["summary_through"]["run_id"] == agent.get_runs(sid)[-1].run_id


def test_summary_replaces_the_runs_it_covers_in_the_context(db):
    model = RecordingModel(scripted)
    agent = Agent(model=model, db=db, enable_session_summaries=True, session_summary_every=2,
                  add_session_summary_to_context=True, add_history_to_context=True)
    sid = agent.run("one").session_id
    agent.run("two", session_id=sid)
    agent.summarizer.wait()
    agent.run("three", session_id=sid)
    agent.run("four", session_id=sid)
    agent.summarizer.wait()
    sent = {r[-1].content: r for r in model.requests if not is_summary_request(r)}  # by prompt
    assert [(m.role, m.content, m.from_history) for m in sent["three"]] == [
        ("system", "Summary of the conversation so far:\nSUMMARY of 2 prompts", False), ("user", "three", False)]
    assert sum(m.from_history for m in sent["four"]) == 2  # "three" and its reply: the summary covers the rest


def test_a_failing_summary_never_fails_the_run(db):
    def failing_summaries(messages):
        if messages[0].content.startswith(SUMMARY_PROMPT):
            raise ModelError("500 server error", status_code=500)
        return "fine"

    agent = Agent(model=FunctionModel(failing_summaries), db=db, enable_session_summaries=True,
                  session_summary_every=1)
    run = agent.run("x")
    agent.summarizer.wait()
    assert agent.summarizer.errors == ["500 server error"]
    assert run.status == RunStatus.completed and db.get_run(run.run_id).content == "fine"
    assert agent.get_session_summary(run.session_id) is None


def test_offline_summary_is_deterministic(db):
    agent = Agent(model=OfflineModel(), db=db, enable_session_summaries=True, session_summary_every=2)
    sid = agent.run("plot the sales data").session_id
    agent.run("now by region", session_id=sid)
    agent.summarizer.wait()
    assert agent.get_session_summary(sid).summary == "- asked: plot the sales data\n- asked: now by region"


def test_summaries_refresh_interval_must_be_positive():
    with pytest.raises(ValueError):
        Agent(enable_session_summaries=True, session_summary_every=0)


def test_a_closed_summarizer_never_calls_the_model_again(db):
    model = RecordingModel(lambda m: "x")
    agent = Agent(model=model, db=db, enable_session_summaries=True, session_summary_every=1)
    agent.summarizer.close()
    run = agent.run("hi")
    agent.summarizer.wait()
    assert model.prompts == [["hi"]]  # the reply only: no summary request
    assert agent.get_session_summary(run.session_id) is None


def test_a_summary_is_one_whole_reply_with_a_token_bound(openai_server):
    from nbsessions.llm.openai import OpenAIChat
    from nbsessions.records.schema import RunOutput
    from nbsessions.runs.summary import SUMMARY_TOKENS, write_summary

    openai_server.script("They planned a trip.\nTopics: travel, budget")
    model = OpenAIChat("local-model", base_url=openai_server.base_url)
    run = RunOutput(input="Plan a trip", content="Sure", status=RunStatus.completed)
    assert write_summary(model, None, [run]) == ("They planned a trip.", ["travel", "budget"])
    body = openai_server.last.body
    assert not body.get("stream") and body["max_tokens"] == SUMMARY_TOKENS  # bounded, not streamed
