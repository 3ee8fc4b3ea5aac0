import json
import threading
from typing import Literal

import pytest
from conftest import RecordingModel

from nbsessions import Agent, FunctionModel, Message, RunStatus
from nbsessions.llm.base import ToolCall
from nbsessions.runs.core.tools import RunContext, make_tool, tool


def get_weather(city: str, unit: Literal["C", "F"] = "C") -> dict:
    """Current weather for a city.

    city: the city name
    unit: temperature unit
    """
    return {"city": city, "temp": 21 if unit == "C" else 70}


def call_then_answer(name: str, arguments: dict, call_id: str = "call_1"):
    """A scripted model: first call the tool, then answer with what the tool returned."""

    def model(messages: list[Message], tools: list[dict]):
        last = messages[-1]
        if last.role == "tool":
            return f"tool said: {last.content}"
        return ToolCall(call_id, name, json.dumps(arguments))

    return FunctionModel(model)


def test_schema_comes_from_signature_hints_and_docstring():
    spec = make_tool(get_weather).spec()
    assert spec["name"] == "get_weather" and spec["description"] == "Current weather for a city."
    assert spec["parameters"] == {
        "type": "object",
        "properties": {"city": {"type": "string", "description": "the city name"},
                       "unit": {"enum": ["C", "F"], "description": "temperature unit"}},
        "required": ["city"],
    }


def test_tool_call_loop_stores_calls_and_results_in_the_run(db):
    agent = Agent(model=call_then_answer("get_weather", {"city": "Oslo"}), db=db, tools=[get_weather])
    run = agent.run("weather?")
    assert run.status == RunStatus.completed
    assert run.content == 'tool said: {"city": "Oslo", "temp": 21}'
    stored = db.get_run(run.run_id)
    assert [m.role for m in stored.messages] == ["user", "assistant", "tool", "assistant"]
    assert stored.messages[1].tool_calls == [{"id": "call_1", "name": "get_weather",
                                              "arguments": '{"city": "Oslo"}'}]
    assert stored.messages[2].tool_call_id == "call_1"


def test_tool_messages_are_part_of_later_history(db):
    agent = Agent(model=call_then_answer("get_weather", {"city": "Oslo"}), db=db, tools=[get_weather],
                  add_history_to_context=True)
    first = agent.run("weather?")
    later = RecordingModel("ok")
    agent.run("again", session_id=first.session_id, model=later)
    assert [m.role for m in later.requests[0] if m.from_history] == ["user", "assistant", "tool", "assistant"]


def test_a_raising_tool_sends_its_error_to_the_model_and_the_run_survives(db):
    def explode(x: int) -> int:
        raise RuntimeError("sensor offline")

    agent = Agent(model=call_then_answer("explode", {"x": 1}), db=db, tools=[explode])
    run = agent.run("go")
    assert run.status == RunStatus.completed
    assert run.content == "tool said: error: RuntimeError: sensor offline"


def test_unknown_tools_and_bad_arguments_are_reported_to_the_model(db):
    agent = Agent(model=call_then_answer("nope", {}), db=db, tools=[get_weather])
    assert agent.run("go").content == "tool said: error: there is no tool named 'nope'"

    def bad_json(messages, tools):
        return f"got: {messages[-1].content}" if messages[-1].role == "tool" else ToolCall("c", "get_weather", "{")

    run = agent.run("go", model=FunctionModel(bad_json))
    assert run.content.startswith("got: error: the arguments are not valid JSON")


def test_run_context_changes_session_state_and_it_persists(db):
    def remember(fact: str, run_context: RunContext) -> str:
        """Remember a fact for later."""
        run_context.session_state.setdefault("facts", []).append(fact)
        return "noted"

    assert "run_context" not in make_tool(remember).parameters["properties"]
    agent = Agent(model=call_then_answer("remember", {"fact": "likes tea"}), db=db, tools=[remember],
                  session_state={"other": 1})
    run = agent.run("remember this")
    assert agent.get_session_state(run.session_id) == {"other": 1, "facts": ["likes tea"]}


