"""Agno-shaped streaming events and the async API, over one run engine.

Ported the way an Agno user writes them: ``for event in agent.run(..., stream=True)``, ``event.event ==
RunEvent.run_content``, ``await agent.arun(...)``, ``async for event in agent.arun(..., stream=True)``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
from pathlib import Path

import pytest
from conftest import RecordingModel

from nbsessions import Agent, FunctionModel, ModelError, RunEvent, RunOutput, RunStatus, tool
from nbsessions.llm.base import ToolCall
from nbsessions.records.events import RunContentEvent, ToolCallCompletedEvent


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


async def cancel_once(coro, reached: asyncio.Event) -> None:
    """Run ``coro`` as a task, cancel it once ``reached`` is set, and check the cancellation reached the awaiter."""
    task = asyncio.create_task(coro)
    await reached.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def the_only_run(owner):
    """The one run of ``owner``'s one session (an Agent or a Workflow)."""
    (run,) = owner.get_runs(owner.get_sessions()[0].session_id)
    return run


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
    assert squeeze(kinds(events)) == ["RunStarted", "ModelRequestStarted", "RunContent", "ModelRequestCompleted",
                                      "ToolCallStarted", "ToolCallCompleted", "ModelRequestStarted", "RunContent",
                                      "ModelRequestCompleted", "RunContentCompleted", "RunCompleted"]
    started, completed = events[0], events[-1]
    first_request = next(e for e in events if e.event == RunEvent.model_request_completed)
    assert first_request.model == "function" and first_request.output_tokens > 0
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


@tool(requires_confirmation=True)
def delete_file(path: str) -> str:
    """Delete a file."""
    return f"deleted {path}"


@pytest.fixture
def deleting_agent(db):
    """An agent whose model asks to delete a.txt (which waits for approval), then answers with the tool's result."""
    def model(messages):
        if messages[-1].role == "tool":
            return f"done: {messages[-1].content}"
        return ToolCall("c1", "delete_file", '{"path": "a.txt"}')

    return Agent(model=FunctionModel(model), db=db, tools=[delete_file])


def test_a_paused_run_ends_its_stream_with_run_paused_even_without_stream_events(deleting_agent, db):
    agent = deleting_agent
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
    assert squeeze(kinds(events)) == ["RunStarted", "ModelRequestStarted", "ModelRequestCompleted",
                                      "ToolCallStarted", "ToolCallCompleted", "ModelRequestStarted", "RunContent",
                                      "ModelRequestCompleted", "RunContentCompleted", "RunCompleted"]
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


def test_a_plain_tool_under_arun_runs_in_a_worker_thread_not_on_the_event_loop(db):
    """Two concurrent ``arun``s each call a blocking plain tool that waits for the other's call: on the event loop
    the first would block it, the second could never call its tool, and the wait would break."""
    meeting = threading.Barrier(2, timeout=20)  # a guard against a hang, not a wait: both arrive at once
    threads = set()

    def wait_for_the_other(name: str) -> str:
        """Wait until the other run calls this too."""
        threads.add(threading.get_ident())
        meeting.wait()
        return f"{name} met"

    def model(messages):
        if messages[-1].role != "tool":
            return ToolCall("c1", "wait_for_the_other", json.dumps({"name": messages[-1].content}))
        return f"tool said: {messages[-1].content}"

    agent = Agent(model=FunctionModel(model), db=db, tools=[wait_for_the_other])

    async def main():
        loop_thread = threading.get_ident()
        runs = await asyncio.gather(agent.arun("a", session_id="s1"), agent.arun("b", session_id="s2"))
        return runs, loop_thread

    runs, loop_thread = asyncio.run(main())
    assert [r.content for r in runs] == ["tool said: a met", "tool said: b met"]
    assert len(threads) == 2 and loop_thread not in threads


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
        await cancel_once(agent.arun("go"), reached)
        return agent

    run = the_only_run(asyncio.run(main()))
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
    from nbsessions.runs.team import Team

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
                         Agent(model=RecordingModel("written", id="w"), name="writer")],
                model=FunctionModel(leader, id="leader"), db=db)
    run = asyncio.run(team.arun("report on tea"))
    assert run.kind == "team" and run.content == "composed: found find facts | written"
    members = team.member_runs(run.run_id)
    assert [(r.model, r.status) for r in members] == [("r", RunStatus.completed), ("w", RunStatus.completed)]
    assert run.metrics.total_tokens > sum(m.metrics.total_tokens for m in members) > 0


