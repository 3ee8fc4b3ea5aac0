"""OpenAI models end to end against a real local HTTP server: wire format, usage, keys and every failure."""

from __future__ import annotations

import pickle
import socket
import time

import openai
import pytest

from nbsessions.errors import ModelError
from nbsessions.llm import FunctionModel, OfflineModel, OpenAIChat, OpenAIResponses, Usage, model_from_name
from nbsessions.llm.base import ToolCall, estimate_prompt_tokens, estimate_tokens
from nbsessions.schema import Message

FAKE_KEY = "fake-key-for-nbsessions-tests-only"
MODELS = [OpenAIChat, OpenAIResponses]

CONVERSATION = [
    Message("system", "You answer in one line."),
    Message("user", "What is a DataFrame?", from_history=True),
    Message("assistant", "A table.", from_history=True),
    Message("user", "And a Series?"),
]


@pytest.fixture(autouse=True)
def no_openai_env(monkeypatch):
    """Tests decide the key and URL themselves; a developer's real settings must never leak in (or out)."""
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID"):
        monkeypatch.delenv(name, raising=False)


def run(model, messages=None) -> tuple[list[str], list[Usage]]:
    items = list(model.stream(messages or [Message("user", "hello there")]))
    return [i for i in items if isinstance(i, str)], [i for i in items if isinstance(i, Usage)]


def failure(model, messages=None) -> ModelError:
    with pytest.raises(ModelError) as info:
        run(model, messages)
    return info.value


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- streaming and usage -----------------------------------------------------------------------------


@pytest.mark.parametrize("cls", MODELS)
def test_streams_text_deltas_then_exactly_one_usage_last(cls, openai_server):
    openai_server.script("Series are one column of a table.")
    items = list(cls("gpt-5.2", base_url=openai_server.base_url).stream(CONVERSATION))
    texts = [i for i in items if isinstance(i, str)]
    assert "".join(texts) == "Series are one column of a table."
    assert len(texts) > 1, "the reply should arrive in several deltas"
    assert isinstance(items[-1], Usage)
    assert sum(isinstance(i, Usage) for i in items) == 1


@pytest.mark.parametrize("cls", MODELS)
def test_default_reply_echoes_the_last_user_message(cls, openai_server):
    texts, _ = run(cls("gpt-5.2", base_url=openai_server.base_url), CONVERSATION)
    assert "".join(texts) == "echo: And a Series?"


@pytest.mark.parametrize("cls", MODELS)
def test_usage_equals_what_the_server_sent(cls, openai_server):
    openai_server.usage = {"input_tokens": 1234, "output_tokens": 56, "cached_tokens": 789, "reasoning_tokens": 21}
    _, [usage] = run(cls("gpt-5.2", base_url=openai_server.base_url))
    assert usage == Usage(input_tokens=1234, output_tokens=56, cached_tokens=789, reasoning_tokens=21)
    assert not usage.estimated
    sent = openai_server.last.usage
    assert (usage.input_tokens, usage.output_tokens) == (sent["input_tokens"], sent["output_tokens"])


@pytest.mark.parametrize("cls", MODELS)
def test_usage_is_estimated_when_the_server_sends_none(cls, openai_server):
    openai_server.send_usage = False
    openai_server.script("a reply of some forty characters or so..")
    texts, [usage] = run(cls("local-model", base_url=openai_server.base_url), CONVERSATION)
    assert usage.output_tokens == estimate_tokens("".join(texts))
    assert usage.input_tokens == estimate_prompt_tokens(CONVERSATION)
    assert usage.input_tokens > sum(estimate_tokens(m.content or "") for m in CONVERSATION), "template overhead"
    assert (usage.cached_tokens, usage.reasoning_tokens) == (0, 0)
    assert usage.estimated


# -- what the server received ------------------------------------------------------------------------


