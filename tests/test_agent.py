import threading

import pytest
from conftest import RecordingModel, echo

from nbsessions import (
    Agent,
    FunctionModel,
    InMemoryDb,
    Message,
    ModelError,
    OfflineModel,
    RunStatus,
    SessionAccessError,
    SessionNotFoundError,
    set_price,
)
from nbsessions.llm.prices import clear_prices


@pytest.fixture
def agent(db):
    return Agent(model=RecordingModel(), db=db)


def test_a_run_without_session_id_continues_the_agents_own_session(agent):
    first, second = agent.run("one"), agent.run("two")
    assert first.session_id == second.session_id == agent.session_id
    assert first.status == RunStatus.completed and first.content == "echo one"
    assert agent.model.history_counts == [0, 0]
    assert agent.get_session(first.session_id).session_id == first.session_id


def test_history_is_off_by_default_and_on_when_asked(db):
    plain = Agent(model=RecordingModel(), db=db)
    r1 = plain.run("a")
    assert plain.run("b", session_id=r1.session_id).content == "echo b"
    assert plain.model.history_counts == [0, 0]
    remembering = Agent(model=RecordingModel(), db=db, add_history_to_context=True, num_history_runs=1)
    r3 = remembering.run("c", session_id=r1.session_id)
    assert r3.content == "echo c" and remembering.model.history_counts == [2]
    assert [m.from_history for m in r3.messages] == [True, True, False, False]


def test_failed_runs_are_stored_but_never_sent_as_history(db):
    def flaky(messages):
        if len(model.requests) == 2:
            raise ModelError("500 server error", status_code=500, kind="server", retry_after=3)
        return echo(messages)

    model = RecordingModel(flaky)
    agent = Agent(model=model, db=db, add_history_to_context=True)
    ok = agent.run("first")
    with pytest.raises(ModelError) as caught:
        agent.run("second", session_id=ok.session_id)
    failed = caught.value.run
    assert (caught.value.status_code, caught.value.kind, caught.value.retry_after) == (500, "server", 3)
    assert failed.status == RunStatus.error and failed.error == "500 server error"
    assert db.get_run(failed.run_id).status == RunStatus.error
    third = agent.run("third", session_id=ok.session_id)
    assert third.content == "echo third" and model.history_counts == [0, 2, 2]
    assert [r.status for r in agent.get_runs(ok.session_id)] == [
        RunStatus.completed, RunStatus.error, RunStatus.completed]


def test_any_exception_from_a_model_becomes_a_stored_one_line_error(agent, db):
    def broken(messages):
        raise ValueError("bad\nthing")

    with pytest.raises(ModelError, match="ValueError: bad thing") as caught:
        agent.run("x", model=FunctionModel(broken))
    assert "\n" not in str(caught.value)
    assert db.get_run(caught.value.run.run_id).error == "ValueError: bad thing"


def test_streaming_yields_content_events_and_the_final_run_afterwards(agent, db):
    stream = agent.run("hello there", stream=True)
    assert stream.run.status == RunStatus.running
    chunks = [event.content for event in stream]
    assert "".join(chunks) == "echo hello there"
    assert stream.run.status == RunStatus.completed
    assert db.get_run(stream.run.run_id).content == "".join(chunks)


def test_stopping_a_stream_early_keeps_the_partial_reply_as_cancelled(db):
    agent = Agent(model=FunctionModel(lambda m: iter(["one ", "two ", "three"])), db=db,
                  add_history_to_context=True)
    stream = agent.run("go", stream=True)
    assert str(next(iter(stream))) == "one "
    stream.close()
    stored = db.get_run(stream.run.run_id)
    assert stored.status == RunStatus.cancelled and stored.content == "one "
    assert agent.run("next", session_id=stored.session_id).messages[0].from_history is False


def test_keyboard_interrupt_cancels_the_run_and_propagates(db):
    def interrupted(messages):
        yield "partial "
        raise KeyboardInterrupt

    agent = Agent(model=FunctionModel(interrupted), db=db)
    with pytest.raises(KeyboardInterrupt):
        agent.run("go")
    (run,) = agent.get_runs(agent.get_sessions()[0].session_id)
    assert run.status == RunStatus.cancelled and run.content == "partial "


def test_cancel_run_from_another_thread_stops_the_stream(db):
    release = threading.Event()

    def slow(messages):
        yield "first "
        release.wait(5)
        yield "second "
        yield "third"

    agent = Agent(model=FunctionModel(slow), db=db)
    stream = agent.run("go", stream=True)
    chunks = iter(stream)
    assert next(chunks).content == "first "
    worker = threading.Thread(target=lambda: (agent.cancel_run(stream.run.run_id), release.set()))
    worker.start()
    worker.join()
    assert [event.event for event in chunks] == ["RunCancelled"]
    stored = db.get_run(stream.run.run_id)
    assert stored.status == RunStatus.cancelled and stored.content == "first "


