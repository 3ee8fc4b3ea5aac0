"""The storage contract: every store (memory, TinyDB and PostgreSQL) must answer these the same way."""

from __future__ import annotations

import threading

import pytest
from threads import at_once

from nbsessions.db.base import apply_session_update, merge_patch
from nbsessions.records.errors import SessionAccessError, SessionNotFoundError
from nbsessions.records.schema import Message, Metrics, RunOutput, RunStatus, Session, StepRecord


def make_session(db, **kw) -> Session:
    session = Session(**kw)
    db.upsert_session(session)
    return session


def make_run(db, session_id: str, content: str = "", status: RunStatus = RunStatus.completed, **kw) -> RunOutput:
    run = RunOutput(session_id=session_id, content=content, status=status, **kw)
    db.upsert_run(run)
    return run


# -- sessions -------------------------------------------------------------------------------------
def test_get_session_returns_what_was_upserted(db):
    session = make_session(db, session_name="notes", user_id="ann", session_state={"topic": "ml"},
                           metadata={"k": [1, 2]}, forked_from={"session_id": "a", "run_id": "b"})
    assert db.get_session(session.session_id) == session


def test_get_unknown_session_is_none(db):
    assert db.get_session("nope") is None


def test_upsert_session_replaces_existing(db):
    session = make_session(db, session_name="old")
    session.session_name = "new"
    db.upsert_session(session)
    assert db.get_session(session.session_id).session_name == "new"
    assert len(db.list_sessions()) == 1


def test_list_sessions_sorts_by_updated_at_newest_first(db):
    a = make_session(db, session_name="a", updated_at=10.0, created_at=3.0)
    b = make_session(db, session_name="b", updated_at=30.0, created_at=1.0)
    c = make_session(db, session_name="c", updated_at=20.0, created_at=2.0)
    assert [s.session_id for s in db.list_sessions()] == [b.session_id, c.session_id, a.session_id]
    assert [s.session_id for s in db.list_sessions(descending=False)] == [a.session_id, c.session_id, b.session_id]
    assert [s.session_name for s in db.list_sessions(sort="created_at", descending=False)] == ["b", "c", "a"]
    assert [s.session_name for s in db.list_sessions(sort="session_name", descending=False)] == ["a", "b", "c"]


def test_list_sessions_limit_and_offset_page_through(db):
    for i in range(7):
        make_session(db, session_name=f"s{i}", updated_at=float(i))
    pages = [[s.session_name for s in db.list_sessions(limit=3, offset=o)] for o in (0, 3, 6)]
    assert pages == [["s6", "s5", "s4"], ["s3", "s2", "s1"], ["s0"]]
    assert db.list_sessions(limit=0) == []
    assert [s.session_name for s in db.list_sessions(offset=5)] == ["s1", "s0"]


def test_list_sessions_filters_by_user(db):
    make_session(db, session_name="a1", user_id="ann")
    make_session(db, session_name="b1", user_id="bob")
    make_session(db, session_name="a2", user_id="ann")
    assert sorted(s.session_name for s in db.list_sessions(user_id="ann")) == ["a1", "a2"]
    assert [s.session_name for s in db.list_sessions(user_id="bob")] == ["b1"]
    assert db.list_sessions(user_id="carl") == []
    assert len(db.list_sessions()) == 3


def test_unknown_sort_key_is_a_value_error(db):
    with pytest.raises(ValueError, match="unknown sort key"):
        db.list_sessions(sort="colour")


def test_update_session_merges_state_and_sets_fields(db):
    session = make_session(db, session_state={"a": 1, "b": 2}, updated_at=1.0)
    updated = db.update_session(session.session_id, state_patch={"b": 3, "c": 4}, session_name="renamed")
    assert updated.session_state == {"a": 1, "b": 3, "c": 4}
    assert updated.session_name == "renamed"
    assert updated.updated_at > 1.0
    stored = db.get_session(session.session_id)
    assert stored == updated