def test_chat_sends_the_messages_in_order_and_asks_for_usage(openai_server):
    run(OpenAIChat("gpt-5.2", base_url=openai_server.base_url), CONVERSATION)
    call = openai_server.last
    assert call.path == "/v1/chat/completions"
    assert call.body["model"] == "gpt-5.2"
    assert call.body["messages"] == [
        {"role": "system", "content": "You answer in one line."},
        {"role": "user", "content": "What is a DataFrame?"},
        {"role": "assistant", "content": "A table."},
        {"role": "user", "content": "And a Series?"},
    ]
    assert call.body["stream"] is True
    assert call.body["stream_options"] == {"include_usage": True}


def test_responses_sends_system_as_instructions_and_the_rest_as_input_items(openai_server):
    run(OpenAIResponses("gpt-5.2", base_url=openai_server.base_url), CONVERSATION)
    call = openai_server.last
    assert call.path == "/v1/responses"
    assert call.body["model"] == "gpt-5.2"
    assert call.body["instructions"] == "You answer in one line."
    assert call.body["input"] == [
        {"role": "user", "content": "What is a DataFrame?"},
        {"role": "assistant", "content": "A table."},
        {"role": "user", "content": "And a Series?"},
    ]
    assert call.body["stream"] is True


def test_responses_without_system_message_sends_no_instructions(openai_server):
    run(OpenAIResponses("gpt-5.2", base_url=openai_server.base_url), [Message("user", "hi")])
    assert "instructions" not in openai_server.last.body


@pytest.mark.parametrize("stored", [
    {"id": "call_1", "name": "add", "arguments": '{"a": 1}'},  # as the Agent stores ToolCall.to_dict()
    {"id": "call_1", "type": "function", "function": {"name": "add", "arguments": '{"a": 1}'}},  # chat-shaped
])
def test_tool_calls_and_results_in_history_are_sent_in_each_apis_shape(stored, openai_server):
    messages = [Message("user", "add"), Message("assistant", None, tool_calls=[stored]),
                Message("tool", "2", tool_call_id="call_1"), Message("user", "thanks")]
    run(OpenAIChat("m", base_url=openai_server.base_url), messages)
    assert openai_server.last.body["messages"][1:3] == [
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "add", "arguments": '{"a": 1}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "2"},
    ]
    run(OpenAIResponses("m", base_url=openai_server.base_url), messages)
    assert openai_server.last.body["input"][1:3] == [
        {"type": "function_call", "call_id": "call_1", "name": "add", "arguments": '{"a": 1}'},
        {"type": "function_call_output", "call_id": "call_1", "output": "2"},
    ]


ADD_TOOL = {"name": "add", "description": "Add two numbers.",
            "parameters": {"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
                           "required": ["a", "b"]}}


def test_tools_are_offered_in_each_apis_shape(openai_server):
    list(OpenAIChat("m", base_url=openai_server.base_url).stream([Message("user", "hi")], [ADD_TOOL]))
    assert openai_server.last.body["tools"] == [{"type": "function", "function": ADD_TOOL}]
    list(OpenAIResponses("m", base_url=openai_server.base_url).stream([Message("user", "hi")], [ADD_TOOL]))
    assert openai_server.last.body["tools"] == [{"type": "function", **ADD_TOOL, "strict": False}]


@pytest.mark.parametrize("cls", MODELS)
def test_no_tools_means_no_tools_field(cls, openai_server):
    run(cls("m", base_url=openai_server.base_url))
    assert "tools" not in openai_server.last.body


@pytest.mark.parametrize("cls", MODELS)
@pytest.mark.parametrize("content", ["", "Let me add those. "])
def test_tool_calls_are_yielded_whole_after_the_text_and_before_usage(cls, content, openai_server):
    openai_server.script({"content": content, "tool_calls": [
        {"id": "call_a", "name": "add", "arguments": '{"a": 1, "b": 2}'},
        {"id": "call_b", "name": "add", "arguments": '{"a": 3, "b": 4}'},
    ]})
    items = list(cls("m", base_url=openai_server.base_url).stream([Message("user", "add")], [ADD_TOOL]))
    texts = [i for i in items if isinstance(i, str)]
    calls = [i for i in items if isinstance(i, ToolCall)]
    assert "".join(texts) == content
    assert calls == [ToolCall("call_a", "add", '{"a": 1, "b": 2}'), ToolCall("call_b", "add", '{"a": 3, "b": 4}')]
    assert items[len(texts):] == [*calls, items[-1]] and isinstance(items[-1], Usage)


