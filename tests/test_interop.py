"""Servers that are not OpenAI: the loopback server speaks as llama-cpp-python does (``LLAMA_CPP`` quirks), and
non-streamed requests, estimated counts, local prices and key variables work as a real server needs."""

from __future__ import annotations

import json
import time

import pytest
from openai_server import LLAMA_CPP

from nbsessions import Agent, FunctionModel, tool
from nbsessions.llm import OpenAIChat, OpenAIResponses, Usage
from nbsessions.llm.base import ToolCall, estimate_prompt_tokens
from nbsessions.llm.prices import clear_prices, set_price
from nbsessions.records.errors import ModelError
from nbsessions.records.schema import Message, Metrics

MODELS = [OpenAIChat, OpenAIResponses]
WEATHER = {"name": "get_weather", "description": "Weather in a city.",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


@pytest.fixture(autouse=True)
def no_openai_env(monkeypatch):
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "MY_LLM_KEY"):
        monkeypatch.delenv(name, raising=False)
    clear_prices()
    yield
    clear_prices()


@pytest.fixture
def llama(openai_server):
    """The loopback server with every llama-cpp-python quirk on."""
    openai_server.quirks = LLAMA_CPP
    return openai_server


def items(model, messages=None, tools=None, *, streamed=True):
    ask = model.stream if streamed else model.complete
    return list(ask(messages or [Message("user", "hi")], tools))


def test_repeated_tool_names_in_deltas_give_one_name_and_whole_arguments(llama):
    llama.script({"tool_calls": [{"id": "call_w", "name": "get_weather", "arguments": '{"city": "Paris"}'}]})
    calls = [i for i in items(OpenAIChat("m", base_url=llama.base_url), tools=[WEATHER]) if isinstance(i, ToolCall)]
    pieces = [e["choices"][0]["delta"]["tool_calls"][0] for e in llama.last.events
              if e.get("choices") and e["choices"][0]["delta"].get("tool_calls")]
    assert sum(p["function"].get("name") == "get_weather" for p in pieces) > 1, "the quirk is on the wire"
    assert calls == [ToolCall("call_w", "get_weather", '{"city": "Paris"}')]


def test_a_tool_call_in_history_is_sent_with_empty_content_which_llama_cpp_accepts(llama):
    @tool
    def get_weather(city: str) -> str:
        """Weather in a city."""
        return f"sunny in {city}"

    llama.script({"tool_calls": [{"name": "get_weather", "arguments": '{"city": "Oslo"}'}]}, "It is sunny.")
    agent = Agent(model=OpenAIChat("m", base_url=llama.base_url), tools=[get_weather])
    run = agent.run("Weather in Oslo?")
    assert run.status.value == "completed" and run.content == "It is sunny."
    sent = llama.last.body["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool"]
    assert sent[1]["content"] == "" and sent[2]["content"] == "sunny in Oslo"


def test_null_content_is_what_the_quirky_server_refuses(llama):
    """Guards the guard: the quirk answers 500 to the form nbsessions used to send."""
    import openai

    client = openai.OpenAI(base_url=llama.base_url, api_key="x", max_retries=0)
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="m", messages=[
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": None,
             "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c", "content": "1"}])


def test_a_stream_without_usage_is_estimated_with_template_overhead_and_marked(llama):
    messages = [Message("system", "Be brief."), Message("user", "Hi")]
    usage = items(OpenAIChat("m", base_url=llama.base_url), messages)[-1]
    assert llama.last.usage is None and llama.last.body["stream_options"] == {"include_usage": True}
    assert usage.estimated
    assert usage.input_tokens == estimate_prompt_tokens(messages) > 2


@pytest.mark.parametrize("cls", MODELS)
def test_a_whole_reply_is_asked_without_streaming_and_gives_the_servers_usage(cls, openai_server):
    openai_server.quirks = frozenset({"no-stream-usage"})
    openai_server.script("The whole reply at once.")
    got = items(cls("m", base_url=openai_server.base_url), streamed=False)
    body = openai_server.last.body
    assert body["stream"] is False and "stream_options" not in body
    assert got[:-1] == ["The whole reply at once."]
    sent = openai_server.last.usage
    assert got[-1] == Usage(sent["input_tokens"], sent["output_tokens"]) and not got[-1].estimated


@pytest.mark.parametrize("cls", MODELS)
def test_a_whole_reply_carries_the_tool_calls(cls, openai_server):
    openai_server.script({"content": "", "tool_calls": [{"id": "call_1", "name": "get_weather",
                                                         "arguments": '{"city": "Rome"}'}]})
    got = items(cls("m", base_url=openai_server.base_url), tools=[WEATHER], streamed=False)
    assert got[0] == ToolCall("call_1", "get_weather", '{"city": "Rome"}') and isinstance(got[1], Usage)


def test_agent_run_without_stream_sends_one_whole_request_and_stream_true_streams(openai_server):
    agent = Agent(model=OpenAIChat("m", base_url=openai_server.base_url))
    assert agent.run("one").content == "echo: one"
    assert openai_server.last.body["stream"] is False
    assert "".join(map(str, agent.run("two", stream=True))) == "echo: two"
    assert openai_server.last.body["stream"] is True


