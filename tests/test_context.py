from nbsessions.db import InMemoryDb
from nbsessions.records.schema import Message, RunOutput, RunStatus
from nbsessions.runs.core.context import (
    HistoryPolicy,
    build_context,
    build_messages,
    fill_from_state,
    history_messages,
    history_runs,
)


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
    messages = build_messages("new system", history_messages([run]), "now")
    assert [(m.role, m.content, m.from_history) for m in messages] == [
        ("system", "new system", False), ("user", "q2", True), ("assistant", "a2", True), ("user", "now", False)]


def _exchanges(db, n, words=10):
    return [_run_with(db, f"q{i} " + "w " * words, f"a{i} " + "w " * words) for i in range(n)]


def _run_with(db, question, answer):
    run = RunOutput(session_id="s", status=RunStatus.completed, input=question, content=answer,
                    messages=[Message("user", question), Message("assistant", answer)])
    db.upsert_run(run)
    return run


def _contents(messages):
    return [m.content.split()[0] for m in messages]


def test_message_cap_keeps_exactly_the_newest_messages_as_agno_does():
    runs = _exchanges(InMemoryDb(), 3)
    assert _contents(history_messages(runs, max_messages=4)) == ["q1", "a1", "q2", "a2"]
    assert _contents(history_messages(runs, max_messages=3)) == ["a1", "q2", "a2"]
    assert history_messages(runs, max_messages=0) == []


def test_token_budget_keeps_whole_newest_exchanges_that_fit():
    runs = _exchanges(InMemoryDb(), 3)
    words = len  # count characters: each exchange is two messages of the same length
    per_exchange = sum(len(m.content) for m in runs[0].messages)
    kept = history_messages(runs, max_tokens=2 * per_exchange + 1, count_tokens=words)
    assert _contents(kept) == ["q1", "a1", "q2", "a2"]
    assert history_messages(runs, max_tokens=per_exchange - 1, count_tokens=words) == []


def test_context_budget_counts_system_and_prompt_first():
    db = InMemoryDb()
    _exchanges(db, 3)
    chars = len
    exchange = len("q0 " + "w " * 10) + len("a0 " + "w " * 10)
    system, prompt = "s" * 50, "p" * 30
    policy = HistoryPolicy(runs=10, max_tokens=50 + 30 + exchange, count_tokens=chars)
    messages = build_context(db, "s", policy, system, prompt)
    assert [m.role for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[1].content.startswith("q2") and messages[-1].content == prompt
    tight = build_context(db, "s", HistoryPolicy(runs=10, max_tokens=10, count_tokens=chars), system, prompt)
    assert [m.content for m in tight] == [system, prompt]  # system and prompt always fit first
    assert [m.role for m in build_context(db, "s", None, None, "x")] == ["user"]