def test_bad_input_raises_value_error_and_writes_nothing(agent, db):
    with pytest.raises(ValueError, match="empty"):
        agent.run("   ")
    with pytest.raises(ValueError, match="JSON"):
        agent.run("x", session_state={"f": object()})
    with pytest.raises(ValueError, match="sort"):
        agent.get_sessions(sort="colour")
    assert db.list_sessions() == []


def test_session_state_seeds_merges_and_fills_instructions(db):
    model = RecordingModel()
    agent = Agent(model=model, db=db, session_state={"topic": "ml", "n": 1},
                  instructions="You help with {topic}; {unknown} stays.")
    r = agent.run("hi", session_state={"topic": "stats"})
    assert model.prompts[0][0] == "You help with stats; {unknown} stays."
    assert agent.get_session_state(r.session_id) == {"topic": "stats", "n": 1}
    assert agent.update_session_state({"n": 2}, r.session_id) == {"topic": "stats", "n": 2}
    assert db.get_session(r.session_id).session_state == {"topic": "stats", "n": 2}


def test_sessions_of_another_user_are_refused_never_overwritten(agent, db):
    alice = agent.run("mine", user_id="alice")
    with pytest.raises(SessionAccessError):
        agent.run("sneaky", session_id=alice.session_id, user_id="bob")
    with pytest.raises(SessionAccessError):
        agent.get_session(alice.session_id, user_id="bob")
    assert [r.input for r in agent.get_runs(alice.session_id)] == ["mine"]
    bob_agent = Agent(model=RecordingModel(), db=db, user_id="bob")
    assert bob_agent.get_sessions() == []
    with pytest.raises(SessionAccessError):
        bob_agent.update_session_state({"x": 1}, alice.session_id)


def test_chat_history_and_session_messages(db):
    agent = Agent(model=RecordingModel(), db=db, instructions="sys", add_history_to_context=True)
    r = agent.run("a")
    agent.run("b", session_id=r.session_id)
    assert agent.model.history_counts == [0, 2]
    assert [(m.role, m.content) for m in agent.get_chat_history(r.session_id)] == [
        ("user", "a"), ("assistant", "echo a"), ("user", "b"), ("assistant", "echo b")]
    messages = agent.get_session_messages(r.session_id)
    assert [m.role for m in messages] == ["system"] + ["user", "assistant"] * 2  # one system message, as Agno
    assert not any(m.from_history for m in messages)
    assert [m.content for m in agent.get_session_messages(r.session_id, limit=2)] == ["sys", "echo b"]
    assert [m.role for m in agent.get_session_messages(r.session_id, skip_history_messages=False)].count("user") == 3
    assert agent.get_chat_history(r.session_id, last_n_runs=1)[0].content == "b"


def test_metrics_per_run_and_per_session(db):
    agent = Agent(model=OfflineModel(), db=db)
    r1 = agent.run("count my tokens")
    r2 = agent.run("and these", session_id=r1.session_id)
    for r in (r1, r2):
        m = r.metrics
        assert m.input_tokens > 0 and m.output_tokens > 0 and m.total_tokens == m.input_tokens + m.output_tokens
        assert 0 < m.time_to_first_token <= m.duration
        assert m.cost is None  # offline models have no price
    total = agent.get_session_metrics(r1.session_id)
    assert total.total_tokens == r1.metrics.total_tokens + r2.metrics.total_tokens


def test_user_set_prices_give_a_cost():
    set_price("house-model", input_per_mtok=1.0, output_per_mtok=2.0)
    try:
        model = RecordingModel("x" * 400, id="house-model")
        model.provider = "local"
        run = Agent(model=model).run("y" * 40)
        # a function model estimates 4 characters a token: 10 tokens in, 100 out
        assert (run.metrics.input_tokens, run.metrics.output_tokens) == (10, 100)
        assert run.metrics.cost == pytest.approx((10 * 1.0 + 100 * 2.0) / 1_000_000)
    finally:
        clear_prices()


def test_rerunning_a_cell_supersedes_its_previous_run(db):
    agent = Agent(model=RecordingModel(), db=db, add_history_to_context=True)
    first = agent.run("cell A", cell_id="A")
    sid = first.session_id
    agent.run("cell B", session_id=sid, cell_id="B")
    again = agent.run("cell A v2", session_id=sid, cell_id="A")
    assert again.content == "echo cell A v2"
    assert agent.model.prompts[-1] == ["cell B", "echo cell B", "cell A v2"]  # only cell B's exchange, not A's old one
    assert db.get_run(first.run_id).superseded_by == again.run_id
    later = agent.run("after", session_id=sid)
    assert [m.content for m in later.messages if m.from_history and m.role == "user"] == ["cell B", "cell A v2"]


def test_sessions_list_sort_page_rename_delete(agent, db):
    sids = [agent.run(f"p{i}", session_id=f"session-{i}").session_id for i in range(3)]
    assert [s.session_id for s in agent.get_sessions()] == sids[::-1]
    assert [s.session_id for s in agent.get_sessions(limit=1, offset=1)] == [sids[1]]
    assert agent.set_session_name(sids[0], session_name="  First chat ").session_name == "First chat"
    assert agent.set_session_name(sids[1], autogenerate=True).session_name == "p1"
    with pytest.raises(ValueError):
        agent.set_session_name(sids[2], session_name="")
    assert agent.delete_session(sids[2]) is True
    assert db.list_runs(sids[2]) == []
    with pytest.raises(SessionNotFoundError):
        agent.get_session(sids[2])


