"""Agno-shaped streaming events and the async API, over one run engine.

Ported the way an Agno user writes them: ``for event in agent.run(..., stream=True)``, ``event.event ==
RunEvent.run_content``, ``await agent.arun(...)``, ``async for event in agent.arun(..., stream=True)``.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from nbsessions import Agent, FunctionModel, ModelError, RunEvent, RunOutput, RunStatus, tool
from nbsessions.events import RunContentEvent, ToolCallCompletedEvent
from nbsessions.llm.base import ToolCall


def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"warm in {city}"


def weather_model(messages):
    """Calls the tool once, then answers from its result."""
    if messages[-1].role != "tool":
        yield "let me check. "
        yield ToolCall("c1", "get_weather", '{"city": "Rome"}')
        return
    yield "it is "
    yield messages[-1].content


@pytest.fixture
def weather_agent(db):
    return Agent(model=FunctionModel(weather_model), db=db, tools=[get_weather], name="forecaster")


def kinds(events) -> list[str]:
    return [event.event for event in events]


def squeeze(names: list[str]) -> list[str]:
    """Runs of the same event as one, so the order reads at a glance."""
    return [name for i, name in enumerate(names) if i == 0 or names[i - 1] != name]


# -- streaming events ------------------------------------------------------------------------------


def test_stream_yields_only_content_events_whose_text_is_the_reply(weather_agent, db):
    events = list(weather_agent.run("weather?", stream=True))
    assert {event.event for event in events} == {RunEvent.run_content}
    assert all(isinstance(event, RunContentEvent) for event in events)
    reply = "".join(str(event) for event in events)
    assert reply == "let me check. it is warm in Rome"
    stored = db.list_runs(events[0].session_id)[-1]
    assert stored.content == reply and stored.status == RunStatus.completed


def test_stream_events_reports_the_run_in_agnos_order(weather_agent):
    events = list(weather_agent.run("weather?", stream=True, stream_events=True))
    assert squeeze(kinds(events)) == ["RunStarted", "RunContent", "ToolCallStarted", "ToolCallCompleted",
                                      "RunContent", "RunCompleted"]
    started, completed = events[0], events[-1]
    assert started.model == "function" and started.agent_name == "forecaster"
    assert {event.run_id for event in events} == {started.run_id}
    tool_done = next(e for e in events if isinstance(e, ToolCallCompletedEvent))
    assert (tool_done.tool.tool_name, tool_done.tool.tool_args, tool_done.content) == (
        "get_weather", {"city": "Rome"}, "warm in Rome")
    assert completed.content == "let me check. it is warm in Rome"
    assert completed.metrics.output_tokens > 0
    assert "".join(map(str, events)) == completed.content  # print(event, end="") prints just the reply


def test_yield_run_output_ends_the_stream_with_the_stored_run(weather_agent, db):
    items = list(weather_agent.run("weather?", stream=True, yield_run_output=True))
    final = items[-1]
    assert isinstance(final, RunOutput) and final.status == RunStatus.completed
    assert all(item.event == RunEvent.run_content for item in items[:-1])
    assert db.get_run(final.run_id).content == final.content == "".join(map(str, items[:-1]))


def test_a_paused_run_ends_its_stream_with_run_paused_even_without_stream_events(db):
    @tool(requires_confirmation=True)
    def delete_file(path: str) -> str:
        """Delete a file."""
        return f"deleted {path}"

    def model(messages):
        if messages[-1].role == "tool":
            return "done"
        return ToolCall("c9", "delete_file", '{"path": "a.txt"}')

    agent = Agent(model=FunctionModel(model), db=db, tools=[delete_file])
    events = list(agent.run("clean up", stream=True))
    assert kinds(events) == ["RunPaused"]
    paused = events[0]
    assert paused.is_paused and paused.tools[0].requires_confirmation
    assert (paused.tools[0].tool_name, paused.tools[0].tool_args) == ("delete_file", {"path": "a.txt"})
    assert db.get_run(paused.run_id).status == RunStatus.paused
    resumed = list(agent.continue_run(paused.run_id, approve=True, stream=True, stream_events=True))
    assert kinds(resumed)[0] == "RunContinued" and kinds(resumed)[-1] == "RunCompleted"
    assert db.get_run(paused.run_id).messages[-2].content == "deleted a.txt"


def test_a_provider_error_is_reported_as_run_error_then_raised_with_the_stored_run(db):
    def broken(messages):
        yield "partial "
        raise ModelError("503 server error from example: overloaded", status_code=503)

    agent = Agent(model=FunctionModel(broken), db=db)
    stream = agent.run("go", stream=True)
    seen = []
    with pytest.raises(ModelError, match="503") as caught:
        for event in stream:
            seen.append(event)
    assert kinds(seen) == ["RunContent", "RunError"]
    assert seen[-1].content == "503 server error from example: overloaded"
    assert caught.value.run.status == RunStatus.error
    assert db.get_run(stream.run.run_id).content == "partial "


def test_events_of_a_real_openai_stream(db, openai_server):
    from nbsessions import OpenAIChat

    openai_server.script({"content": "", "tool_calls": [{"name": "get_weather", "arguments": '{"city": "Oslo"}'}]},
                         "cold in Oslo, sorry")
    agent = Agent(model=OpenAIChat(id="local", base_url=openai_server.base_url), db=db, tools=[get_weather])
    events = list(agent.run("weather?", stream=True, stream_events=True))
    assert squeeze(kinds(events)) == ["RunStarted", "ToolCallStarted", "ToolCallCompleted", "RunContent",
                                      "RunCompleted"]
    assert events[-1].content == "cold in Oslo, sorry"
    sent = openai_server.requests[1]["messages"]
    assert sent[-1] == {"role": "tool", "tool_call_id": sent[-2]["tool_calls"][0]["id"], "content": "warm in Oslo"}


# -- async -----------------------------------------------------------------------------------------


def test_arun_returns_the_completed_run_like_run(weather_agent, db):
    run = asyncio.run(weather_agent.arun("weather?"))
    assert run.status == RunStatus.completed and run.content == "let me check. it is warm in Rome"
    assert db.get_run(run.run_id).content == run.content


def test_async_stream_yields_the_same_events_as_the_sync_stream(weather_agent):
    async def collect():
        return [event async for event in weather_agent.arun("weather?", stream=True, stream_events=True,
                                                             yield_run_output=True)]

    items = asyncio.run(collect())
    sync = list(weather_agent.run("weather?", stream=True, stream_events=True, yield_run_output=True))
    assert kinds(items[:-1]) == kinds(sync[:-1])
    assert items[-1].content == sync[-1].content and items[-1].status == RunStatus.completed


def test_async_tools_are_awaited_by_arun_and_refused_by_run(db):
    async def lookup(key: str) -> str:
        """Look a key up."""
        await asyncio.sleep(0)
        return json.dumps({key: 42})

    def model(messages):
        if messages[-1].role != "tool":
            return ToolCall("c1", "lookup", '{"key": "answer"}')
        return f"got {messages[-1].content}"

    agent = Agent(model=FunctionModel(model), db=db, tools=[lookup])
    assert asyncio.run(agent.arun("look")).content == 'got {"answer": 42}'
    assert "async tool" in agent.run("look").content


def test_cancelling_an_arun_task_stores_the_run_as_cancelled_with_its_partial_reply(db):
    async def main():
        reached = asyncio.Event()
        never = asyncio.Event()

        async def hanging(messages):
            yield "partial "
            reached.set()
            await never.wait()
            yield "never"

        agent = Agent(model=FunctionModel(hanging), db=db)
        task = asyncio.create_task(agent.arun("go"))
        await reached.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return agent

    agent = asyncio.run(main())
    (run,) = agent.get_runs(agent.get_sessions()[0].session_id)
    assert run.status == RunStatus.cancelled and run.content == "partial "


def test_closing_an_async_stream_early_stores_the_run_as_cancelled(db):
    agent = Agent(model=FunctionModel(lambda m: iter(["one ", "two ", "three"])), db=db)

    async def main():
        stream = agent.arun("go", stream=True)
        first = await stream.__anext__()
        await stream.aclose()
        return first, stream.run.run_id

    first, run_id = asyncio.run(main())
    assert str(first) == "one "
    stored = db.get_run(run_id)
    assert stored.status == RunStatus.cancelled and stored.content == "one "


def test_team_arun_runs_its_members_on_the_event_loop_nested_under_the_team_run(db):
    from nbsessions.team import Team

    def leader(messages, tools):
        results = [m.content for m in messages if m.role == "tool"]
        if not results:
            return [ToolCall("t1", "ask_researcher", '{"task": "find facts"}'),
                    ToolCall("t2", "ask_writer", '{"task": "write it up"}')]
        return "composed: " + " | ".join(results)

    async def researcher(messages):
        await asyncio.sleep(0)  # only an async transport can run this model
        return f"found {messages[-1].content}"

    team = Team(members=[Agent(model=FunctionModel(researcher, id="r"), name="researcher"),
                         Agent(model=FunctionModel(lambda m: "written", id="w"), name="writer")],
                model=FunctionModel(leader, id="leader"), db=db)
    run = asyncio.run(team.arun("report on tea"))
    assert run.kind == "team" and run.content == "composed: found find facts | written"
    members = team.member_runs(run.run_id)
    assert [(r.model, r.status) for r in members] == [("r", RunStatus.completed), ("w", RunStatus.completed)]
    assert run.metrics.total_tokens > sum(m.metrics.total_tokens for m in members) > 0
