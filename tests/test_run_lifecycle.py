"""A run's life under interleaving: continues racing, a delete mid-stream, streams nobody iterates, failures of
every run kind — each on the stores where it applies, with real threads and processes."""

from __future__ import annotations

import asyncio
import gc
import re
import threading
from pathlib import Path

import pytest
from threads import at_once
from worker_protocol import Worker

from nbsessions import (
    Agent,
    FunctionModel,
    InMemoryDb,
    RunStatus,
    Workflow,
    WorkflowAgent,
    WorkflowError,
    tool,
)
from nbsessions.db import open_store
from nbsessions.llm.base import ToolCall
from nbsessions.records.errors import ModelError, NbSessionsError, RunNotPausedError
from nbsessions.records.events import RunCancelledEvent
from nbsessions.records.schema import RunOutput
from nbsessions.runs.core import run_writes
from nbsessions.runs.core.run_writes import DELETED
from nbsessions.runs.team import Team

ROUNDS = 20
NOT_PAUSED = r"run \w{8} is (no longer paused|completed, not paused): [^\n]+"  # one line, whichever came first


def asks_to_drop(messages) -> object:
    """A model that asks to drop a table (which waits for approval), then answers with the tool's result."""
    if messages[-1].role == "tool":
        return f"done: {messages[-1].content}"
    return ToolCall("c1", "drop_table", '{"name": "old"}')


# -- two continues of one paused run -------------------------------------------------------------------------
def test_two_threads_continuing_one_paused_run_run_the_approved_tool_once(db):
    ran: list[str] = []

    @tool(requires_confirmation=True)
    def drop_table(name: str) -> str:
        """Drop a table."""
        ran.append(name)
        return f"dropped {name}"

    def agent() -> Agent:
        return Agent(model=FunctionModel(asks_to_drop), db=db, tools=[drop_table])

    for round_no in range(ROUNDS):
        paused = agent().run(f"round {round_no}")
        assert paused.status == RunStatus.paused
        agents = [agent(), agent()]  # two kernels' agents on one store
        results = at_once(2, lambda i, run_id=paused.run_id, agents=agents: agents[i].continue_run(
            run_id, approve=True))
        won = [r for r in results if isinstance(r, RunOutput)]
        lost = [r for r in results if not isinstance(r, RunOutput)]
        assert len(won) == 1 and won[0].status == RunStatus.completed, (round_no, results)
        assert len(lost) == 1 and isinstance(lost[0], RunNotPausedError), (round_no, results)
        assert re.fullmatch(NOT_PAUSED, str(lost[0])), lost[0]
        assert len(ran) == round_no + 1, f"round {round_no}: the approved tool ran {len(ran) - round_no} times"
        assert db.get_run(paused.run_id).content == "done: dropped old"