def test_fork_copies_runs_up_to_the_chosen_one(db):
    agent = Agent(model=RecordingModel(), db=db, add_history_to_context=True, session_state={"k": 1})
    r1 = agent.run("one")
    agent.run("two", session_id=r1.session_id)
    fork = agent.fork_session(r1.session_id, run_id=r1.run_id)
    assert fork.forked_from == {"session_id": r1.session_id, "run_id": r1.run_id}
    assert [r.input for r in agent.get_runs(fork.session_id)] == ["one"]
    assert agent.get_session_state(fork.session_id) == {"k": 1}
    assert agent.run("three", session_id=fork.session_id).content == "echo three"
    assert agent.model.prompts[-1] == ["one", "echo one", "three"]
    assert len(agent.get_runs(r1.session_id)) == 2
    with pytest.raises(SessionNotFoundError):
        agent.fork_session(r1.session_id, run_id="nope")


def test_listeners_and_the_active_session(agent):
    events = []
    agent.add_listener(lambda event, sid: events.append(event))
    r = agent.run("x")
    agent.set_active_session(r.session_id)
    assert agent.active_session_id == r.session_id
    agent.delete_session(r.session_id)
    assert agent.active_session_id is None
    assert events == ["run", "run", "active", "deleted"]
    with pytest.raises(SessionNotFoundError):
        agent.set_active_session("missing")


def test_an_agent_without_db_keeps_its_sessions_private():
    a, b = Agent(), Agent()
    r = a.run("hi")
    assert isinstance(a.db, InMemoryDb) and a.db is not b.db
    assert b.get_sessions() == [] and len(a.get_sessions()) == 1
    assert a.get_session(r.session_id).session_id == r.session_id


def test_offline_model_is_deterministic_and_reports_what_it_received():
    messages = [Message("system", "be brief"), Message("user", "old", from_history=True), Message("user", "new")]
    model = OfflineModel()
    first = list(model.stream(messages))
    assert first == list(model.stream(messages))
    text = "".join(x for x in first if isinstance(x, str))
    assert "new" in text and "history messages in context: 1" in text and "be brief" in text


def test_history_by_messages_and_by_token_budget_from_the_agent(db):
    agent = Agent(model=RecordingModel(), db=db, add_history_to_context=True, num_history_runs=10)
    sid = agent.run("one").session_id
    for prompt in ("two", "three"):
        agent.run(prompt, session_id=sid)
    agent.run("m", session_id=sid, num_history_messages=3)
    budget = Agent(model=RecordingModel(), db=db, add_history_to_context=True, num_history_runs=10,
                   max_history_tokens=10 ** 6)
    budget.run("big", session_id=sid)
    budget.run("tiny", session_id=sid, max_history_tokens=2)  # under the last pair (1 + 2 tokens)
    agent.run("off", session_id=sid, add_history_to_context=False)
    assert agent.model.history_counts == [0, 2, 4, 3, 0]  # one, two, three, m (the newest 3 messages, as Agno), off
    assert budget.model.history_counts == [8, 0]  # big, tiny


def test_closing_a_stream_before_its_first_chunk_stores_no_run(agent, db):
    stream = agent.run("never read", stream=True)
    assert db.get_run(stream.run.run_id) is None  # nothing is stored before the stream is iterated
    stream.close()
    assert db.get_run(stream.run.run_id) is None
    assert list(stream) == []
    assert agent.model.requests == []


def test_regenerate_makes_a_variant_with_the_same_context_and_choose_variant_picks_one(db):
    replies = iter(["first answer", "second answer", "third answer", "after"])
    model = RecordingModel(lambda m: next(replies))
    agent = Agent(model=model, db=db, add_history_to_context=True)
    before = agent.run("context", model=RecordingModel("ok"))
    sid = before.session_id
    agent.set_active_session(sid)
    original = agent.run("question", session_id=sid)
    variant = agent.regenerate()
    assert variant.input == "question" and variant.variant_of == original.run_id
    assert model.prompts[1] == model.prompts[0] == ["context", "ok", "question"]  # same context, not the first reply
    assert db.get_run(original.run_id).superseded_by == variant.run_id
    third = agent.regenerate(run_id=original.run_id)
    assert [r.content for r in agent.variants(variant.run_id)] == ["first answer", "second answer", "third answer"]
    agent.choose_variant(original.run_id)
    assert {r.run_id: r.superseded_by for r in agent.variants(third.run_id)} == {
        original.run_id: None, variant.run_id: original.run_id, third.run_id: original.run_id}
    agent.run("next", session_id=sid)
    assert model.prompts[-1] == ["context", "ok", "question", "first answer", "next"]


def test_regenerate_without_a_run_is_a_clear_error(agent):
    with pytest.raises(ValueError, match="no active session"):
        agent.regenerate()