def test_update_session_of_unknown_session_raises(db):
    with pytest.raises(SessionNotFoundError):
        db.update_session("missing", state_patch={"a": 1})
    assert db.get_session("missing") is None


def test_create_session_stores_a_new_session_and_returns_it(db):
    session = Session(session_id="s1", user_id="ann", session_state={"a": 1})
    created = db.create_session(session)
    assert created == session and db.get_session("s1") == session


def test_create_session_returns_the_stored_one_unchanged_for_its_owner_or_no_user(db):
    first = db.create_session(Session(session_id="s1", user_id="ann", session_state={"a": 1}, updated_at=5.0))
    again = db.create_session(Session(session_id="s1", user_id="ann", session_state={"b": 2}))
    unscoped = db.create_session(Session(session_id="s1", user_id=None, session_state={"c": 3}))
    assert again == first and unscoped == first
    assert db.get_session("s1") == first  # nothing written: same state, same updated_at


def test_create_session_refuses_another_users_session(db):
    db.create_session(Session(session_id="s1", user_id="ann", session_state={"a": 1}))
    with pytest.raises(SessionAccessError, match="another user"):
        db.create_session(Session(session_id="s1", user_id="bob", session_state={"b": 2}))
    assert db.get_session("s1").session_state == {"a": 1}
    db.create_session(Session(session_id="s2"))  # an unowned session belongs to nobody: a user is refused
    with pytest.raises(SessionAccessError):
        db.create_session(Session(session_id="s2", user_id="bob"))


def test_update_session_deletes_state_keys_and_ignores_missing_ones(db):
    session = make_session(db, session_state={"a": 1, "b": 2, "c": 3})
    updated = db.update_session(session.session_id, state_patch={"d": 4}, state_delete=["a", "zz"])
    assert updated.session_state == {"b": 2, "c": 3, "d": 4}
    assert db.get_session(session.session_id).session_state == {"b": 2, "c": 3, "d": 4}


def test_update_session_metadata_patch_is_a_json_merge_patch(db):
    session = make_session(db, metadata={"cells": {"c1": "r1", "c2": "r2"}, "keep": [1], "drop": "x"})
    db.update_session(session.session_id, metadata_patch={"cells": {"c2": "r3", "c3": "r4"}, "drop": None})
    db.update_session(session.session_id, metadata_patch={"cells": {"c1": None}})
    assert db.get_session(session.session_id).metadata == {"cells": {"c2": "r3", "c3": "r4"}, "keep": [1]}


def test_update_session_rejects_unknown_fields_and_writes_nothing(db):
    session = make_session(db, session_state={"a": 1}, updated_at=1.0)
    with pytest.raises(TypeError, match="colour"):
        db.update_session(session.session_id, colour="red")
    with pytest.raises(TypeError, match="collection"):
        db.update_session(session.session_id, state_delete="a")
    assert db.get_session(session.session_id) == session