def test_a_key_a_tool_pops_is_deleted_in_the_store(db):
    def forget(key: str, run_context: RunContext) -> str:
        """Forget one remembered key."""
        run_context.session_state.pop(key, None)
        return "forgotten"

    agent = Agent(model=call_then_answer("forget", {"key": "secret"}), db=db, tools=[forget],
                  session_state={"secret": "s3", "keep": 1})
    run = agent.run("forget the secret")
    assert agent.get_session_state(run.session_id) == {"keep": 1}
    assert db.get_session(run.session_id).session_state == {"keep": 1}


def test_agentic_state_tool_and_state_in_context(db):
    agent = Agent(model=call_then_answer("update_session_state", {"session_state_updates": {"mood": "happy"}}), db=db,
                  enable_agentic_state=True)
    run = agent.run("I am happy")
    assert agent.get_session_state(run.session_id) == {"mood": "happy"}
    plain, shown = RecordingModel("ok"), RecordingModel("ok")
    agent.run("x", session_id=run.session_id, model=plain)
    assert plain.requests[0][0].role == "user"  # state is not shown unless asked
    shows_state = Agent(db=db, add_session_state_to_context=True)
    shows_state.run("y", session_id=run.session_id, model=shown)
    system = shown.requests[0][-2]
    assert system.role == "system" and '"mood": "happy"' in system.content


def test_confirmation_pauses_then_approval_continues_with_the_same_session(db):
    calls = []

    @tool(requires_confirmation=True)
    def delete_table(name: str) -> str:
        """Drop a table."""
        calls.append(name)
        return f"dropped {name}"

    agent = Agent(model=call_then_answer("delete_table", {"name": "sales"}), db=db, tools=[delete_table],
                  user_id="ana", add_history_to_context=True)
    earlier = agent.run("hello", model=RecordingModel("hi"))
    paused = agent.run("drop sales", session_id=earlier.session_id)
    assert paused.status == RunStatus.paused and calls == []
    assert db.get_run(paused.run_id).requirements[0].kind == "confirmation"
    unrelated = agent.run("unrelated", session_id=earlier.session_id, model=RecordingModel("ok"))
    assert [m.content for m in unrelated.messages if m.from_history] == ["hello", "hi"]  # paused: not history
    done = agent.continue_run(paused.run_id, approve=True)
    assert done.status == RunStatus.completed and calls == ["sales"]
    assert done.content.endswith("tool said: dropped sales")
    assert done.session_id == earlier.session_id and done.user_id == "ana"
    assert any(m.from_history for m in done.messages)  # the history it was started with is kept
    with pytest.raises(ValueError, match="not paused"):
        agent.continue_run(paused.run_id, approve=True)


def test_rejection_tells_the_model_and_runs_nothing(db):
    calls = []

    @tool(requires_confirmation=True)
    def send_email(to: str) -> str:
        calls.append(to)
        return "sent"

    agent = Agent(model=call_then_answer("send_email", {"to": "boss"}), db=db, tools=[send_email])
    paused = agent.run("email the boss")
    done = agent.continue_run(paused.run_id, approve=False)
    assert calls == [] and done.content == "tool said: Function call was rejected by the user"


def test_user_input_and_external_execution(db):
    @tool(requires_user_input=True, user_input_fields=["amount"])
    def pay(to: str, amount: float = 0) -> str:
        return f"paid {amount} to {to}"

    agent = Agent(model=call_then_answer("pay", {"to": "bob"}), db=db, tools=[pay])
    paused = agent.run("pay bob")
    assert paused.requirements[0].field_names == ["amount"]
    assert agent.continue_run(paused.run_id, user_input={"amount": 5}).content == "tool said: paid 5 to bob"

    @tool(external_execution=True)
    def run_sql(query: str) -> str:
        raise AssertionError("executed outside, never here")

    agent = Agent(model=call_then_answer("run_sql", {"query": "select 1"}, "c9"), db=db, tools=[run_sql])
    paused = agent.run("count")
    with pytest.raises(ValueError, match="results"):
        agent.continue_run(paused.run_id)
    assert db.get_run(paused.run_id).status == RunStatus.paused  # a wrong call changes nothing
    done = agent.continue_run(paused.run_id, results={"c9": "1 row"})
    assert done.content == "tool said: 1 row"