@pytest.mark.parametrize(("cls", "limit"), [(OpenAIChat, "max_tokens"), (OpenAIResponses, "max_output_tokens")])
def test_settings_reach_the_request_and_unknown_ones_go_in_the_body(cls, limit, openai_server):
    model = cls("m", base_url=openai_server.base_url, temperature=0.25, top_p=0.5, top_k=40, **{limit: 99})
    run(model)
    body = openai_server.last.body
    assert (body["temperature"], body["top_p"], body[limit]) == (0.25, 0.5, 99)
    assert body["top_k"] == 40, "server-specific settings (vLLM, Ollama) must reach the server too"


@pytest.mark.parametrize("name", ["stream", "messages", "model", "input", "instructions"])
def test_settings_that_nbsessions_controls_are_refused_at_construction(name):
    with pytest.raises(TypeError, match=name):
        OpenAIChat("m", **{name: "x"})


# -- keys --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", MODELS)
def test_base_url_without_any_key_sends_a_placeholder_key(cls, openai_server):
    run(cls("llama3", base_url=openai_server.base_url))
    assert openai_server.last.headers["authorization"] == "Bearer not-needed"


def test_api_key_argument_is_sent_as_bearer(openai_server):
    openai_server.api_key = FAKE_KEY
    texts, _ = run(OpenAIChat("m", base_url=openai_server.base_url, api_key=FAKE_KEY))
    assert texts and openai_server.last.headers["authorization"] == f"Bearer {FAKE_KEY}"


