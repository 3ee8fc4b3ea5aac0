from nbsessions.context import build_messages, fill_from_state, history_runs
from nbsessions.db import InMemoryDb
from nbsessions.schema import Message, RunOutput, RunStatus


def test_state_fills_known_keys_and_leaves_the_rest_as_written():
    text = 'Help with {topic}. {missing} {{literal}} {"json": 1} {x!r}'
    assert fill_from_state(text, {"topic": "ml", "x": 1}) == 'Help with ml. {missing} {literal} {"json": 1} {x!r}'


def test_unbalanced_braces_are_not_a_template():
    assert fill_from_state("a { b", {"b": 1}) == "a { b"


def _run(db, sid, status=RunStatus.completed, **kw):
    run = RunOutput(session_id=sid, status=status, input="q", content="a",
                    messages=[Message("user", "q"), Message("assistant", "a")], **kw)
    db.upsert_run(run)
    return run


def test_history_takes_the_newest_usable_runs_oldest_first():
    db = InMemoryDb()
    runs = [_run(db, "s") for _ in range(5)]
    _run(db, "s", RunStatus.error)
    _run(db, "s", RunStatus.cancelled)
    _run(db, "s", RunStatus.paused)
    _run(db, "s", superseded_by="later")
    picked = history_runs(db, "s", 3)
    assert [r.run_id for r in picked] == [r.run_id for r in runs[-3:]]


def test_history_widens_its_window_past_many_failed_runs():
    db = InMemoryDb()
    good = _run(db, "s")
    for _ in range(40):
        _run(db, "s", RunStatus.error)
    assert [r.run_id for r in history_runs(db, "s", 2)] == [good.run_id]


def test_history_leaves_out_the_cell_being_rerun():
    db = InMemoryDb()
    keep = _run(db, "s", cell_id="a")
    _run(db, "s", cell_id="b")
    assert [r.run_id for r in history_runs(db, "s", 3, exclude_cell="b")] == [keep.run_id]


def test_history_messages_are_flagged_and_system_copies_are_not_repeated():
    run = RunOutput(session_id="s", status=RunStatus.completed,
                    messages=[Message("system", "sys"), Message("user", "q", from_history=True),
                              Message("user", "q2"), Message("assistant", "a2")])
    messages = build_messages("new system", [run], "now")
    assert [(m.role, m.content, m.from_history) for m in messages] == [
        ("system", "new system", False), ("user", "q2", True), ("assistant", "a2", True), ("user", "now", False)]