@pytest.mark.parametrize("store", ["tinydb", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_two_processes_continuing_one_paused_run_run_the_approved_tool_once(store, tmp_path, request):
    target = str(tmp_path / "sessions.json") if store == "tinydb" else request.getfixturevalue("postgres_url")
    log = tmp_path / "tool-calls.log"
    log.touch()
    db = open_store(target)

    @tool(requires_confirmation=True)
    def drop_table(name: str) -> str:
        """Drop a table."""
        raise AssertionError("only the worker processes continue the run")

    kernels = [Worker("agent_worker.py", target) for _ in range(2)]
    try:
        for round_no in range(ROUNDS):
            paused = Agent(model=FunctionModel(asks_to_drop), db=db, tools=[drop_table]).run(f"round {round_no}")
            for kernel in kernels:
                kernel.send(cmd="continue", run=paused.run_id, log=str(log))
            replies = [kernel.read() for kernel in kernels]
            assert sorted(replies, key=str) == sorted([{"status": "completed"}, replies[1 - replies.index(
                {"status": "completed"})]], key=str), replies
            loser = next(r for r in replies if "error" in r)
            assert re.fullmatch(NOT_PAUSED, loser["error"]), replies
            assert len(log.read_text().splitlines()) == round_no + 1, f"round {round_no}: the tool ran twice"
            assert db.get_run(paused.run_id).status == RunStatus.completed
    finally:
        for kernel in kernels:
            kernel.close()
        db.close()


def test_continuing_a_completed_run_says_it_is_not_paused(db):
    @tool(requires_confirmation=True)
    def drop_table(name: str) -> str:
        """Drop a table."""
        return f"dropped {name}"

    agent = Agent(model=FunctionModel(asks_to_drop), db=db, tools=[drop_table])
    paused = agent.run("go")
    agent.continue_run(paused.run_id, approve=True)
    with pytest.raises(NbSessionsError, match="is completed, not paused"):
        agent.continue_run(paused.run_id, approve=True)


# -- a delete while a run streams -----------------------------------------------------------------------------
class Gate:
    """A model reply in two parts, the second held until ``release``: the moment to act mid-stream."""

    def __init__(self) -> None:
        self.first_sent, self.released = threading.Event(), threading.Event()

    def reply(self, messages) -> object:
        yield "first part "
        self.first_sent.set()
        assert self.released.wait(60), "the test never released the model"
        yield "second part"

    def release(self) -> None:
        self.released.set()


def test_deleting_the_session_while_its_run_streams_stores_nothing_and_ends_the_stream_cancelled(db, tmp_path):
    gate = Gate()
    agent = Agent(model=FunctionModel(gate.reply), db=db)
    stream = agent.run("write a lot", stream=True, stream_events=True)
    events: list[object] = []
    consumer = threading.Thread(target=lambda: events.extend(stream))
    consumer.start()
    assert gate.first_sent.wait(60)
    assert db.get_run(stream.run.run_id).status == RunStatus.running
    assert Agent(db=db).delete_session(stream.run.session_id) is True  # as another cell or the panel would
    gate.release()
    consumer.join()
    assert isinstance(events[-1], RunCancelledEvent) and events[-1].reason == DELETED
    assert [type(e).__name__ for e in events].count("RunCancelledEvent") == 1
    assert db.get_run(stream.run.run_id) is None and db.get_session(stream.run.session_id) is None
    assert db.list_runs(stream.run.session_id) == []
    if db.path and not db.path.startswith("postgresql"):
        assert b"second part" not in Path(db.path).read_bytes()  # the reply never reached the file


@pytest.mark.parametrize("store", ["tinydb", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_another_kernel_deleting_the_session_mid_stream_leaves_no_run(store, tmp_path, request):
    target = str(tmp_path / "sessions.json") if store == "tinydb" else request.getfixturevalue("postgres_url")
    kernel = Worker("agent_worker.py", target)
    try:
        with open_store(target) as db:
            for round_no in range(5):
                agent = Agent(model=FunctionModel(lambda m: iter(["first part ", "second part"])), db=db)
                stream = agent.run(f"round {round_no}", stream=True)
                assert str(next(stream)) == "first part "  # the run is stored as running, its reply half-way
                assert kernel.call(cmd="delete", session=stream.run.session_id) == {"deleted": True}
                rest = list(stream)
                assert isinstance(rest[-1], RunCancelledEvent) and rest[-1].reason == DELETED
                assert db.get_run(stream.run.run_id) is None and db.list_runs(stream.run.session_id) == []
    finally:
        kernel.close()
    with open_store(target) as db:
        assert db.list_sessions() == []


def test_an_async_run_of_a_session_deleted_mid_stream_is_not_stored(db):
    gate = Gate()
    agent = Agent(model=FunctionModel(gate.reply), db=db)

    async def main() -> list[object]:
        stream = agent.arun("write a lot", stream=True)
        first = await stream.__anext__()
        await asyncio.to_thread(Agent(db=db).delete_session, stream.run.session_id)
        gate.release()
        return [first] + [e async for e in stream], stream.run

    events, run = asyncio.run(main())
    assert isinstance(events[-1], RunCancelledEvent) and run.status == RunStatus.cancelled
    assert db.get_run(run.run_id) is None and db.list_runs(run.session_id) == []


@pytest.mark.parametrize("asynchronous", [False, True])
def test_a_workflow_run_of_a_session_deleted_mid_run_is_not_stored(db, asynchronous):
    def deletes_its_session(step_input, run_context) -> str:
        Agent(db=db).delete_session(run_context.session_id)
        return "done"

    workflow = Workflow(steps=[deletes_its_session, Agent(model=FunctionModel(lambda m: "next"))], db=db)
    run = asyncio.run(workflow.arun("go")) if asynchronous else workflow.run("go")  # no exception: it ended
    assert run.status == RunStatus.cancelled and run.error == DELETED
    assert db.get_run(run.run_id) is None and db.list_runs(run.session_id) == []


# -- a stream nobody iterates ---------------------------------------------------------------------------------
def test_a_stream_nobody_iterates_stores_no_run(db):
    model = FunctionModel(lambda messages: "never asked")
    agent = Agent(model=model, db=db)
    session = agent.create_session("quiet")
    stream = agent.run("dropped", stream=True, session_id=session.session_id)
    run_id = stream.run.run_id
    del stream
    gc.collect()

    async def drop_async() -> None:
        agent.arun("dropped too", stream=True, session_id=session.session_id)  # never iterated

    asyncio.run(drop_async())
    gc.collect()
    assert db.get_run(run_id) is None
    assert db.list_runs(session.session_id) == []


# -- every failure ends the run -------------------------------------------------------------------------------
def failing(messages):
    raise ModelError("503 the model is down", status_code=503)


@pytest.mark.parametrize("asynchronous", [False, True])
def test_a_failing_workflow_agent_ends_the_workflow_run_as_error_with_a_workflow_error(db, asynchronous):
    workflow = Workflow(steps=[lambda step_input: "never"], db=db,
                        agent=WorkflowAgent(model=FunctionModel(failing)))
    with pytest.raises(WorkflowError, match="503 the model is down") as caught:
        if asynchronous:
            asyncio.run(workflow.arun("go"))
        else:
            workflow.run("go")
    run = caught.value.run
    assert run.kind == "workflow" and run.status == RunStatus.error
    stored = db.get_run(run.run_id)
    assert stored.status == RunStatus.error and "503 the model is down" in stored.error


@pytest.mark.parametrize("asynchronous", [False, True])
def test_a_failing_step_ends_the_workflow_run_as_error(db, asynchronous):
    def breaks(step_input):
        raise KeyError("missing")

    workflow = Workflow(steps=[breaks], db=db)
    with pytest.raises(WorkflowError, match="missing") as caught:
        asyncio.run(workflow.arun("go")) if asynchronous else workflow.run("go")
    stored = db.get_run(caught.value.run.run_id)
    assert stored.status == RunStatus.error and stored.steps[0].status == RunStatus.error


@pytest.mark.parametrize("asynchronous", [False, True])
def test_a_failing_team_leader_and_agent_end_their_runs_as_error(db, asynchronous):
    member = Agent(model=FunctionModel(lambda m: "ok"), name="helper")
    for runner in (Team([member], model=FunctionModel(failing), db=db), Agent(model=FunctionModel(failing), db=db)):
        with pytest.raises(ModelError, match="503") as caught:
            asyncio.run(runner.arun("go")) if asynchronous else runner.run("go")
        assert db.get_run(caught.value.run.run_id).status == RunStatus.error


# -- a final write while the store is down --------------------------------------------------------------------
@pytest.mark.postgres
def test_a_final_write_while_postgresql_is_down_is_stored_once_it_is_back(postgres_url, postgres_server):
    from nbsessions.db.postgres import PostgresDb

    gate = Gate()
    with PostgresDb(postgres_url, timeout=1) as db:
        agent = Agent(model=FunctionModel(gate.reply), db=db)
        stream = agent.run("write a lot", stream=True)
        events: list[object] = []
        consumer = threading.Thread(target=lambda: events.extend(stream))
        with pytest.warns(RuntimeWarning, match="ended completed but could not be stored"):
            consumer.start()
            assert gate.first_sent.wait(60)
            postgres_server.stop()
            try:
                gate.release()
                consumer.join()
                assert stream.run.status == RunStatus.completed  # the run ended; the stream said so
                assert run_writes.pending() == 1
            finally:
                postgres_server.start_again()
        assert run_writes.flush(timeout=60), "the kept final write was never stored"
        stored = db.get_run(stream.run.run_id)
        assert stored.status == RunStatus.completed and stored.content == "first part second part"


@pytest.mark.postgres
def test_a_cell_s_run_ending_while_postgresql_is_down_returns_and_is_stored_once_it_is_back(postgres_url,
                                                                                          postgres_server):
    """What follows a stored reply (the cell's earlier run superseded, a summary) waits for a store that answers:
    the run returns completed, not a storage error raised after the reply was kept."""
    from nbsessions.db.postgres import PostgresDb

    def reply_then_lose_the_store(messages):
        postgres_server.stop()
        return "kept for later"

    with PostgresDb(postgres_url, timeout=1) as db:
        agent = Agent(model=FunctionModel(reply_then_lose_the_store), db=db, enable_session_summaries=True)
        with pytest.warns(RuntimeWarning, match="ended completed but could not be stored"):
            try:
                run = agent.run("go", cell_id="cell-1")
            finally:
                postgres_server.start_again()
        assert run.status == RunStatus.completed and run.content == "kept for later"
        assert run_writes.flush(timeout=60), "the kept final write was never stored"
        assert db.get_run(run.run_id).status == RunStatus.completed


@pytest.mark.postgres
def test_a_workflow_s_final_write_while_postgresql_is_down_is_stored_once_it_is_back(postgres_url, postgres_server):
    """As an agent's: the workflow run and the state its steps set are kept, then stored once the store is back."""
    from nbsessions.db.postgres import PostgresDb

    def note(step_input, session_state):
        session_state["noted"] = step_input.input
        return "noted"

    with PostgresDb(postgres_url, timeout=1) as db:
        workflow = Workflow(steps=[note], db=db)
        kinds: list[str] = []
        run_id = None
        with pytest.warns(RuntimeWarning, match="ended completed but could not be stored"):
            try:
                for event in workflow.run("remember this", stream=True, stream_events=True):
                    kinds.append(event.event)
                    run_id = event.run_id if event.event == "WorkflowStarted" else run_id
                    if event.event == "StepCompleted":  # its step is stored; the run's last write comes next
                        postgres_server.stop()
            finally:
                postgres_server.start_again()
        assert kinds[-1] == "WorkflowCompleted" and run_writes.pending() <= 1
        assert run_writes.flush(timeout=60), "the kept final write was never stored"
        stored = db.get_run(run_id)
        assert stored.status == RunStatus.completed and stored.content == "noted"
        assert db.get_session(stored.session_id).session_state["noted"] == "remember this"


# -- the async API never blocks the event loop on storage -----------------------------------------------------
class WhereCalled(InMemoryDb):
    """A real in-memory store that notes the thread of every call made to it."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, int]] = []


def _noting(name: str):
    def method(self, *args, **kwargs):
        self.calls.append((name, threading.get_ident()))
        return getattr(InMemoryDb, name)(self, *args, **kwargs)

    return method


for _name in ("get_session", "list_sessions", "create_session", "upsert_session", "update_session",
              "delete_session", "upsert_run", "upsert_run_if_session", "claim_run", "get_run", "list_runs",
              "session_totals", "get_meta", "set_meta"):
    setattr(WhereCalled, _name, _noting(_name))


def test_the_async_api_makes_no_store_call_on_the_event_loop_thread():
    db = WhereCalled()

    @tool(requires_confirmation=True)
    def drop_table(name: str) -> str:
        """Drop a table."""
        return f"dropped {name}"

    agent = Agent(model=FunctionModel(asks_to_drop), db=db, tools=[drop_table], add_history_to_context=True)

    def reads_history(messages):
        if messages[-1].role == "tool":
            return "read"
        return [ToolCall("h1", "get_chat_history", "{}"), ToolCall("h2", "search_past_sessions", "{}")]

    reader = Agent(model=FunctionModel(reads_history), db=db, read_chat_history=True, search_past_sessions=True)
    helper = Agent(model=FunctionModel(lambda m: "helped"), name="helper")
    team = Team([helper], model=FunctionModel(lambda m, tools=None: "team answer"), db=db)
    workflow = Workflow(steps=[Agent(model=FunctionModel(lambda m: "step one")), lambda step_input: "two"], db=db,
                        agent=WorkflowAgent(model=FunctionModel(lambda m: "from history")))

    async def main() -> int:
        paused = await agent.arun("drop it")
        await agent.acontinue_run(paused.run_id, approve=True)
        more = await asyncio.gather(*(agent.arun(f"drop {i}") for i in range(5)))
        async for _ in agent.acontinue_run(more[0].run_id, approve=True, stream=True):
            pass
        await team.arun("together")
        assert (await reader.arun("what did we say?")).content == "read"
        await workflow.arun("go")
        await Workflow(steps=[lambda step_input: "plain"], db=db).arun("go")
        await agent.aget_chat_history()
        await agent.aget_session_state()
        await agent.aupdate_session_state({"k": 1})
        return threading.get_ident()

    loop_thread = asyncio.run(main())
    called = {name for name, _ in db.calls}
    assert {"create_session", "upsert_run_if_session", "claim_run", "list_runs", "update_session"} <= called
    assert [name for name, thread in db.calls if thread == loop_thread] == []


@pytest.mark.parametrize("asynchronous", [False, True])
def test_a_run_whose_tool_deletes_its_session_returns_cancelled_and_stores_nothing(db, asynchronous):
    def deletes_it(run_context) -> str:
        """Delete this session."""
        Agent(db=db).delete_session(run_context.session_id)
        return "gone"

    def model(messages):
        return "after" if messages[-1].role == "tool" else ToolCall("d1", "deletes_it", "{}")

    agent = Agent(model=FunctionModel(model), db=db, tools=[deletes_it])
    run = asyncio.run(agent.arun("go")) if asynchronous else agent.run("go")
    assert run.status == RunStatus.cancelled and run.error == DELETED
    assert db.get_run(run.run_id) is None and db.get_session(run.session_id) is None
