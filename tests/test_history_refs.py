"""A stored run keeps its history as references to earlier runs; reading it gives back exactly what was sent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import RecordingModel

from nbsessions import Agent
from nbsessions.db import InMemoryDb, TinyDb
from nbsessions.db.journal_format import FORMAT_VERSION
from nbsessions.llm.base import ToolCall
from nbsessions.llm.offline import FunctionModel
from nbsessions.schema import Message, RunOutput, RunStatus

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).resolve().parent.parent


class Recorder:
    """A model that remembers the messages of every call, so tests compare stored runs with what was sent."""

    def __init__(self) -> None:
        self.sent: list[list[dict]] = []

    def __call__(self, messages: list[Message], tools: list[dict]):
        if tools and messages[-1].role == "user" and "weather" in (messages[-1].content or ""):
            self.sent.append([m.to_dict() for m in messages])
            return ToolCall(f"call-{len(self.sent)}", "get_weather", json.dumps({"city": "Rome"}))
        self.sent.append([m.to_dict() for m in messages])
        return f"reply {len(self.sent)} to {messages[-1].content}"


def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


def agent_on(db, **options) -> tuple[Agent, Recorder]:
    recorder = Recorder()
    options.setdefault("add_history_to_context", True)
    agent = Agent(model=FunctionModel(recorder), db=db, instructions="You help.", tools=[get_weather], **options)
    return agent, recorder


def sent_then_added(recorder: Recorder, run: RunOutput) -> list[dict]:
    """What a run's messages must read as: the context its first call sent, then what that run added."""
    first = next(i for i, sent in enumerate(recorder.sent) if sent[-1]["content"] == run.input
                 or any(m["role"] == "user" and m["content"] == run.input and not m["from_history"] for m in sent))
    context = recorder.sent[first]
    return context + [m.to_dict() for m in run.messages[len(context):]]


def stored_messages(db, run_id: str) -> list[dict]:
    """The messages as the store keeps them (references unresolved)."""
    if isinstance(db, TinyDb):
        return db.tinydb.storage.load("runs", run_id)["messages"]
    if type(db).__name__ == "PostgresDb":
        with db._connection("read a run") as conn:
            return conn.execute("SELECT data FROM nbsessions.runs WHERE run_id = %s", [run_id]).fetchone()[0][
                "messages"]
    return db._runs[run_id]["messages"]


def assert_reads_as_sent(db, agent: Agent, recorder: Recorder, session_id: str) -> None:
    listed = db.list_runs(session_id)
    for run in listed:
        if run.kind != "agent" or not run.messages:
            continue
        expected = sent_then_added(recorder, run)
        assert [m.to_dict() for m in run.messages] == expected
        assert [m.to_dict() for m in db.get_run(run.run_id).messages] == expected
        assert not any(m.get("from_history") for m in stored_messages(db, run.run_id)), "history stored in full"


@pytest.mark.parametrize("options", [{"num_history_runs": 2}, {"num_history_messages": 3},
                                     {"max_history_tokens": 60}], ids=["runs", "messages", "tokens"])
def test_runs_read_back_with_the_exact_context_they_sent(db, options):
    agent, recorder = agent_on(db, **options)
    sid = agent.run("first").session_id
    for prompt in ("second", "what is the weather?", "fourth", "fifth"):
        agent.run(prompt, session_id=sid)
    if "num_history_runs" in options:  # tool calls and results are history too
        assert any(m.from_history and m.role == "tool" for r in db.list_runs(sid) for m in r.messages)
    assert_reads_as_sent(db, agent, recorder, sid)
    last = db.list_runs(sid)[-1]
    refs = [m for m in stored_messages(db, last.run_id) if "ref" in m]
    assert refs and all(set(r) == {"ref", "start", "end"} for r in refs)