def test_whole_reply_errors_are_the_same_one_line_errors(openai_server):
    openai_server.fail_next("error-500")
    with pytest.raises(ModelError, match="500 server error") as info:
        items(OpenAIChat("m", base_url=openai_server.base_url, max_retries=0), streamed=False)
    assert info.value.status_code == 500


def test_responses_on_a_server_without_it_says_use_chat_and_shows_the_servers_body(llama):
    with pytest.raises(ModelError) as info:
        items(OpenAIResponses("m", base_url=llama.base_url, max_retries=0))
    text = str(info.value)
    assert 'api = "chat"' in text and '{"detail": "Not Found"}' in text
    assert "check the model id" not in text and "Error code" not in text
    assert info.value.status_code == 404


def test_an_unknown_model_on_the_responses_api_still_says_check_the_model_id(openai_server):
    with pytest.raises(ModelError, match="check the model id 'error-404'"):
        items(OpenAIResponses("error-404", base_url=openai_server.base_url, max_retries=0))


def test_estimated_counts_are_marked_on_the_run_and_summed_honestly(llama):
    agent = Agent(model=OpenAIChat("m", base_url=llama.base_url))
    run = agent.run("Hi", stream=True)
    list(run)
    assert run.run.metrics.tokens_estimated
    assert Metrics.total([run.run.metrics, Metrics(input_tokens=5)]).tokens_estimated
    assert Metrics.from_dict(run.run.metrics.to_dict()).tokens_estimated
    llama.quirks = frozenset()
    exact = agent.run("Hi")
    assert not exact.metrics.tokens_estimated


def test_a_local_server_gets_no_cost_for_a_priced_model_name_unless_the_user_sets_one(openai_server):
    agent = Agent(model=OpenAIChat("gpt-4o-mini", base_url=openai_server.base_url))
    assert agent.run("Hi").metrics.cost is None
    set_price("gpt-4o-mini", input_per_mtok=1.0, output_per_mtok=2.0)
    assert agent.run("Hi").metrics.cost > 0


def test_api_key_env_names_the_variable_the_key_is_read_from(openai_server, monkeypatch):
    monkeypatch.setenv("MY_LLM_KEY", "key-from-my-variable")
    openai_server.api_key = "key-from-my-variable"
    model = OpenAIChat("m", base_url=openai_server.base_url, api_key_env="MY_LLM_KEY")
    assert items(model)[0]
    assert "key-from-my-variable" not in repr(model) + repr(vars(model))
    monkeypatch.delenv("MY_LLM_KEY")
    with pytest.raises(ModelError, match="MY_LLM_KEY .* is not set"):
        items(OpenAIChat("m", base_url=openai_server.base_url, api_key_env="MY_LLM_KEY"))


def test_the_clock_starts_after_the_model_is_prepared():
    """SDK import and client set-up happen in ``prepare``; duration and TTFT count only the request."""
    marks: dict[str, float] = {}

    class SlowToPrepare(FunctionModel):
        def prepare(self) -> None:
            sum(range(200_000))  # some real work before the request
            marks["prepared"] = time.perf_counter()

    run = Agent(model=SlowToPrepare(lambda m: "ok")).run("Hi")
    marks["after"] = time.perf_counter()
    assert run.metrics.duration <= marks["after"] - marks["prepared"]
    assert run.metrics.time_to_first_token <= run.metrics.duration


def test_a_tool_result_from_a_whole_reply_round_trip(openai_server):
    calls = []

    @tool
    def get_weather(city: str) -> str:
        """Weather in a city."""
        calls.append(city)
        return "rain"

    openai_server.script({"tool_calls": [{"name": "get_weather", "arguments": json.dumps({"city": "Lima"})}]},
                         "Rain in Lima.")
    run = Agent(model=OpenAIChat("m", base_url=openai_server.base_url), tools=[get_weather]).run("Lima?")
    assert calls == ["Lima"] and run.content == "Rain in Lima."
    assert [b["stream"] for b in openai_server.requests] == [False, False]


def test_the_panel_marks_estimated_counts_too():
    from nbsessions.panel.metrics_view import render_table, render_totals
    from nbsessions.records.schema import RunOutput, RunStatus

    estimated = Metrics(input_tokens=1200, output_tokens=30, total_tokens=1230, tokens_estimated=True)
    assert "<b>~1,200</b> input tokens" in render_totals(1, estimated)
    run = RunOutput(session_id="s", status=RunStatus.completed, metrics=estimated)
    assert ">~1,230<" in render_table([run], 1)
    exact = Metrics(input_tokens=1200, output_tokens=30, total_tokens=1230)
    assert "~" not in render_totals(1, exact)


def test_the_estimated_mark_survives_every_store_and_its_session_totals(db, llama):
    """Stored, reopened and summed, an estimate stays an estimate (memory, TinyDB, and PostgreSQL when present)."""
    agent = Agent(model=OpenAIChat("m", base_url=llama.base_url), db=db)
    stream = agent.run("Hi", stream=True)
    list(stream)
    run = stream.run
    assert db.get_run(run.run_id).metrics.tokens_estimated
    count, totals = db.session_totals(run.session_id)
    assert count == 1 and totals.tokens_estimated and totals.input_tokens == run.metrics.input_tokens
