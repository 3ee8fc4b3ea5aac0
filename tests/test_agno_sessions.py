"""Agno's session cookbook and docs programs beyond the basics, ported by changing imports, model and db only.

Each test keeps the program's own calls and asserts what Agno asserts or prints, against the loopback
OpenAI-compatible server (what was "sent" is what the server received).
"""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from nbsessions import Agent, OpenAIChat, RunContext, TinyDb, tool
from nbsessions.events import RunEvent
from nbsessions.metrics import SessionMetrics
from nbsessions.requirement import ToolExecution
from nbsessions.summary import SessionSummaryManager


@pytest.fixture
def model(openai_server):
    """What the programs' ``OpenAIResponses(id=...)`` becomes: the loopback server."""
    return lambda id="gpt-5-mini": OpenAIChat(id=id, base_url=openai_server.base_url, api_key="test-key")


def call(name: str, **arguments) -> dict:
    return {"tool_calls": [{"name": name, "arguments": json.dumps(arguments)}]}


def system_text(openai_server, index: int = -1) -> str:
    first = openai_server.requests[index]["messages"][0]
    return first["content"] if first["role"] == "system" else ""


# -- cookbook 02_agents/04_tools: the tools a run called, on its RunOutput --------------------------------------


def test_run_output_tools_lists_every_executed_call_as_a_tool_execution(model, openai_server, tmp_path):
    def get_weather(city: str) -> str:
        """Get the weather for a city."""
        return f"sunny in {city}"

    agent = Agent(model=model(), tools=[get_weather], db=TinyDb(db_file=str(tmp_path / "data.json")))
    openai_server.script(call("get_weather", city="Paris"), call("get_weather", city="Rome"), "Both sunny.")
    response = agent.run("Weather in Paris and Rome?")
    assert [(t.tool_name, t.tool_args, t.result) for t in response.tools] == [
        ("get_weather", {"city": "Paris"}, "sunny in Paris"), ("get_weather", {"city": "Rome"}, "sunny in Rome")]
    assert all(isinstance(t, ToolExecution) and t.tool_call_id for t in response.tools)
    stored = agent.get_last_run_output()  # read back from the file: the same list
    assert [(t.tool_name, t.result) for t in stored.tools] == [("get_weather", "sunny in Paris"),
                                                               ("get_weather", "sunny in Rome")]
    assert stored.tools_requiring_confirmation == []


# -- docs: Human-in-the-loop, streaming; cookbook user_input_required.py ----------------------------------------


def test_streamed_confirmation_pauses_and_continue_run_streams_the_rest(model, openai_server):
    @tool(requires_confirmation=True)
    def get_top_hackernews_stories(num_stories: int) -> str:
        """Fetch top stories from Hacker News."""
        return json.dumps([f"story {i}" for i in range(num_stories)])

    agent = Agent(model=model(), tools=[get_top_hackernews_stories], markdown=True)
    openai_server.script(call("get_top_hackernews_stories", num_stories=2), "Here are 2 stories.")
    continued = []
    for run_event in agent.run("Fetch the top 2 hackernews stories.", stream=True):
        if run_event.is_paused:
            for requirement in run_event.active_requirements:
                if requirement.needs_confirmation:
                    requirement.confirm()
            response = agent.continue_run(run_id=run_event.run_id, requirements=run_event.requirements,
                                          stream=True)
            continued += [resp.content for resp in response]
    assert "".join(c for c in continued if c) == "Here are 2 stories."
    tool_message = [m for m in openai_server.last.body["messages"] if m["role"] == "tool"]
    assert tool_message[0]["content"] == '["story 0", "story 1"]'
    stored = agent.get_last_run_output()
    assert stored.status.value == "completed" and stored.tools[0].result == '["story 0", "story 1"]'