def test_message_limits_cut_into_a_run_and_the_reference_starts_there(db):
    agent, recorder = agent_on(db, num_history_messages=3)
    sid = agent.run("one").session_id
    agent.run("two", session_id=sid)
    three = agent.run("three", session_id=sid)
    history = [m for m in db.get_run(three.run_id).messages if m.from_history]
    assert [(m.role, m.content) for m in history] == [("assistant", "reply 1 to one"), ("user", "two"),
                                                      ("assistant", "reply 2 to two")]  # Agno: the newest 3
    first, second = [m for m in stored_messages(db, three.run_id) if "ref" in m]
    assert (first["start"], first["end"]) == (1, 2) and (second["start"], second["end"]) == (0, 2)


def test_superseded_cells_and_regenerated_variants_read_as_sent(db):
    agent, recorder = agent_on(db, num_history_runs=3)
    sid = agent.run("first", cell_id="a").session_id
    agent.run("second", session_id=sid, cell_id="b")
    agent.run("second, edited", session_id=sid, cell_id="b")  # supersedes the first "second"
    third = agent.run("third", session_id=sid)
    variant = agent.regenerate(run_id=third.run_id)
    assert variant.variant_of == third.run_id
    assert_reads_as_sent(db, agent, recorder, sid)
    stored = db.get_run(variant.run_id)
    assert [m.to_dict() for m in stored.messages[:-1]] == [m.to_dict() for m in db.get_run(third.run_id).messages[:-1]]
    assert any("ref" in m for m in stored_messages(db, variant.run_id))
    agent.choose_variant(third.run_id)  # rewrites the variants: their references stay references
    assert any("ref" in m for m in stored_messages(db, variant.run_id))
    assert_reads_as_sent(db, agent, recorder, sid)


def test_a_fork_refers_to_its_own_copies(db):
    agent, recorder = agent_on(db, num_history_runs=3)
    sid = agent.run("first").session_id
    second = agent.run("second", session_id=sid)
    agent.run("third", session_id=sid)
    fork = agent.fork_session(sid, second.run_id)
    copies = db.list_runs(fork.session_id)
    copy_ids = {r.run_id for r in copies}
    assert [m.to_dict() for m in copies[-1].messages] == [m.to_dict() for m in db.get_run(second.run_id).messages]
    refs = [m for m in stored_messages(db, copies[-1].run_id) if "ref" in m]
    assert refs and {r["ref"] for r in refs} <= copy_ids
    agent.delete_session(sid)  # the fork does not depend on its origin
    assert [m.to_dict() for m in db.list_runs(fork.session_id)[-1].messages] == \
        [m.to_dict() for m in copies[-1].messages]
    agent.run("in the fork", session_id=fork.session_id)
    assert_reads_as_sent(db, agent, recorder, fork.session_id)


def test_a_missing_referenced_run_reads_as_one_clear_gap(tmp_path):
    db = TinyDb(tmp_path / "s.json")
    agent, _ = agent_on(db, num_history_runs=1)
    first = agent.run("first")
    second = agent.run("second", session_id=first.session_id)
    db.tinydb.table("runs").remove(doc_ids=[first.run_id])  # deleted behind the store's back
    messages = db.get_run(second.run_id).messages
    gap = [m for m in messages if m.from_history]
    assert len(gap) == 1 and gap[0].role == "system"
    assert f"2 history message(s) from run {first.run_id} are missing" in gap[0].content
    assert [m.content for m in messages if not m.from_history][1:] == ["second", "reply 2 to second"]
    third = agent.run("third", session_id=first.session_id)  # later history is whole again
    assert [m.content for m in db.get_run(third.run_id).messages if m.from_history] == ["second", "reply 2 to second"]
    db.close()


def test_history_never_resolves_from_another_session(db):
    db.upsert_run(RunOutput(run_id="theirs", session_id="other", status=RunStatus.completed,
                            messages=[Message("user", "secret"), Message("assistant", "secret reply")]))
    forged = RunOutput(run_id="mine", session_id="s", messages=[
        Message("user", "secret", from_history=True, origin=("theirs", 0)), Message("user", "q")])
    db.upsert_run(forged)
    read = db.get_run("mine")
    assert "secret" not in read.messages[0].content and "missing" in read.messages[0].content


