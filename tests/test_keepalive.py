"""Streamed replies keep their connection: the SDK stops at ``[DONE]`` before the body's end, which used to cost a
new connection per streamed call (per row of a batch)."""

from __future__ import annotations

import pytest

from nbsessions import Agent
from nbsessions.db import InMemoryDb
from nbsessions.explore import batch
from nbsessions.llm import OpenAIChat, OpenAIResponses
from nbsessions.records.schema import Message


@pytest.fixture(autouse=True)
def no_openai_env(monkeypatch):
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("cls", [OpenAIChat, OpenAIResponses])
def test_streamed_runs_reuse_one_connection(cls, openai_server):
    agent = Agent(model=cls("gpt-5.2", base_url=openai_server.base_url), db=InMemoryDb())
    replies = []
    for i in range(6):
        stream = agent.run(f"question {i}", stream=True)
        for _ in stream:
            pass
        replies.append(stream.run.content)
    assert replies == [f"echo: question {i}" for i in range(6)]
    assert len(openai_server.calls) == 6
    assert len({c.connection for c in openai_server.calls}) == 1, [c.connection for c in openai_server.calls]


def test_a_batch_opens_at_most_one_connection_per_worker(openai_server):
    agent = Agent(model=OpenAIChat("gpt-5.2", base_url=openai_server.base_url), db=InMemoryDb())
    result = batch(agent, "row {i}", [{"i": i} for i in range(40)], concurrency=4, progress=False)
    assert result.counts() == {"completed": 40}
    assert len({c.connection for c in openai_server.calls}) <= 4


def test_a_stream_left_mid_reply_is_dropped_not_read_to_its_end(openai_server):
    """Only a stream that reached ``[DONE]`` is drained: one abandoned early closes its connection at once."""
    openai_server.script("one two three four five six seven eight nine ten eleven twelve")
    model = OpenAIChat("gpt-5.2", base_url=openai_server.base_url)
    stream = model.stream([Message("user", "count")])
    assert isinstance(next(stream), str)
    stream.close()
    assert "".join(i for i in model.stream([Message("user", "again")]) if isinstance(i, str)) == "echo: again"
    first, second = openai_server.calls
    assert first.connection != second.connection