def test_a_rejected_call_tells_the_model_agnos_words(model, openai_server):
    @tool(requires_confirmation=True)
    def delete_file(path: str) -> str:
        return "deleted"

    agent = Agent(model=model(), tools=[delete_file])
    openai_server.script(call("delete_file", path="a.txt"), "Not deleted.")
    run_response = agent.run("Delete a.txt")
    for requirement in run_response.active_requirements:
        requirement.reject()
    agent.continue_run(run_id=run_response.run_id, requirements=run_response.requirements)
    tool_message = [m for m in openai_server.last.body["messages"] if m["role"] == "tool"]
    assert tool_message[0]["content"] == "Function call was rejected by the user"
    (execution,) = agent.get_last_run_output().tools
    assert execution.confirmed is False and execution.tool_call_error is True


def test_user_input_schema_lists_every_argument_prefilled_from_the_model(model, openai_server):
    @tool(requires_user_input=True, user_input_fields=["to_address"])
    def send_email(subject: str, body: str, to_address: str) -> str:
        """
        Send an email.

        Args:
            subject (str): The subject of the email.
            body (str): The body of the email.
            to_address (str): The address to send the email to.
        """
        return f"Sent email to {to_address} with subject {subject} and body {body}"

    agent = Agent(model=model(), tools=[send_email], markdown=True)
    openai_server.script(call("send_email", subject="Hello", body="Hello, world!"), "Sent.")
    run_response = agent.run("Send an email with the subject 'Hello' and the body 'Hello, world!'")
    offered = openai_server.requests[0]["tools"][0]["function"]["parameters"]["properties"]
    assert sorted(offered) == ["body", "subject"]  # the human's field is not asked of the model
    asked = []
    for requirement in run_response.active_requirements:
        if requirement.needs_user_input:
            for field in requirement.user_input_schema:
                if field.value is None:
                    asked.append(field.name)
                    field.value = "john@example.com"
    assert asked == ["to_address"]
    assert [(f.name, f.value) for f in run_response.requirements[0].user_input_schema] == [
        ("subject", "Hello"), ("body", "Hello, world!"), ("to_address", "john@example.com")]
    agent.continue_run(run_id=run_response.run_id, requirements=run_response.requirements)
    tool_message = [m for m in openai_server.last.body["messages"] if m["role"] == "tool"]
    assert tool_message[0]["content"] == "Sent email to john@example.com with subject Hello and body Hello, world!"


# -- cookbook 05_state_and_session/session_state_multiple_users.py ----------------------------------------------


def test_multiple_users_state_keys_fill_instructions_and_reach_tools(model, openai_server, tmp_path):
    shopping_list: dict = {}

    def add_item(run_context: RunContext, item: str) -> str:
        """Add an item to the current user's shopping list."""
        current_user_id = run_context.session_state["current_user_id"]
        current_session_id = run_context.session_state["current_session_id"]
        shopping_list.setdefault(current_user_id, {}).setdefault(current_session_id, []).append(item)
        return f"Item {item} added to the shopping list"

    agent = Agent(model=model(), db=TinyDb(db_file=str(tmp_path / "data.json")), tools=[add_item],
                  instructions=["Current User ID: {current_user_id}", "Current Session ID: {current_session_id}"],
                  markdown=True)
    openai_server.script(call("add_item", item="milk"), "Added.", call("add_item", item="tacos"), "Added.")
    agent.print_response("Add milk to the shopping list", stream=True, user_id="john_doe",
                         session_id="user_1_session_1")
    assert "Current User ID: john_doe" in system_text(openai_server)
    assert "Current Session ID: user_1_session_1" in system_text(openai_server)
    agent.print_response("Add tacos to the shopping list", stream=True, user_id="mark_smith",
                         session_id="user_2_session_1")
    assert shopping_list == {"john_doe": {"user_1_session_1": ["milk"]},
                             "mark_smith": {"user_2_session_1": ["tacos"]}}
    assert "current_user_id" not in agent.get_session_state("user_1_session_1")  # Agno never stores them


# -- run keywords: add_session_state_to_context, metadata, debug_mode -------------------------------------------