def _open_at_once(db, session_id: str, users: tuple[str, ...]) -> dict[str, object]:
    """Each user creates ``session_id`` from its own thread, released together; what each got back."""
    barrier, outcome = threading.Barrier(len(users)), {}

    def open_as(user: str) -> None:
        barrier.wait()
        try:
            outcome[user] = db.create_session(Session(session_id=session_id, user_id=user,
                                                      session_state={user: 1}))
        except SessionAccessError:
            outcome[user] = "refused"

    threads = [threading.Thread(target=open_as, args=(u,)) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return outcome


def test_concurrent_creates_of_one_id_let_exactly_one_owner_win(db):
    """Many rounds of two users opening the same new id at once: one owner, the other refused, state intact."""
    for round_no in range(50):
        outcome = _open_at_once(db, f"race-{round_no}", ("ann", "bob"))
        stored = db.get_session(f"race-{round_no}")
        winner = stored.user_id
        loser = "bob" if winner == "ann" else "ann"
        assert outcome[loser] == "refused" and outcome[winner] == stored
        assert stored.session_state == {winner: 1}


def test_concurrent_patches_of_different_keys_all_survive(db):
    session = make_session(db, session_state={"base": 0}, metadata={"cells": {}})
    barrier = threading.Barrier(4)

    def writer(w: int) -> None:
        barrier.wait()
        for i in range(25):
            db.update_session(session.session_id, state_patch={f"w{w}-{i}": i},
                              metadata_patch={"cells": {f"cell{w}": f"run{i}"}})
            if i % 5 == 4:
                db.update_session(session.session_id, state_delete=[f"w{w}-{i - 1}"])

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stored = db.get_session(session.session_id)
    expected = {f"w{w}-{i}": i for w in range(4) for i in range(25) if i % 5 != 3}
    assert stored.session_state == {"base": 0, **expected}
    assert stored.metadata == {"cells": {f"cell{w}": "run24" for w in range(4)}}


def test_new_and_renamed_sessions_get_a_name_unique_among_their_users_sessions(db):
    first = db.create_session(Session(session_name="notes", user_id="ann"))
    second = db.create_session(Session(session_name="notes", user_id="ann"))
    theirs = db.create_session(Session(session_name="notes", user_id="bob"))
    assert (first.session_name, second.session_name, theirs.session_name) == ("notes", "notes (2)", "notes")
    assert db.get_session(second.session_id).session_name == "notes (2)"
    other = db.create_session(Session(session_name="draft", user_id="ann"))
    assert db.update_session(other.session_id, session_name="notes").session_name == "notes (3)"
    assert db.update_session(second.session_id, session_name="notes (2)").session_name == "notes (2)"  # its own
    assert db.update_session(first.session_id, state_patch={"a": 1}).session_name == "notes"  # not renamed
    assert db.create_session(Session(session_id=first.session_id, session_name="x", user_id="ann")) == \
        db.get_session(first.session_id)  # an existing session keeps its name
    upserted = make_session(db, session_name="notes", user_id="ann")  # stored exactly as given (a copy)
    assert db.get_session(upserted.session_id).session_name == "notes"


def test_threads_naming_sessions_alike_at_once_get_distinct_names(db):
    """Choosing the name and storing it are one step of the store, whatever other threads (connections) do."""
    barrier, names = threading.Barrier(6), {}

    def create_then_rename(i: int) -> None:
        barrier.wait()
        for round_no in range(10):
            session = db.create_session(Session(session_name=f"r{round_no}", user_id="ann"))
            renamed = db.update_session(session.session_id, session_name=f"r{round_no}")
            names[i, round_no] = session.session_name, renamed.session_name

    threads = [threading.Thread(target=create_then_rename, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for round_no in range(10):
        expected = [f"r{round_no}", *(f"r{round_no} ({n})" for n in range(2, 7))]
        assert sorted(names[i, round_no][0] for i in range(6)) == expected
    stored = [s.session_name for s in db.list_sessions(user_id="ann")]
    assert len(stored) == len(set(stored)) == 60


def test_apply_session_update_returns_a_new_dict_and_leaves_the_input_alone():
    data = Session(session_id="s", session_state={"a": {"x": 1}}, metadata={"m": {"k": 1}}, updated_at=1.0).to_dict()
    before = Session.from_dict(data).to_dict()
    out = apply_session_update(data, taken=lambda user: (), state_patch={"b": 2}, state_delete=["a"],
                               metadata_patch={"m": {"j": 2}}, session_name="n")
    assert data == before
    assert out["session_state"] == {"b": 2} and out["metadata"] == {"m": {"k": 1, "j": 2}}
    assert out["session_name"] == "n" and out["updated_at"] > 1.0


def test_merge_patch_follows_rfc_7386_examples():
    assert merge_patch({"a": "b"}, {"a": "c"}) == {"a": "c"}
    assert merge_patch({"a": "b"}, {"b": "c"}) == {"a": "b", "b": "c"}
    assert merge_patch({"a": "b"}, {"a": None}) == {}
    assert merge_patch({"a": [{"b": "c"}]}, {"a": [1]}) == {"a": [1]}
    assert merge_patch({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}) == {"a": {"b": "d"}}
    assert merge_patch(["a", "b"], ["c", "d"]) == ["c", "d"]
    assert merge_patch({"a": "foo"}, "bar") == "bar"
    assert merge_patch({}, {"a": {"bb": {"ccc": None}}}) == {"a": {"bb": {}}}


def test_delete_session_removes_it_and_its_runs(db):
    keep = make_session(db)
    gone = make_session(db)
    kept_run = make_run(db, keep.session_id)
    gone_runs = [make_run(db, gone.session_id) for _ in range(3)]
    assert db.delete_session(gone.session_id) is True
    assert db.get_session(gone.session_id) is None
    assert db.list_runs(gone.session_id) == []
    assert all(db.get_run(r.run_id) is None for r in gone_runs)
    assert db.get_run(kept_run.run_id) == kept_run
    assert db.delete_session(gone.session_id) is False


# -- runs -----------------------------------------------------------------------------------------
def test_upsert_run_inserts_then_replaces_in_place(db):
    session = make_session(db)
    runs = [make_run(db, session.session_id, content=f"r{i}", status=RunStatus.running) for i in range(3)]
    runs[1].status = RunStatus.completed
    runs[1].content = "done"
    runs[1].messages = [Message(role="user", content="hi"), Message(role="assistant", content="done")]
    db.upsert_run(runs[1])
    listed = db.list_runs(session.session_id)
    assert [r.content for r in listed] == ["r0", "done", "r2"]
    assert listed[1] == runs[1]
    assert db.get_run(runs[1].run_id) == runs[1]


def test_get_unknown_run_is_none(db):
    assert db.get_run("nope") is None


def test_list_runs_last_n_returns_newest_oldest_first(db):
    session = make_session(db)
    other = make_session(db)
    for i in range(10):
        make_run(db, session.session_id, content=str(i))
        make_run(db, other.session_id, content=f"other{i}")
    assert [r.content for r in db.list_runs(session.session_id, last=3)] == ["7", "8", "9"]
    assert [r.content for r in db.list_runs(session.session_id, last=20)] == [str(i) for i in range(10)]
    assert db.list_runs(session.session_id, last=0) == []
    assert len(db.list_runs(session.session_id)) == 10
    assert db.list_runs("no-such-session") == []


def test_session_totals_counts_all_runs_but_sums_only_completed(db):
    session = make_session(db)
    make_run(db, session.session_id, metrics=Metrics(input_tokens=10, output_tokens=5, total_tokens=15,
                                                      duration=1.0, cost=0.5, time_to_first_token=0.2))
    make_run(db, session.session_id, metrics=Metrics(input_tokens=1, output_tokens=2, total_tokens=3,
                                                      duration=2.0, time_to_first_token=0.4))
    make_run(db, session.session_id, status=RunStatus.error, metrics=Metrics(input_tokens=1000, cost=9.0))
    make_run(db, session.session_id, status=RunStatus.cancelled, metrics=Metrics(output_tokens=1000))
    count, metrics = db.session_totals(session.session_id)
    assert count == 4
    assert (metrics.input_tokens, metrics.output_tokens, metrics.total_tokens) == (11, 7, 18)
    assert metrics.duration == pytest.approx(3.0)
    assert metrics.cost == pytest.approx(0.5)
    assert metrics.time_to_first_token == pytest.approx(0.3)


def test_session_totals_follow_a_run_rewritten_and_leave_out_nested_runs(db):
    session = make_session(db)
    paused = make_run(db, session.session_id, status=RunStatus.paused, metrics=Metrics(input_tokens=7))
    make_run(db, session.session_id, parent_run_id=paused.run_id, metrics=Metrics(input_tokens=100))
    assert db.session_totals(session.session_id) == (1, Metrics())  # the paused run counts, sums nothing yet
    paused.status, paused.metrics = RunStatus.completed, Metrics(input_tokens=9, duration=1.5)
    db.upsert_run(paused)  # continued: the same run written again
    paused.metrics.input_tokens = 1000  # the caller's object changing later changes nothing stored
    count, metrics = db.session_totals(session.session_id)
    assert (count, metrics.input_tokens, metrics.duration) == (1, 9, 1.5)
    db.delete_session(session.session_id)
    assert db.session_totals(session.session_id) == (0, Metrics())


def test_session_totals_of_empty_session(db):
    session = make_session(db)
    count, metrics = db.session_totals(session.session_id)
    assert count == 0 and metrics == Metrics()


# -- meta -----------------------------------------------------------------------------------------
def test_meta_get_default_then_set_and_overwrite(db):
    assert db.get_meta("active") is None
    assert db.get_meta("active", "fallback") == "fallback"
    db.set_meta("active", {"nb.ipynb": "s1"})
    db.set_meta("other", 3)
    db.set_meta("active", {"nb.ipynb": "s2"})
    assert db.get_meta("active") == {"nb.ipynb": "s2"}
    assert db.get_meta("other") == 3


# -- copies ---------------------------------------------------------------------------------------
def test_returned_sessions_are_copies(db):
    session = make_session(db, session_state={"nested": {"a": 1}})
    session.session_state["nested"]["a"] = "changed by caller after upsert"
    got = db.get_session(session.session_id)
    assert got.session_state == {"nested": {"a": 1}}
    got.session_state["nested"]["a"] = 2
    got.session_name = "x"
    db.list_sessions()[0].session_state["nested"]["b"] = 3
    updated = db.update_session(session.session_id, state_patch={"c": 1})
    updated.session_state["nested"]["a"] = 4
    assert db.get_session(session.session_id).session_state == {"nested": {"a": 1}, "c": 1}
    assert db.get_session(session.session_id).session_name is None


def test_returned_runs_are_copies(db):
    session = make_session(db)
    run = make_run(db, session.session_id, content="x", messages=[Message(role="user", content="hi",
                                                                           tool_calls=[{"id": "1"}])])
    run.messages[0].tool_calls[0]["id"] = "mutated after upsert"
    got = db.get_run(run.run_id)
    got.messages[0].tool_calls[0]["id"] = "2"
    got.tags.append("t")
    db.list_runs(session.session_id)[0].messages.append(Message(role="assistant"))
    db.list_runs(session.session_id, last=1)[0].content = "y"
    fresh = db.get_run(run.run_id)
    assert fresh.messages == [Message(role="user", content="hi", tool_calls=[{"id": "1"}])]
    assert fresh.tags == [] and fresh.content == "x"


def test_meta_values_are_copies(db):
    value = {"list": [1]}
    db.set_meta("k", value)
    value["list"].append(2)
    db.get_meta("k")["list"].append(3)
    assert db.get_meta("k") == {"list": [1]}


def test_storing_a_run_bumps_its_session_updated_at(db):
    session = Session(updated_at=1.0)
    db.upsert_session(session)
    db.upsert_run(RunOutput(session_id=session.session_id), durable=False)
    assert db.get_session(session.session_id).updated_at > 1.0
    db.upsert_run(RunOutput(session_id="no-such-session"))  # a run alone creates no session
    assert db.get_session("no-such-session") is None


def test_empty_names_sort_without_error(db):
    for name in ("b", "", None, "a"):
        db.upsert_session(Session(session_name=name))
    names = [s.session_name for s in db.list_sessions(sort="session_name", descending=False)]
    assert names[:3] == ["", "a", "b"] and names[3] is None


def test_records_come_back_exactly_as_written_key_order_and_odd_text_included(db):
    odd = "nul \x00, emoji 🙂, quote \" and backslash \\"
    session = make_session(db, session_state={"zeta": 1, "alpha": {"y": 2, "b": 3}, "text": odd})
    run = make_run(db, session.session_id, content=odd, steps=[StepRecord(name="z", output=odd)])
    state = db.get_session(session.session_id).session_state
    assert list(state) == ["zeta", "alpha", "text"] and list(state["alpha"]) == ["y", "b"]
    assert state["text"] == odd
    stored = db.get_run(run.run_id)
    assert stored.content == odd and stored.steps == [StepRecord(name="z", output=odd)]


# -- a run's status changes only by a conditional write -------------------------------------------
def test_claim_run_moves_a_paused_run_to_running_once(db):
    session = make_session(db)
    run = make_run(db, session.session_id, content="waiting", status=RunStatus.paused)
    run.status, run.content = RunStatus.running, "claimed"
    assert db.claim_run(run) is True
    assert db.get_run(run.run_id).content == "claimed"
    run.content = "again"
    assert db.claim_run(run) is False  # running now: a second continue finds it taken
    assert db.get_run(run.run_id).content == "claimed"


def test_claim_run_refuses_runs_that_are_not_paused_or_not_stored(db):
    session = make_session(db)
    for status in (RunStatus.completed, RunStatus.running, RunStatus.error, RunStatus.cancelled):
        run = make_run(db, session.session_id, content="as stored", status=status)
        claim = RunOutput.from_dict({**run.to_dict(), "status": "running", "content": "claimed"})
        assert db.claim_run(claim) is False
        assert db.get_run(run.run_id).content == "as stored"
    assert db.claim_run(RunOutput(session_id=session.session_id, status=RunStatus.running)) is False


def test_concurrent_claims_of_one_paused_run_let_exactly_one_win(db):
    session = make_session(db)
    for round_no in range(20):
        paused = make_run(db, session.session_id, status=RunStatus.paused)

        def claim(i: int, paused=paused) -> bool:
            mine = RunOutput.from_dict({**paused.to_dict(), "status": "running", "content": f"claimer {i}"})
            return db.claim_run(mine)

        results = at_once(4, claim)
        assert sorted(results, key=str) == [False, False, False, True], (round_no, results)
        assert db.get_run(paused.run_id).content == f"claimer {results.index(True)}"


def test_upsert_run_if_session_stores_only_while_the_session_exists(db):
    session = make_session(db, updated_at=1.0)
    run = RunOutput(session_id=session.session_id, content="kept", status=RunStatus.running)
    assert db.upsert_run_if_session(run, durable=False) is True
    run.status = RunStatus.completed
    assert db.upsert_run_if_session(run) is True
    assert db.get_run(run.run_id) == run
    assert db.get_session(session.session_id).updated_at > 1.0
    db.delete_session(session.session_id)
    run.content = "orphan"
    assert db.upsert_run_if_session(run) is False
    assert db.get_run(run.run_id) is None
    assert db.get_session(session.session_id) is None
    stray = RunOutput(session_id="never-there", status=RunStatus.completed)
    assert db.upsert_run_if_session(stray) is False and db.get_run(stray.run_id) is None


def test_a_delete_racing_run_writes_leaves_no_run_behind(db):
    """Writers store runs while another thread deletes the session: afterwards nothing of it is stored."""
    for round_no in range(20):
        session = make_session(db)
        runs = [RunOutput(session_id=session.session_id, content=f"r{i}", status=RunStatus.completed)
                for i in range(3)]

        def act(i: int, session=session, runs=runs) -> object:
            if i == len(runs):
                return db.delete_session(session.session_id)
            return db.upsert_run_if_session(runs[i])

        results = at_once(len(runs) + 1, act)
        assert results[-1] is True, (round_no, results)
        assert db.list_runs(session.session_id) == []
        assert [db.get_run(r.run_id) for r in runs] == [None] * len(runs), (round_no, results)