def test_tool_calls_stream_and_cancel_keeps_partial_content(db):
    release = threading.Event()

    def chatty(messages, tools):
        if messages[-1].role != "tool":
            yield "let me check. "
            yield ToolCall("c1", "get_weather", '{"city": "Rome"}')
            return
        yield "it is warm. "
        release.wait(5)
        yield "more"

    agent = Agent(model=FunctionModel(chatty), db=db, tools=[get_weather])
    stream = agent.run("weather", stream=True)
    chunks = iter(stream)
    assert [str(next(chunks)), str(next(chunks))] == ["let me check. ", "it is warm. "]
    agent.cancel_run(stream.run.run_id)
    release.set()
    assert [event.event for event in chunks] == ["RunCancelled"]
    stored = db.get_run(stream.run.run_id)
    assert stored.status == RunStatus.cancelled and stored.content == "let me check. it is warm. "


def two_calls(*calls: ToolCall):
    """A scripted model that makes all calls at once, then lists the tool results."""

    def model(messages, tools):
        results = [m.content for m in messages if m.role == "tool"]
        return " | ".join(results) if results else iter(calls)

    return FunctionModel(model)


def test_every_answer_is_checked_before_any_tool_runs(db):
    ran = []

    @tool(requires_confirmation=True)
    def approve_me(x: int) -> str:
        ran.append(x)
        return "done"

    @tool(external_execution=True)
    def outside(q: str) -> str:
        raise AssertionError("never here")

    agent = Agent(model=two_calls(ToolCall("a", "approve_me", '{"x": 1}'), ToolCall("b", "outside", '{"q": "?"}')),
                  db=db, tools=[approve_me, outside])
    paused = agent.run("go")
    with pytest.raises(ValueError, match="results"):
        agent.continue_run(paused.run_id, approve=True)
    assert ran == [] and db.get_run(paused.run_id).status == RunStatus.paused
    with pytest.raises(ValueError, match="approve"):
        agent.continue_run(paused.run_id, results={"b": "42"})
    done = agent.continue_run(paused.run_id, approve=True, results={"b": "42"})
    assert ran == [1] and done.content == "done | 42"


def test_several_tools_waiting_for_input_get_their_own_fields(db):
    @tool(requires_user_input=True, user_input_fields=["n"])
    def first(n: int = 0) -> str:
        return f"first {n}"

    @tool(requires_user_input=True, user_input_fields=["n"])
    def second(n: int = 0) -> str:
        return f"second {n}"

    agent = Agent(model=two_calls(ToolCall("c1", "first", "{}"), ToolCall("c2", "second", "{}")), db=db,
                  tools=[first, second])
    paused = agent.run("go")
    with pytest.raises(ValueError, match="2 tools wait for input"):
        agent.continue_run(paused.run_id, user_input={"n": 1})
    done = agent.continue_run(paused.run_id, user_input={"c1": {"n": 1}, "c2": {"n": 2}})
    assert done.content == "first 1 | second 2"


def test_a_paused_run_can_continue_on_another_model(db):
    @tool(requires_confirmation=True)
    def act() -> str:
        return "acted"

    agent = Agent(model=call_then_answer("act", {}), db=db, tools=[act])
    paused = agent.run("go")
    other = RecordingModel("other model answered", id="other")
    done = agent.continue_run(paused.run_id, approve=True, model=other)
    assert done.content == "other model answered" and done.model == "other"


def test_text_before_and_after_a_tool_call_or_a_pause_is_kept_in_paragraphs(db):
    @tool(requires_confirmation=True)
    def book() -> str:
        return "booked"

    def model(messages, tools):
        if messages[-1].role == "tool":
            return "Done."
        return iter(["Let me book.", ToolCall("c", "book", "{}")])

    agent = Agent(model=FunctionModel(model), db=db, tools=[book])
    paused = agent.run("book it")
    assert paused.content == "Let me book."
    assert agent.continue_run(paused.run_id, approve=True).content == "Let me book.\n\nDone."