# -- async on the real AsyncOpenAI transport -------------------------------------------------------------


def test_twenty_concurrent_aruns_in_one_session_are_all_in_flight_at_once_and_all_kept(openai_server, db):
    from nbsessions import OpenAIChat

    together = threading.Barrier(20, timeout=20)  # no request is answered until all 20 have arrived

    def reply(body):
        together.wait()
        return f"echo: {body['messages'][-1]['content']}"

    openai_server.reply = reply
    agent = Agent(model=OpenAIChat(id="local", base_url=openai_server.base_url, max_retries=0), db=db,
                  session_id="shared")

    async def main():
        return await asyncio.gather(*(agent.arun(f"prompt {i}") for i in range(20)))

    runs = asyncio.run(main())
    assert [r.content for r in runs] == [f"echo: prompt {i}" for i in range(20)]
    stored = agent.get_runs("shared")
    assert len(stored) == 20 and {r.status for r in stored} == {RunStatus.completed}
    assert sorted(r.input for r in stored) == sorted(f"prompt {i}" for i in range(20))


def test_responses_api_arun_calls_tools_and_streams_events(openai_server, db):
    from nbsessions import OpenAIResponses

    openai_server.script({"content": "", "tool_calls": [{"name": "get_weather", "arguments": '{"city": "Oslo"}'}]},
                         "cold in Oslo")
    agent = Agent(model=OpenAIResponses(id="local", base_url=openai_server.base_url), db=db, tools=[get_weather])

    async def main():
        return [e async for e in agent.arun("weather?", stream=True, stream_events=True, yield_run_output=True)]

    items = asyncio.run(main())
    assert squeeze(kinds(items[:-1])) == ["RunStarted", "ModelRequestStarted", "ModelRequestCompleted",
                                          "ToolCallStarted", "ToolCallCompleted", "ModelRequestStarted",
                                          "RunContent", "ModelRequestCompleted", "RunContentCompleted",
                                          "RunCompleted"]
    assert items[-1].content == "cold in Oslo" and items[-1].metrics.input_tokens > 0
    assert openai_server.requests[1]["input"][-1] == {"type": "function_call_output", "output": "warm in Oslo",
                                                      "call_id": openai_server.calls[0].tool_calls[0]["id"]}


def test_cancelling_an_arun_mid_stream_closes_the_request_and_keeps_the_partial_reply(openai_server, db):
    from nbsessions import OpenAIChat

    openai_server.script("one two three four five six")
    openai_server.chunk_delay_ms = 300
    agent = Agent(model=OpenAIChat(id="local", base_url=openai_server.base_url, max_retries=0), db=db)

    async def main():
        first = asyncio.Event()
        stream = agent.arun("count", stream=True)

        async def consume():
            async for _event in stream:
                first.set()

        await cancel_once(consume(), first)
        return stream.run.run_id

    run = db.get_run(asyncio.run(main()))
    assert run.status == RunStatus.cancelled
    whole = "one two three four five six"
    assert run.content and whole.startswith(run.content) and run.content != whole


# -- notebooks: top-level await, Ctrl-C ---------------------------------------------------------------------


def _shell_agent(nb, openai_server) -> None:
    nb.run("import asyncio\nfrom nbsessions import Agent, OpenAIChat\n"
           f"agent = Agent(model=OpenAIChat(id='local', base_url='{openai_server.base_url}', max_retries=0))")