def test_key_from_the_environment_is_used_when_no_argument(openai_server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    openai_server.api_key = FAKE_KEY
    run(OpenAIResponses("m", base_url=openai_server.base_url))
    assert openai_server.last.headers["authorization"] == f"Bearer {FAKE_KEY}"


def test_base_url_from_the_environment_is_used_when_no_argument(openai_server, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", openai_server.base_url)
    run(OpenAIChat("m"))
    assert openai_server.last.headers["authorization"] == "Bearer not-needed"


@pytest.mark.parametrize("cls", MODELS)
@pytest.mark.parametrize("base_url", [None, "https://api.openai.com/v1"])
def test_openai_endpoint_without_key_fails_at_call_time_with_a_clear_message(cls, base_url):
    model = cls("gpt-5.2", base_url=base_url)  # constructing needs no key
    error = failure(model)
    assert str(error) == "no API key: set OPENAI_API_KEY or pass api_key=..."
    assert error.status_code is None


@pytest.mark.parametrize("cls", MODELS)
def test_repr_and_attribute_dumps_never_show_the_key(cls, openai_server):
    model = cls("m", base_url=openai_server.base_url, api_key=FAKE_KEY)
    assert repr(model) == f"{cls.__name__}(id='m', base_url='{openai_server.base_url}')"
    run(model)  # the key now also lives in the SDK client
    for text in (repr(model), str(model), repr(vars(model)), str(vars(model))):
        assert FAKE_KEY not in text


def test_repr_hides_credentials_written_into_the_url():
    model = OpenAIChat("m", base_url=f"http://user:{FAKE_KEY}@127.0.0.1:1/v1")
    assert FAKE_KEY not in repr(model)
    assert "127.0.0.1:1" in repr(model)


def test_a_used_model_can_be_copied_and_still_works(openai_server):
    """Copies (deepcopy, pickle) drop the live client, whose sockets and locks cannot be copied."""
    model = OpenAIChat("m", base_url=openai_server.base_url, api_key=FAKE_KEY, temperature=0.5)
    run(model)
    clone = pickle.loads(pickle.dumps(model))
    openai_server.api_key = FAKE_KEY
    texts, _ = run(clone)
    assert texts and openai_server.last.body["temperature"] == 0.5


def test_with_settings_copy_sends_its_own_settings_and_shares_the_client(openai_server):
    model = OpenAIChat("m", base_url=openai_server.base_url, temperature=0.5)
    run(model)
    colder = model.with_settings(temperature=0.0)
    run(colder)
    run(model)
    assert [body["temperature"] for body in openai_server.requests] == [0.5, 0.0, 0.5]
    assert colder._client is model._client


def test_with_settings_cannot_sneak_in_a_controlled_setting(openai_server):
    with pytest.raises(TypeError, match="stream"):
        run(OpenAIChat("m", base_url=openai_server.base_url).with_settings(stream=False))
    assert openai_server.calls == []


# -- failures ----------------------------------------------------------------------------------------


ERROR_MODES = [
    ("error-401", 401, "401 unauthorized: check OPENAI_API_KEY", "auth"),
    ("error-429", 429, "429 rate limited: retry in 7 s", "rate_limit"),
    ("quota", 429, "429 quota exceeded: check your plan and billing", "quota"),
    ("error-500", 500, "500 server error from {host}: The server had an error", "server"),
    ("error-503", 503, "503 server error from {host}: The engine is currently overloaded", "server"),
    ("error-404", 404, "404 not found at {host}", "not_found"),
    ("error-400", 400, "400 error from {host}: Invalid request.", "request"),
    ("garbage", None, "malformed response from {host}: ", "malformed"),
    ("drop", None, "connection to {host} closed mid-response: ", "connection"),
    ("cut", None, "incomplete response from {host}: ", "malformed"),
    ("stream-error", None, "error from {host}: The model produced invalid content.", None),
]


@pytest.mark.parametrize("cls", MODELS)
@pytest.mark.parametrize(("mode", "status", "message", "kind"), ERROR_MODES, ids=[m[0] for m in ERROR_MODES])
def test_each_failure_is_a_one_line_model_error_with_its_status(cls, mode, status, message, kind, openai_server):
    host = openai_server.base_url.split("/")[2]
    error = failure(cls(mode, base_url=openai_server.base_url, max_retries=0))
    assert str(error).startswith(message.format(host=host)), str(error)
    assert error.status_code == status and error.kind == kind
    assert error.retry_after == (7 if mode == "error-429" else None)
    assert "\n" not in str(error)
    assert len(openai_server.calls) == 1


@pytest.mark.parametrize("cls", MODELS)
def test_failure_chosen_by_the_server_applies_to_a_normal_model_name(cls, openai_server):
    openai_server.fail_next("error-500")
    error = failure(cls("gpt-5.2", base_url=openai_server.base_url, max_retries=0))
    assert error.status_code == 500
    texts, _ = run(cls("gpt-5.2", base_url=openai_server.base_url, max_retries=0))
    assert texts, "only the next request fails"


def test_rate_limit_message_uses_the_retry_after_header(openai_server):
    openai_server.retry_after = 42
    assert str(failure(OpenAIChat("error-429", base_url=openai_server.base_url, max_retries=0))) == (
        "429 rate limited: retry in 42 s")
    openai_server.retry_after = None
    assert str(failure(OpenAIChat("error-429", base_url=openai_server.base_url, max_retries=0))) == (
        "429 rate limited: retry later")


def test_default_retry_recovers_from_one_rate_limit(openai_server):
    openai_server.retry_after = 0.001
    openai_server.fail_next("error-429")
    texts, _ = run(OpenAIResponses("gpt-5.2", base_url=openai_server.base_url))
    assert "".join(texts) == "echo: hello there"
    assert len(openai_server.calls) == 2


@pytest.mark.parametrize("cls", MODELS)
def test_connection_refused_names_the_url(cls):
    url = f"http://127.0.0.1:{closed_port()}/v1"
    error = failure(cls("m", base_url=url, max_retries=0))
    assert str(error) == f"cannot connect to {url}: is the server running?"
    assert error.status_code is None


@pytest.mark.parametrize("cls", MODELS)
def test_timeout_says_how_long_it_waited(cls, openai_server):
    model = cls("slow-10000", base_url=openai_server.base_url, timeout=0.3, max_retries=0)
    started = time.monotonic()
    error = failure(model)
    assert str(error).startswith("timed out after 0.3 s")
    assert error.status_code is None and error.kind == "timeout"
    assert time.monotonic() - started < 5, "the client must give up at its timeout, not when the server answers"


@pytest.mark.parametrize("cls", MODELS)
def test_keyboard_interrupt_propagates_untouched_and_the_response_is_closed(cls, openai_server, monkeypatch):
    real_iter, real_close = openai.Stream.__iter__, openai.Stream.close
    streams = []

    def interrupted_iter(self):
        streams.append(self)
        events = real_iter(self)
        yield next(events)
        raise KeyboardInterrupt

    closed = []
    monkeypatch.setattr(openai.Stream, "__iter__", interrupted_iter)
    monkeypatch.setattr(openai.Stream, "close", lambda self: (closed.append(self), real_close(self)))
    with pytest.raises(KeyboardInterrupt):
        run(cls("m", base_url=openai_server.base_url))
    assert closed == streams and streams[0].response.is_closed


@pytest.mark.parametrize("cls", MODELS)
def test_abandoning_the_stream_closes_the_response(cls, openai_server):
    openai_server.script("one two three four five six")
    model = cls("m", base_url=openai_server.base_url)
    items = model.stream([Message("user", "hi")])
    assert isinstance(next(items), str)
    items.close()
    texts, _ = run(model)  # the client is still usable afterwards
    assert "".join(texts) == "echo: hello there"


# -- model_from_name ---------------------------------------------------------------------------------


def test_offline_name_gives_the_offline_model():
    assert isinstance(model_from_name("offline"), OfflineModel)


@pytest.mark.parametrize(("base_url", "api", "expected"), [
    (None, None, OpenAIResponses),
    ("https://api.openai.com/v1", None, OpenAIResponses),
    ("http://localhost:11434/v1", None, OpenAIChat),
    (None, "chat", OpenAIChat),
    ("http://localhost:11434/v1", "responses", OpenAIResponses),
])
def test_model_from_name_picks_the_api(base_url, api, expected):
    model = model_from_name("some-model", base_url=base_url, api=api)
    assert type(model) is expected
    assert (model.id, model.base_url, model.provider) == ("some-model", base_url, "openai")


def test_model_from_name_treats_a_custom_env_base_url_as_a_local_server(monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://localhost:8000/v1")
    assert type(model_from_name("qwen")) is OpenAIChat


@pytest.mark.parametrize(("name", "api"), [("", None), ("  ", None), ("m", "completions")])
def test_model_from_name_rejects_bad_input(name, api):
    with pytest.raises(ValueError):
        model_from_name(name, api=api)


def test_model_from_name_passes_url_and_key_to_the_requests(openai_server):
    openai_server.api_key = FAKE_KEY
    model = model_from_name("llama3", base_url=openai_server.base_url, api_key=FAKE_KEY)
    texts, _ = run(model)
    assert openai_server.last.path == "/v1/chat/completions" and texts


def test_a_bare_name_like_a_configured_model_shares_its_endpoint_key_and_settings(openai_server):
    base = OpenAIChat("first", base_url=openai_server.base_url, api_key=FAKE_KEY, temperature=0.2)
    other = model_from_name("second", like=base)
    assert type(other) is OpenAIChat and other is not base and base.id == "first"
    assert (other.id, other.base_url, other.settings) == ("second", openai_server.base_url, {"temperature": 0.2})
    openai_server.api_key = FAKE_KEY
    texts, _ = run(other)
    assert texts and openai_server.last.body["model"] == "second"
    assert type(model_from_name("second", like=OfflineModel())) is OpenAIResponses  # nothing to share


# -- declared capabilities -----------------------------------------------------------------------------


def test_models_declare_what_they_can_do(monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    offline, tools_fn, plain_fn = OfflineModel(), FunctionModel(lambda m, t: "x"), FunctionModel(lambda m: "x")
    hosted, local = OpenAIResponses("gpt-5.2"), OpenAIChat("llama3", base_url="http://127.0.0.1:9/v1")
    keyed = OpenAIChat("llama3", base_url="http://127.0.0.1:9/v1", api_key_env="MY_KEY")
    assert [m.supports_tools for m in (offline, tools_fn, plain_fn, hosted)] == [False, True, False, True]
    assert FunctionModel(lambda m, t=None: "x", supports_tools=False).supports_tools is False
    assert [m.is_local for m in (offline, plain_fn, hosted, local)] == [True, True, False, True]
    assert [m.needs_key for m in (offline, hosted, local, keyed)] == [False, True, False, True]
    assert [m.lists_models for m in (offline, plain_fn, hosted)] == [False, False, True]
    assert offline.available_models() is None
    assert [m.is_scripted for m in (offline, plain_fn, hosted)] == [True, True, False]
    assert [m.follows_prompts for m in (offline, plain_fn, hosted)] == [False, True, True]
    assert all(m.can_stream for m in (offline, plain_fn, hosted, local))


# -- the test server speaks the real wire format ------------------------------------------------------


def strict_client(server) -> openai.OpenAI:
    """The SDK in strict mode validates every chunk and event against its own types."""
    return openai.OpenAI(api_key=FAKE_KEY, base_url=server.base_url, max_retries=0,
                         _strict_response_validation=True)


def test_server_chat_shapes_validate_against_the_sdk_types(openai_server):
    client = strict_client(openai_server)
    openai_server.usage = {"cached_tokens": 3, "reasoning_tokens": 2}
    chunks = list(client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}],
                                                 stream=True, stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "echo: hi"
    assert chunks[-1].usage.prompt_tokens_details.cached_tokens == 3
    plain = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    assert plain.choices[0].message.content == "echo: hi"
    assert plain.usage.completion_tokens_details.reasoning_tokens == 2


def test_server_responses_shapes_validate_against_the_sdk_types(openai_server):
    client = strict_client(openai_server)
    openai_server.usage = {"cached_tokens": 3, "reasoning_tokens": 2}
    events = list(client.responses.create(model="m", input="hi", instructions="be brief", stream=True))
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[-1].response.output_text == "echo: hi"
    assert events[-1].response.usage.input_tokens_details.cached_tokens == 3
    plain = client.responses.create(model="m", input=[{"role": "user", "content": "hi"}])
    assert plain.output_text == "echo: hi" and plain.usage.output_tokens_details.reasoning_tokens == 2


def test_server_tool_call_shapes_validate_against_the_sdk_types(openai_server):
    client = strict_client(openai_server)
    tool = {"name": "add", "arguments": '{"a": 1}'}
    openai_server.script(*[{"tool_calls": [tool]}] * 4)
    chunks = list(client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}],
                                                 stream=True))
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    plain = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    assert plain.choices[0].message.tool_calls[0].function.arguments == '{"a": 1}'
    events = list(client.responses.create(model="m", input="hi", stream=True))
    [call] = [e.item for e in events if e.type == "response.output_item.done"]
    assert (call.type, call.name, call.arguments) == ("function_call", "add", '{"a": 1}')
    plain = client.responses.create(model="m", input="hi")
    assert [o.type for o in plain.output] == ["function_call"]


def test_server_reply_function_sees_the_request_and_records_it(openai_server):
    openai_server.reply = lambda body: f"{len(body['messages'])} messages"
    texts, _ = run(OpenAIChat("m", base_url=openai_server.base_url), CONVERSATION)
    assert "".join(texts) == "4 messages"
    assert openai_server.requests == [openai_server.last.body]


def test_server_latency_delays_the_first_byte(openai_server):
    openai_server.latency_ms = 300
    model = OpenAIChat("m", base_url=openai_server.base_url, timeout=0.1, max_retries=0)
    assert str(failure(model)).startswith("timed out")


def test_copies_made_before_the_first_call_share_the_client_one_of_them_builds(openai_server):
    model = OpenAIChat("m", base_url=openai_server.base_url, max_retries=1)
    copies = [model.without_retries(), model.with_settings(temperature=0.0)]
    for clone in copies:
        run(clone)
    run(model)
    assert model._client is not None and all(clone._client is model._client for clone in copies)
    assert len(openai_server.requests) == 3