def test_history_without_an_origin_is_stored_in_full(db):
    run = RunOutput(session_id="s", messages=[Message("user", "old", from_history=True), Message("user", "new")])
    db.upsert_run(run)
    assert stored_messages(db, run.run_id)[0]["content"] == "old"
    assert db.get_run(run.run_id).messages == run.messages


def test_compaction_keeps_references_valid(tmp_path):
    path = tmp_path / "s.json"
    with TinyDb(path, compact_min_lines=10) as db:
        agent, recorder = agent_on(db, num_history_runs=2)
        sid = agent.run("first").session_id
        for i in range(12):  # many appends: compaction runs several times along the way
            agent.run(f"prompt {i}", session_id=sid)
        db.compact()
        assert_reads_as_sent(db, agent, recorder, sid)
    with TinyDb(path) as db:
        assert_reads_as_sent(db, agent, recorder, sid)


def test_bytes_with_history_stay_close_to_bytes_without(tmp_path):
    sizes = {}
    for history in (False, True):
        path = tmp_path / f"h{history}.json"
        with TinyDb(path) as db:
            agent = Agent(model=RecordingModel("a reply of some length " * 20), db=db,
                          add_history_to_context=history, num_history_runs=3)
            sid = agent.run("a question of some length " * 20).session_id
            for _ in range(20):
                agent.run("a question of some length " * 20, session_id=sid)
            db.compact()
        sizes[history] = path.stat().st_size
    assert sizes[True] < 1.3 * sizes[False]


def test_the_in_memory_store_shares_nothing_through_references():
    db = InMemoryDb()
    agent, _ = agent_on(db, num_history_runs=1)
    first = agent.run("what is the weather?")
    second = agent.run("next", session_id=first.session_id)
    read = db.get_run(second.run_id)
    call = next(m for m in read.messages if m.tool_calls)
    call.tool_calls[0]["name"] = "changed"
    assert db.get_run(first.run_id).messages[2].tool_calls[0]["name"] == "get_weather"


def format1_file(tmp_path):
    path = tmp_path / "old.json"
    path.write_bytes((DATA / "format1.nbsessions.json").read_bytes())
    return path


def format1_runs(path) -> dict[str, dict]:
    """The newest stored version of every run, read from the file's lines with plain json."""
    docs = {}
    for line in path.read_text().splitlines()[1:]:
        record = json.loads(line)
        if record["t"] == "runs":
            docs[record["id"]] = record.get("doc")
    return {k: v for k, v in docs.items() if v is not None}


def test_a_format1_file_reads_as_written_and_is_left_untouched(tmp_path):
    path = format1_file(tmp_path)
    before = path.read_bytes()
    expected = format1_runs(path)
    assert json.loads(before.splitlines()[0])["nbsessions"] == 1
    with TinyDb(path) as db:
        runs = {r.run_id: r for s in db.list_sessions() for r in db.list_runs(s.session_id)}
        assert runs.keys() == expected.keys() and len(runs) == 11
        for run_id, doc in expected.items():
            assert runs[run_id].to_dict() == RunOutput.from_dict(doc).to_dict()
            assert db.get_run(run_id).to_dict() == RunOutput.from_dict(doc).to_dict()
        assert any(m.from_history for r in runs.values() for m in r.messages)
    assert path.read_bytes() == before  # reading migrates nothing