def _statuses(nb) -> list[tuple[str, str]]:
    ran = nb.run("print(sorted((r.input, r.status.value) for r in agent.get_runs(agent.session_id)))")
    return eval(ran.stdout.strip().splitlines()[-1])  # our own repr of plain tuples


def test_top_level_await_and_async_for_work_in_a_notebook_cell(nb, openai_server):
    _shell_agent(nb, openai_server)
    ran = nb.run("r = await agent.arun('hello')\nprint(r.content)")
    assert ran.result.error_in_exec is None and ran.stdout == "echo: hello\n"
    ran = nb.run("async for event in agent.arun('again', stream=True):\n    print(event, end='')")
    assert ran.result.error_in_exec is None and ran.stdout == "echo: again"
    assert _statuses(nb) == [("again", "completed"), ("hello", "completed")]


def test_ctrl_c_during_top_level_await_stores_the_run_cancelled_and_interrupts_the_cell(nb, openai_server):
    _shell_agent(nb, openai_server)

    def interrupt(body):  # a real SIGINT, sent while the cell waits on the server
        os.kill(os.getpid(), signal.SIGINT)
        return "too late"

    openai_server.reply, openai_server.latency_ms = interrupt, 5000
    ran = nb.run("r = await agent.arun('interrupt me')")
    assert isinstance(ran.result.error_in_exec, KeyboardInterrupt)
    assert _statuses(nb) == [("interrupt me", "cancelled")]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back once no arun is running

    openai_server.reply, openai_server.latency_ms = None, 0
    ran = nb.run("r = await agent.arun('after')\nprint(r.content)")
    assert ran.result.error_in_exec is None and ran.stdout == "echo: after\n"


def test_ctrl_c_during_concurrent_aruns_stores_every_one_cancelled(nb, openai_server):
    _shell_agent(nb, openai_server)
    all_sent = threading.Barrier(5, timeout=20)

    def interrupt_once_all_are_waiting(body):
        if all_sent.wait() == 0:
            os.kill(os.getpid(), signal.SIGINT)
        return "too late"

    openai_server.reply, openai_server.latency_ms = interrupt_once_all_are_waiting, 5000
    ran = nb.run("rs = await asyncio.gather(*(agent.arun(f'g{i}') for i in range(5)))")
    assert isinstance(ran.result.error_in_exec, asyncio.CancelledError)  # the cell was stopped with its runs
    assert _statuses(nb) == [(f"g{i}", "cancelled") for i in range(5)]
    openai_server.reply, openai_server.latency_ms = None, 0
    ran = nb.run("r = await agent.arun('after')\nprint(r.content)")
    assert ran.result.error_in_exec is None and ran.stdout == "echo: after\n"  # nothing left pending


