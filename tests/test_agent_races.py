"""Agents racing on one session, from real threads and real processes: nothing written by one is lost to another."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from worker_protocol import Worker

from nbsessions import Agent, FunctionModel, Message, TinyDb
from nbsessions.db import open_store
from nbsessions.llm.base import ToolCall
from nbsessions.records.errors import SessionAccessError
from nbsessions.runs.core.tools import RunContext

pytestmark = pytest.mark.usefixtures("frequent_thread_switches")  # read-then-write windows get entered often


def together(n: int, fn: Callable[[int], object]) -> list[object]:
    """Run ``fn(0..n-1)`` on n threads released by one barrier; results (or raised exceptions) by index."""
    barrier, results = threading.Barrier(n), [None] * n

    def go(i: int) -> None:
        barrier.wait()
        try:
            results[i] = fn(i)
        except Exception as exc:  # collected and asserted on by the test
            results[i] = exc

    threads = [threading.Thread(target=go, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def live_runs_per_cell(db, session_id: str) -> dict[str, int]:
    live: dict[str, int] = {}
    for run in db.list_runs(session_id):
        if run.cell_id and run.superseded_by is None:
            live[run.cell_id] = live.get(run.cell_id, 0) + 1
    return live


# -- threads ------------------------------------------------------------------------------------------
def open_with_state(agents: list[Agent], session_id: str) -> list[object]:
    """Each agent runs its first prompt in ``session_id`` at once, each bringing 30 state keys of its own."""
    return together(len(agents), lambda i: agents[i].run(
        "hi", session_id=session_id, session_state={f"t{i}-{k}": k for k in range(30)}))


def test_eight_threads_opening_one_new_session_keep_every_first_run_state_key(db):
    for round_no in range(40):
        results = open_with_state([Agent(db=db) for _ in range(8)], f"new-{round_no}")
        assert not [r for r in results if isinstance(r, Exception)]
        state = db.get_session(f"new-{round_no}").session_state
        assert state == {f"t{i}-{k}": k for i in range(8) for k in range(30)}, f"round {round_no}"


def test_two_users_opening_one_new_id_at_once_leave_exactly_one_owner(db):
    users = ["alice", "bob"]
    wins = dict.fromkeys(users, 0)
    for round_no in range(100):
        sid = f"contested-{round_no}"
        agents = [Agent(db=db, user_id=user) for user in users]
        outcome = open_with_state(agents, sid)
        stored = db.get_session(sid)
        winner = users.index(stored.user_id)
        wins[stored.user_id] += 1
        assert isinstance(outcome[1 - winner], SessionAccessError), f"round {round_no}: {outcome}"
        assert not isinstance(outcome[winner], Exception)
        assert stored.session_state == {f"t{winner}-{k}": k for k in range(30)}
        assert [r.user_id for r in db.list_runs(sid)] == [stored.user_id]
    assert sum(wins.values()) == 100


def test_four_threads_rerunning_their_own_cells_keep_one_live_run_per_cell(db):
    agent = Agent(db=db)
    sid = agent.create_session("cells").session_id

    def rerun(i: int) -> None:
        for _ in range(10):
            for c in range(3):
                agent.run(f"cell {i}.{c}", session_id=sid, cell_id=f"cell-{i}-{c}")

    assert together(4, rerun) == [None] * 4
    assert live_runs_per_cell(db, sid) == {f"cell-{i}-{c}": 1 for i in range(4) for c in range(3)}
    cells = db.get_session(sid).metadata["cells"]
    assert len(cells) == 12 and all(db.get_run(r).superseded_by is None for r in cells.values())


def test_summaries_in_the_background_and_cell_reruns_lose_neither_write(db):
    """The summary thread and the cells both write metadata: neither may undo the other's newer entry.

    A lost ``summary_through`` makes the next refresh summarise the same runs again (duplicate lines);
    a lost ``cells`` entry leaves two live runs for one cell.
    """
    agent = Agent(db=db, enable_session_summaries=True, session_summary_every=1)
    sid = agent.create_session("summarised").session_id
    for notebook_pass in range(3):  # the whole notebook, run three times
        for c in range(50):
            agent.run(f"pass {notebook_pass} cell {c}", session_id=sid, cell_id=f"cell-{c}")
    agent.summarizer.wait()
    assert live_runs_per_cell(db, sid) == {f"cell-{c}": 1 for c in range(50)}
    lines = agent.get_session_summary(sid).summary.splitlines()
    assert sorted(set(lines)) == sorted(lines), "a run was summarised twice"


def test_keys_tools_delete_from_several_threads_stay_deleted(db):
    def swap(old: str, new: str, run_context: RunContext) -> str:
        """Replace one key by another."""
        run_context.session_state[new] = run_context.session_state.pop(old)
        return "ok"

    def calls_swap(messages: list[Message], tools: list[dict]):
        if messages[-1].role == "tool":
            return "done"
        i, round_no = messages[-1].content.split()
        return ToolCall("c", "swap", json.dumps({"old": f"k{i}-{round_no}", "new": f"k{i}-{int(round_no) + 1}"}))

    agent = Agent(model=FunctionModel(calls_swap), db=db, tools=[swap])
    sid = agent.create_session("swaps", session_state={f"k{i}-0": i for i in range(4)}).session_id

    def swapper(i: int) -> None:
        for round_no in range(10):
            agent.run(f"{i} {round_no}", session_id=sid)

    assert together(4, swapper) == [None] * 4
    assert db.get_session(sid).session_state == {f"k{i}-10": i for i in range(4)}


# -- processes ----------------------------------------------------------------------------------------
def kernels(path: Path | str, n: int = 4) -> list[Worker]:
    """``n`` agent_worker.py processes with the store open (all of them before any writes)."""
    workers = [Worker("agent_worker.py", path) for _ in range(n)]
    assert [w.ready for w in workers] == [{"ready": True}] * n
    return workers


def test_four_processes_rerunning_their_own_cells_keep_one_live_run_per_cell(tmp_path):
    path = tmp_path / "sessions.json"
    with TinyDb(path) as db:
        sid = Agent(db=db).create_session("kernels").session_id
    workers = kernels(path)
    for k, kernel in enumerate(workers):
        kernel.send(cmd="cells", session=sid, cells=[f"k{k}-c{c}" for c in range(3)], reruns=8)
    assert [kernel.read() for kernel in workers] == [{"done": True}] * 4
    for kernel in workers:
        kernel.close()
    with TinyDb(path) as db:
        assert live_runs_per_cell(db, sid) == {f"k{k}-c{c}": 1 for k in range(4) for c in range(3)}
        assert len(db.list_runs(sid)) == 4 * 3 * 8


def test_four_processes_opening_one_new_id_leave_exactly_one_owner(tmp_path):
    path = tmp_path / "sessions.json"
    users = ["alice", "bob", "carol", "dave"]
    workers = kernels(path)
    for round_no in range(30):
        sid = f"contested-{round_no}"
        for user, kernel in zip(users, workers, strict=True):
            kernel.send(cmd="open", session=sid, user=user, keys=20)
        refused = {user: kernel.read()["refused"] for user, kernel in zip(users, workers, strict=True)}
        with TinyDb(path) as db:
            stored = db.get_session(sid)
            runs = db.list_runs(sid)
        assert [u for u in users if not refused[u]] == [stored.user_id], refused
        assert stored.session_state == {f"{stored.user_id}-{k}": k for k in range(20)}
        assert [r.user_id for r in runs] == [stored.user_id]
    for kernel in workers:
        kernel.close()


@pytest.mark.parametrize("store", ["tinydb", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_four_processes_naming_sessions_alike_at_once_get_four_names(store, tmp_path, request):
    """Choosing a free name and storing it are one step of the store: no two of one user's sessions share one."""
    target = tmp_path / "sessions.json" if store == "tinydb" else request.getfixturevalue("postgres_url")
    workers = kernels(target)
    lost = []
    for round_no in range(40):
        name = f"cleanup {round_no}"
        for kernel in workers:
            kernel.send(cmd="name", name=name, user="ann")
        replies = [kernel.read() for kernel in workers]
        expected = [name, *(f"{name} ({n})" for n in range(2, 5))]
        for step in ("created", "renamed"):
            if sorted(r[step] for r in replies) != expected:
                lost.append((round_no, step, sorted(r[step] for r in replies)))
    for kernel in workers:
        kernel.close()
    with open_store(target) as db:
        names = [s.session_name for s in db.list_sessions(user_id="ann")]
    assert not lost, f"{len(lost)} of 80 namings gave twins, first: {lost[0]}"
    assert len(names) == len(set(names)) == 160