def test_the_first_write_to_a_format1_file_migrates_it_and_history_refers_to_old_runs(tmp_path):
    path = format1_file(tmp_path)
    expected = format1_runs(path)
    with TinyDb(path) as db:
        agent, recorder = agent_on(db, num_history_runs=2, user_id="ana")
        new = agent.run("after the upgrade", session_id="s-main")
        history = [m for m in new.messages if m.from_history]
        assert [m.content for m in history if m.role == "user"] == ["Third question", "Fourth question"]
        refs = [m for m in stored_messages(db, new.run_id) if "ref" in m]
        assert {r["ref"] for r in refs} <= expected.keys() and refs
        assert [m.to_dict() for m in db.get_run(new.run_id).messages] == recorder.sent[0] + [new.messages[-1].to_dict()]
    assert json.loads(path.read_bytes().splitlines()[0])["nbsessions"] == FORMAT_VERSION == 3
    with TinyDb(path) as db:
        for run_id, doc in expected.items():
            assert db.get_run(run_id).to_dict() == RunOutput.from_dict(doc).to_dict()
        assert [m.to_dict() for m in db.get_run(new.run_id).messages][:-1] == recorder.sent[0]


AGENT_PROCESS = """
import sys
from nbsessions import Agent
from nbsessions.db import TinyDb
with TinyDb(sys.argv[1], compact_min_lines=25) as db:
    agent = Agent(db=db, add_history_to_context=True, num_history_runs=3)
    for i in range(int(sys.argv[3])):
        agent.run(f"{sys.argv[4]} prompt {i}", session_id=sys.argv[2])
"""


def test_two_processes_running_with_history_lose_nothing_and_every_reference_resolves(tmp_path):
    path = tmp_path / "shared.json"
    with TinyDb(path) as db:
        sid = Agent(db=db).run("seed").session_id
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    procs = [subprocess.Popen([sys.executable, "-c", AGENT_PROCESS, str(path), sid, "30", name], env=env)
             for name in ("a", "b")]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    with TinyDb(path) as db:
        runs = db.list_runs(sid)
        assert len(runs) == 61 and {r.status for r in runs} == {RunStatus.completed}
        own = {r.run_id: [m for m in r.messages if not m.from_history and m.role != "system"] for r in runs}
        for run in runs[1:]:  # the seed had no history yet
            history = [m for m in run.messages if m.from_history]
            assert history and not any("missing" in (m.content or "") for m in history)
            for m in history:  # each history message is the message it refers to, in that run
                source_id, index = m.origin
                assert own[source_id][index].to_dict() == {**m.to_dict(), "from_history": False}


def test_a_long_prompt_is_stored_once_and_reads_back_whole(db):
    agent, recorder = agent_on(db, num_history_runs=1)
    prompt = "a long prompt " * 2000
    first = agent.run(prompt)
    second = agent.run("short", session_id=first.session_id)
    stored = stored_messages(db, first.run_id)
    user = next(m for m in stored if m.get("role") == "user")
    assert user["content"] is None and user["content_is_input"] is True  # the text lives once, in `input`
    assert "short" in json.dumps(stored_messages(db, second.run_id))  # short prompts stay as they are
    assert [m.to_dict() for m in db.get_run(first.run_id).messages] == sent_then_added(recorder, first)
    assert [m.content for m in db.get_run(second.run_id).messages if m.from_history][0] == prompt
    assert_reads_as_sent(db, agent, recorder, first.session_id)


def test_list_runs_without_history_gives_each_runs_own_messages_and_the_next_run_still_sends_them(db):
    model = RecordingModel()
    agent = Agent(model=model, db=db, add_history_to_context=True, num_history_runs=3, instructions="Be brief.")
    runs = [agent.run(f"question {i}") for i in range(4)]
    sid = runs[0].session_id
    full = db.list_runs(sid, last=2)
    own = db.list_runs(sid, last=2, resolve_history=False)
    assert [r.run_id for r in own] == [r.run_id for r in full]
    assert any(m.from_history for r in full for m in r.messages)
    for short, whole in zip(own, full, strict=True):
        assert [m.to_dict() for m in short.messages] == [m.to_dict() for m in whole.messages if not m.from_history]
    agent.run("question 4")
    sent = [(m.role, m.content) for m in model.requests[-1]]
    assert sent[0] == ("system", "Be brief.") and sent[-1] == ("user", "question 4")
    assert [c for r, c in sent[1:-1] if r == "user"] == ["question 1", "question 2", "question 3"]