def test_interrupting_a_real_kernel_during_await_stores_the_run_cancelled(openai_server, tmp_path):
    from jupyter_client.manager import start_new_kernel

    received = threading.Event()

    def hold(body):
        received.set()
        return "too late"

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
    km, kc = start_new_kernel(kernel_name="python3", cwd=str(tmp_path), env=env)

    def run(code: str, interrupt: bool = False) -> str:
        msg_id = kc.execute(code)
        if interrupt:
            assert received.wait(30), "the request never reached the server"
            km.interrupt_kernel()
        out = []
        while True:
            msg = kc.get_iopub_msg(timeout=60)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "stream":
                out.append(msg["content"]["text"])
            elif msg["msg_type"] == "error":
                out.append(f"error: {msg['content']['ename']}")
            elif msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                return "".join(out)

    try:
        run("from nbsessions import Agent, OpenAIChat\n"
            f"agent = Agent(model=OpenAIChat(id='local', base_url='{openai_server.base_url}', max_retries=0))")
        assert run("r = await agent.arun('hello')\nprint(r.content)") == "echo: hello\n"
        openai_server.reply, openai_server.latency_ms = hold, 5000
        assert run("r = await agent.arun('interrupt me')", interrupt=True).startswith("error: ")
        openai_server.reply, openai_server.latency_ms = None, 0
        shown = run("print(sorted((r.input, r.status.value) for r in agent.get_runs(agent.session_id)))")
        assert eval(shown) == [("hello", "completed"), ("interrupt me", "cancelled")]
        assert run("r = await agent.arun('after')\nprint(r.content)") == "echo: after\n"
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def test_acontinue_run_resumes_a_paused_arun_in_agnos_two_shapes(deleting_agent):
    agent = deleting_agent

    async def main():
        paused = await agent.arun("clean up")
        assert paused.is_paused and paused.active_requirements[0].needs_confirmation
        paused.active_requirements[0].confirm()
        first = await agent.acontinue_run(run_response=paused)
        again = await agent.arun("and again")
        again.active_requirements[0].reject()
        events = [e async for e in agent.acontinue_run(run_id=again.run_id, requirements=again.requirements,
                                                        stream=True, stream_events=True, yield_run_output=True)]
        return first, events

    first, events = asyncio.run(main())
    assert first.status == RunStatus.completed and first.content == "done: deleted a.txt"
    assert kinds(events[:-1])[0] == "RunContinued" and kinds(events[:-1])[-1] == "RunCompleted"
    assert events[-1].status == RunStatus.completed and "rejected" in events[-1].content


def test_an_approved_async_tool_is_awaited_by_acontinue_run(db):
    @tool(requires_confirmation=True)
    async def send_mail(to: str) -> str:
        """Send a mail."""
        await asyncio.sleep(0)
        return f"sent to {to}"

    def model(messages):
        if messages[-1].role == "tool":
            return messages[-1].content
        return ToolCall("m1", "send_mail", '{"to": "ada"}')

    agent = Agent(model=FunctionModel(model), db=db, tools=[send_mail])

    async def main():
        paused = await agent.arun("mail ada")
        return await agent.acontinue_run(paused.run_id, approve=True)

    assert asyncio.run(main()).content == "sent to ada"


def test_workflow_arun_runs_agent_and_async_function_steps_on_the_loop(db):
    from nbsessions.runs.workflows.workflow import StepInput, Workflow

    async def thinker(messages):
        await asyncio.sleep(0)  # only the async transport can run this model
        return f"thought about {messages[-1].content}"

    async def shout(step: StepInput) -> str:
        await asyncio.sleep(0)
        step.session_state["shouted"] = True
        return step.previous_output.upper()

    flow = Workflow(steps=[Agent(model=FunctionModel(thinker), name="thinker"), shout], db=db, name="flow")

    async def main():
        run = await flow.arun("tea")
        return run, await flow.aget_session_state(run.session_id)

    run, state = asyncio.run(main())
    assert run.status == RunStatus.completed and run.content == "THOUGHT ABOUT TEA"
    assert [(s.name, s.status) for s in run.steps] == [("thinker", "completed"), ("shout", "completed")]
    assert state == {"shouted": True}
    with pytest.raises(Exception, match="async"):
        flow.run("tea again")  # the async model cannot run on the sync transport: the step fails, named


def test_cancelling_a_workflow_arun_stores_it_cancelled_with_the_steps_done(db):
    from nbsessions.runs.workflows.workflow import Workflow

    async def main():
        reached, never = asyncio.Event(), asyncio.Event()

        async def waits(step):
            reached.set()
            await never.wait()

        flow = Workflow(steps=[lambda step: "first done", waits], db=db)
        await cancel_once(flow.arun("go"), reached)
        return flow

    run = the_only_run(asyncio.run(main()))
    assert run.status == RunStatus.cancelled
    assert [s.status for s in run.steps] == ["completed", "cancelled"]