def test_run_keywords_agno_accepts(model, openai_server, caplog):
    agent = Agent(model=model(), session_state={"shopping_list": ["milk"]},
                  instructions="Items: {shopping_list}. Tenant: {tenant}.")
    with caplog.at_level(logging.DEBUG, logger="nbsessions.debug"):
        run = agent.run("What is on my list?", add_session_state_to_context=True, metadata={"tenant": "acme"},
                        debug_mode=True)
    system = system_text(openai_server)
    assert "Items: ['milk']. Tenant: acme." in system and "<session_state>" in system
    assert run.metadata == {"tenant": "acme"}
    assert any(run.run_id[:8] in r.getMessage() for r in caplog.records)
    agent.print_response("And now?", debug_mode=True)
    assert "<session_state>" not in system_text(openai_server)  # the agent's own setting again


# -- shapes: RunOutput fields, SessionMetrics, session_data, RunEvent members -----------------------------------


def test_run_output_and_session_shapes_are_agnos(model, openai_server, tmp_path):
    agent = Agent(model=model("gpt-4o-mini"), db=TinyDb(db_file=str(tmp_path / "m.json")),
                  session_id="session_metrics_demo", add_history_to_context=True, id="metrics-agent")
    run_output_1 = agent.run("What is the capital of France?")
    run_output_2 = agent.run("What about Germany?")
    assert isinstance(run_output_1.created_at, int)
    assert (run_output_1.agent_id, run_output_1.content_type, run_output_1.model_provider) == (
        "metrics-agent", "str", "OpenAI")
    session_metrics = agent.get_session_metrics()
    assert isinstance(session_metrics, SessionMetrics)
    assert session_metrics.input_tokens == run_output_1.metrics.input_tokens + run_output_2.metrics.input_tokens
    agent.update_session_state({"city": "Berlin"})
    assert agent.get_session().session_data["session_state"] == {"city": "Berlin"}
    assert {"ModelRequestStarted", "ModelRequestCompleted", "RunContentCompleted", "ToolCallError",
            "SessionSummaryCompleted"} <= {e.value for e in RunEvent}


def test_runs_stored_with_float_created_at_still_read(tmp_path):
    db = TinyDb(tmp_path / "old.json")
    agent = Agent(db=db)
    run = agent.run("hello")
    db.tinydb.table("runs").update({"created_at": 1700000000.75}, doc_ids=[run.run_id])
    db.close()
    again = TinyDb(tmp_path / "old.json")
    (read,) = again.list_runs(run.session_id)
    assert read.created_at == 1700000000 and read.content == run.content


def test_agentic_state_tool_takes_session_state_updates(model, openai_server):
    agent = Agent(model=model(), session_state={"shopping_list": []}, enable_agentic_state=True,
                  add_session_state_to_context=True)
    openai_server.script(call("update_session_state", session_state_updates={"shopping_list": ["milk"]}), "Ok.")
    agent.run("Add milk to my shopping list")
    assert agent.get_session_state() == {"shopping_list": ["milk"]}
    (result,) = [m["content"] for m in openai_server.last.body["messages"] if m["role"] == "tool"]
    assert result.startswith("Updated session state: {'shopping_list': ['milk']")


# -- history by messages ----------------------------------------------------------------------------------------


def test_num_history_messages_sends_exactly_the_newest_messages(model, openai_server):
    agent = Agent(model=model(), add_history_to_context=True, num_history_messages=3)
    agent.run("one")
    agent.run("two")
    agent.run("three")
    sent = [(m["role"], m["content"]) for m in openai_server.last.body["messages"]]
    assert sent == [("assistant", "echo: one"), ("user", "two"), ("assistant", "echo: two"), ("user", "three")]


# -- storage constructors ---------------------------------------------------------------------------------------


def test_tinydb_takes_agnos_file_store_keywords(model, openai_server, tmp_path):
    db = TinyDb(session_table="test_session", db_file=str(tmp_path / "example.json"))
    agent = Agent(model=model(), db=db)
    agent.run("hi", session_id="s1")
    assert db.tinydb.table("test_session").get(doc_id="s1")["session_id"] == "s1"
    assert "sessions" not in db.tinydb.tables()
    with pytest.raises(TypeError, match="memory_table"):
        TinyDb(db_file=str(tmp_path / "x.json"), memory_table="memories")


# -- summaries: Agno's defaults and its manager's options -------------------------------------------------------


def summarizing(openai_server):
    def reply(body):
        system = body["messages"][0]["content"] if body["messages"][0]["role"] == "system" else ""
        if "Topics:" in system:
            return "The user is John.\nTopics: John"
        return "echo: " + body["messages"][-1]["content"]
    openai_server.reply = reply


def test_enable_session_summaries_summarises_after_every_run_as_agno(model, openai_server):
    summarizing(openai_server)
    agent = Agent(model=model(), enable_session_summaries=True)
    agent.run("Hi my name is John", session_id="s1")
    summary = agent.db.get_session("s1").summary  # written before run() returned: no waiting
    assert summary == "The user is John."


def test_summary_manager_options_are_honoured(model, openai_server):
    summarizing(openai_server)
    manager = SessionSummaryManager(model=model("gpt-5-nano"), summary_request_message="Summarise, please.",
                                    conversation_limit=1)
    agent = Agent(model=model(), session_summary_manager=manager, enable_session_summaries=True)
    agent.run("Hi my name is John")
    (asked,) = [r for r in openai_server.requests if r["model"] == "gpt-5-nano"]
    request = asked["messages"][-1]["content"]
    assert request.endswith("Summarise, please.")
    assert "user: Hi my name is John" not in request and "echo: Hi my name is John" in request  # the newest 1
    with pytest.raises(ValueError, match="last_n_runs must be a positive integer"):
        SessionSummaryManager(last_n_runs=0)


# -- cookbook 21_fork_session/01_fork_session.py ----------------------------------------------------------------


def test_fork_session_with_agnos_keywords_returns_the_new_session_id(model, openai_server, tmp_path):
    agent = Agent(name="planner", model=model(), markdown=True,
                  db=TinyDb(session_table="checkpoint_demo", db_file=str(tmp_path / "fork.json")))

    async def main():
        original_sid, user_id = "trip-planning-original", "demo-user"
        await agent.arun(input="Top 3 cities in Japan?", session_id=original_sid, user_id=user_id)
        await agent.arun(input="Tell me more about Kyoto.", session_id=original_sid, user_id=user_id)
        new_sid = await agent.afork_session(source_session_id=original_sid, user_id=user_id)
        await agent.arun(input="Osaka's street food?", session_id=new_sid, user_id=user_id)
        return original_sid, new_sid

    original_sid, new_sid = asyncio.run(main())
    assert isinstance(new_sid, str) and new_sid != original_sid
    assert len(agent.get_session(original_sid).runs) == 2 and len(agent.get_session(new_sid).runs) == 3
    assert agent.fork_session(source_session_id=original_sid, user_id="demo-user") not in (new_sid, original_sid)


@pytest.mark.postgres
def test_postgres_takes_agnos_db_url_and_keeps_tool_calls_and_whole_second_times(postgres_url, model, openai_server):
    from nbsessions import PostgresDb

    def get_weather(city: str) -> str:
        return f"sunny in {city}"

    db = PostgresDb(db_url=postgres_url.replace("postgresql://", "postgresql+psycopg://", 1))
    agent = Agent(model=model(), db=db, tools=[get_weather])
    openai_server.script(call("get_weather", city="Oslo"), "Sunny.")
    run = agent.run("Weather in Oslo?")
    stored = agent.get_last_run_output()
    assert stored.created_at == run.created_at and isinstance(stored.created_at, int)
    assert [(t.tool_name, t.result) for t in stored.tools] == [("get_weather", "sunny in Oslo")]
    db.close()
