"""The session panel, driven through its real ipywidgets as a user would: click, type, select, page.

Each test checks both sides: what the store holds afterwards and what the widgets now show.
"""

from __future__ import annotations

import gc
import itertools
import json
import threading
import weakref
from collections.abc import Callable
from html.parser import HTMLParser

import pytest
from conftest import RecordingModel
from ipywidgets import HTML, Button, HBox
from xss import audit

from nbsessions import Agent, FunctionModel, ModelError, RunOutput, RunStatus
from nbsessions.llm.base import ToolCall
from nbsessions.panel import SessionPanel
from nbsessions.panel.actions import WHOLE_SESSION
from nbsessions.panel.paused_run import PausedRun, parse_value
from nbsessions.records import theme
from nbsessions.records.schema import Metrics, StepRecord
from nbsessions.runs.core.tools import tool
from nbsessions.runs.team import Team
from nbsessions.runs.workflows.workflow import Step, StepInput, Workflow, WorkflowError

XSS_REPLY = ('Sure! <img src=x onerror="window.__xss=1"> <script>window.__xss=2</script> '
             '[click me](javascript:window.__xss=3) <a href="javascript:alert(1)" onclick="x()">a</a> '
             '<svg onload="window.__xss=4"></svg> <iframe src="javascript:alert(1)"></iframe>')


@pytest.fixture
def agent(db) -> Agent:
    return Agent(model=RecordingModel(), db=db)


def add_runs(agent: Agent, session_id: str, count: int, **fields) -> list[RunOutput]:
    """Store finished runs directly: quick, and every number in them is known to the test."""
    runs = []
    for i in range(count):
        run = RunOutput(session_id=session_id, status=RunStatus.completed, input=f"prompt {i}",
                        content=f"reply {i}", created_at=1_700_000_000 + i, model="m",
                        metrics=Metrics(input_tokens=10, output_tokens=i, total_tokens=10 + i, duration=0.5,
                                        cost=0.001), **fields)
        agent.db.upsert_run(run)
        runs.append(run)
    return runs


class TextOf(HTMLParser):
    """The text a browser would show for an HTML cell, one string per element."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []

    def handle_data(self, data):
        self.parts.append(data)


def cell_texts(markup: str) -> list[str]:
    parser = TextOf()
    parser.feed(markup)
    return parser.parts


def row_texts(panel: SessionPanel) -> list[list[str]]:
    """The visible rows of the session list as a user reads them: name, user, runs, updated, tokens, cost."""
    return [[row.name.description, row.user.value, *cell_texts(row.stats.value)]
            for row in panel.sessions.rows if row.layout.display != "none"]


# -- the session list ------------------------------------------------------------------------------
def test_list_shows_each_session_newest_first_with_runs_tokens_and_cost(agent):
    old = agent.create_session("old one", user_id="ana")
    add_runs(agent, old.session_id, 3)
    new = agent.create_session("new one", user_id="bo")
    add_runs(agent, new.session_id, 1)
    agent.db.update_session(new.session_id)  # newest update
    panel = SessionPanel(agent)

    rows = row_texts(panel)
    assert [r[0] for r in rows] == ["new one", "old one"]
    assert rows[1][1:3] == ["ana", "3"]
    assert rows[1][4] == "33"  # 10+11+12 tokens
    assert rows[1][5] == "$0.0030"
    assert [r[6] for r in rows] == [new.session_id[:8], old.session_id[:8]]  # a short id tells sessions apart
    assert panel.sessions.page_info.value == "sessions 1–2 of 2"


def test_unnamed_session_is_listed_by_its_short_id(agent):
    session = agent.create_session()
    panel = SessionPanel(agent)
    assert row_texts(panel)[0][0] == session.session_id[:8]


def test_filter_by_user_and_by_text(agent):
    for name, user in [("pandas help", "ana"), ("plots", "ana"), ("pandas again", "bo")]:
        agent.create_session(name, user_id=user)
    panel = SessionPanel(agent)
    assert [label for label, _ in panel.sessions.user_filter.options] == ["all users", "ana", "bo"]

    panel.sessions.user_filter.value = ("user", "ana")
    assert sorted(r[0] for r in row_texts(panel)) == ["pandas help", "plots"]
    panel.sessions.text_filter.value = "PANDAS"
    assert [r[0] for r in row_texts(panel)] == ["pandas help"]
    panel.sessions.user_filter.value = ("user", "bo")
    assert [r[0] for r in row_texts(panel)] == ["pandas again"]
    panel.sessions.text_filter.value = "nothing like this"
    assert row_texts(panel) == []
    assert panel.sessions.page_info.value == "no sessions"


def test_user_filter_survives_a_refresh_that_adds_users(agent):
    agent.create_session("a", user_id="ana")
    panel = SessionPanel(agent)
    panel.sessions.user_filter.value = ("user", "ana")
    agent.create_session("c", user_id="cy")  # the listener redraws the list
    assert [label for label, _ in panel.sessions.user_filter.options] == ["all users", "ana", "cy"]
    assert panel.sessions.user_filter.value == ("user", "ana")
    assert [r[0] for r in row_texts(panel)] == ["a"]


def test_long_lists_are_paged(agent):
    for i in range(7):
        session = agent.create_session(f"s{i}")
        agent.db.update_session(session.session_id)  # strictly increasing update times
    panel = SessionPanel(agent, page_size=3)
    assert [r[0] for r in row_texts(panel)] == ["s6", "s5", "s4"]
    assert panel.sessions.prev_page.disabled and not panel.sessions.next_page.disabled

    panel.sessions.next_page.click()
    panel.sessions.next_page.click()
    assert [r[0] for r in row_texts(panel)] == ["s0"]
    assert panel.sessions.page_info.value == "sessions 7–7 of 7"
    assert panel.sessions.next_page.disabled

    panel.sessions.prev_page.click()
    assert [r[0] for r in row_texts(panel)] == ["s3", "s2", "s1"]


# -- selecting and following the active session ----------------------------------------------------
def test_clicking_a_session_makes_it_active_and_shows_its_history(agent):
    first = agent.run("What is pandas?")
    second = agent.create_session("other")
    panel = SessionPanel(agent)
    assert panel.selected is None
    assert "Select a session" in panel.history.markup

    row = next(r for r in panel.sessions.rows if r.session_id == first.session_id)
    row.name.click()

    assert agent.active_session_id == first.session_id
    assert panel.selected == first.session_id
    assert row.name.button_style == "info"
    assert "What is pandas?" in panel.history.markup
    assert "echo What is pandas?" in panel.history.markup
    other = next(r for r in panel.sessions.rows if r.session_id == second.session_id)
    assert other.name.button_style == ""


def test_panel_opens_on_the_stored_active_session(agent):
    run = agent.run("remember me")
    agent.set_active_session(run.session_id)
    panel = SessionPanel(agent)
    assert panel.selected == run.session_id
    assert "remember me" in panel.history.markup


def test_switching_sessions_elsewhere_moves_the_selection(agent):
    a = agent.run("in session a", session_id="session-a")
    b = agent.run("in session b", session_id="session-b")
    panel = SessionPanel(agent)
    panel.select(a.session_id)
    assert "in session a" in panel.history.markup

    agent.set_active_session(b.session_id)  # what `%agent use` does

    assert panel.selected == b.session_id
    assert "in session b" in panel.history.markup
    assert "in session a" not in panel.history.markup


def test_a_cell_run_updates_the_panel_without_a_click(agent):
    run = agent.run("first")
    panel = SessionPanel(agent)
    panel.select(run.session_id)

    agent.run("second", session_id=run.session_id)

    assert "echo second" in panel.history.markup
    assert panel.history.page_info.value == "runs 1–2 of 2"
    assert row_texts(panel)[0][2] == "2"


def test_a_run_in_another_thread_updates_the_panel(agent):
    run = agent.run("first")
    panel = SessionPanel(agent)
    panel.select(run.session_id)
    worker = threading.Thread(target=agent.run, args=("from a thread",), kwargs={"session_id": run.session_id})
    worker.start()
    worker.join()
    assert "echo from a thread" in panel.history.markup


def test_refresh_picks_up_what_another_kernel_wrote(agent):
    run = agent.run("mine")
    panel = SessionPanel(agent)
    panel.select(run.session_id)
    other_kernel = Agent(model=RecordingModel(), db=agent.db)  # no listener link to this panel
    other_kernel.run("theirs", session_id=run.session_id)
    other_kernel.create_session("their new session")
    assert "theirs" not in panel.history.markup

    panel.refresh_button.click()

    assert "echo theirs" in panel.history.markup
    assert "their new session" in [r[0] for r in row_texts(panel)]


def test_refresh_reads_another_process_writing_the_same_file(tmp_path):
    from nbsessions.db.tinydb import TinyDb

    path = tmp_path / "nb.nbsessions.json"
    with TinyDb(path) as mine, TinyDb(path) as theirs:
        agent = Agent(model=RecordingModel(), db=mine)
        panel = SessionPanel(agent)
        Agent(model=RecordingModel(), db=theirs).run("written elsewhere")
        assert row_texts(panel) == []
        panel.refresh_button.click()
        assert row_texts(panel)[0][2] == "1"
        panel.close()


# -- actions -----------------------------------------------------------------------------------------
def test_new_creates_a_session_and_makes_it_active(agent):
    panel = SessionPanel(agent)
    panel.actions.new.click()
    sessions = agent.get_sessions()
    assert len(sessions) == 1
    assert agent.active_session_id == sessions[0].session_id == panel.selected
    assert row_texts(panel)[0][0] == sessions[0].session_id[:8]
    assert "No runs yet" in panel.history.markup


def test_new_uses_the_name_typed_beside_it_and_a_taken_name_gets_a_number(agent):
    panel = SessionPanel(agent)
    for _ in range(2):
        panel.actions.name.value = " cleanup "
        panel.actions.new.click()
    names = sorted(s.session_name for s in agent.get_sessions())
    assert names == ["cleanup", "cleanup (2)"]
    assert agent.get_session(panel.selected).session_name == "cleanup (2)"
    assert panel.actions.name.value == ""
    assert sorted(r[0] for r in row_texts(panel)) == ["cleanup", "cleanup (2)"]


def test_names_are_unique_per_user_only(agent):
    agent.create_session("notes", user_id="ana")
    assert agent.create_session("notes", user_id="bo").session_name == "notes"
    renamed = agent.set_session_name(agent.create_session("other", user_id="ana").session_id, session_name="notes")
    assert renamed.session_name == "notes (2)"
    assert agent.set_session_name(renamed.session_id, session_name="notes (2)").session_name == "notes (2)"


def test_new_session_belongs_to_the_filtered_user(agent):
    agent.create_session("x", user_id="ana")
    panel = SessionPanel(agent)
    panel.sessions.user_filter.value = ("user", "ana")
    panel.actions.new.click()
    assert agent.get_session(panel.selected).user_id == "ana"
    assert len(row_texts(panel)) == 2


def rename_in_panel(agent: Agent, session_id: str, typed: str) -> SessionPanel:
    """A panel on ``session_id`` whose name box was given ``typed`` and whose Rename was then clicked."""
    panel = SessionPanel(agent)
    panel.select(session_id)
    panel.actions.name.value = typed
    panel.actions.rename.click()
    return panel


def test_rename_writes_the_name_and_shows_it(agent):
    run = agent.run("hello")
    panel = rename_in_panel(agent, run.session_id, "  pandas questions ")
    assert agent.get_session(run.session_id).session_name == "pandas questions"
    assert row_texts(panel)[0][0] == "pandas questions"
    assert panel.actions.name.value == ""


def test_rename_to_nothing_is_refused_and_changes_nothing(agent):
    session = agent.create_session("keep")
    panel = rename_in_panel(agent, session.session_id, "   ")
    assert agent.get_session(session.session_id).session_name == "keep"
    assert "empty" in panel.status.value
    assert panel.status.style.text_color == theme.ERROR_LABEL


def test_buttons_that_need_a_session_are_disabled_without_one(agent):
    panel = SessionPanel(agent)
    assert panel.actions.rename.disabled and panel.actions.fork.disabled and panel.actions.delete.disabled
    assert panel.state.save.disabled
    assert not panel.actions.new.disabled


def test_fork_from_the_chosen_run(agent):
    source = agent.create_session("source")
    runs = add_runs(agent, source.session_id, 4)
    panel = SessionPanel(agent)
    panel.select(source.session_id)
    labels = [label for label, _ in panel.actions.fork_from.options]
    assert labels[0] == "all runs" and labels[1].startswith("#4 ")  # newest first

    panel.actions.fork_from.value = runs[1].run_id
    panel.actions.fork.click()

    fork_id = panel.selected
    assert fork_id != source.session_id and agent.active_session_id == fork_id
    fork = agent.get_session(fork_id)
    assert fork.forked_from == {"session_id": source.session_id, "run_id": runs[1].run_id}
    assert [r.input for r in agent.get_runs(fork_id)] == ["prompt 0", "prompt 1"]
    assert "prompt 1" in panel.history.markup and "prompt 2" not in panel.history.markup
    assert "source (fork)" in [r[0] for r in row_texts(panel)]


def test_fork_of_the_whole_session(agent):
    source = agent.create_session("source")
    add_runs(agent, source.session_id, 3)
    panel = SessionPanel(agent)
    panel.select(source.session_id)
    assert panel.actions.fork_from.value == WHOLE_SESSION
    panel.actions.fork.click()
    assert len(agent.get_runs(panel.selected)) == 3


def asked_to_delete(agent: Agent, session_id: str) -> SessionPanel:
    """A panel on ``session_id`` whose Delete was clicked: the confirmation is up, nothing is deleted yet."""
    panel = SessionPanel(agent)
    panel.select(session_id)
    panel.actions.delete.click()
    return panel


def test_delete_asks_first_and_cancel_keeps_the_session(agent):
    run = agent.run("precious")
    panel = asked_to_delete(agent, run.session_id)
    assert panel.actions.confirm_box.layout.display is None
    assert "and its 1 run? " in panel.actions.confirm_text.value
    assert agent.db.get_session(run.session_id) is not None

    panel.actions.cancel.click()
    assert panel.actions.confirm_box.layout.display == "none"
    assert agent.db.get_session(run.session_id) is not None


def test_delete_after_confirmation_removes_session_and_runs(agent):
    run = agent.run("doomed")
    keep = agent.create_session("keep")
    panel = asked_to_delete(agent, run.session_id)
    panel.actions.confirm.click()

    assert agent.db.get_session(run.session_id) is None
    assert agent.db.list_runs(run.session_id) == []
    assert agent.active_session_id is None and panel.selected is None
    assert [r[0] for r in row_texts(panel)] == ["keep"] and keep.session_id in panel.sessions.shown_ids
    assert "Select a session" in panel.history.markup
    assert panel.actions.confirm_box.layout.display == "none"


def test_switching_session_withdraws_a_pending_delete(agent):
    a = agent.create_session("a")
    b = agent.create_session("b")
    panel = asked_to_delete(agent, a.session_id)
    panel.select(b.session_id)
    assert panel.actions.confirm_box.layout.display == "none"
    panel.actions.confirm.click()  # a stale "Yes" deletes nothing
    assert agent.db.get_session(a.session_id) is not None
    assert agent.db.get_session(b.session_id) is not None


def test_a_session_deleted_elsewhere_is_dropped_from_the_panel(agent):
    run = agent.run("short-lived")
    panel = SessionPanel(agent)
    panel.select(run.session_id)
    agent.delete_session(run.session_id)
    assert panel.selected is None
    assert row_texts(panel) == []


# -- state -----------------------------------------------------------------------------------------
def test_state_is_shown_as_readable_json(agent):
    session = agent.create_session("s", session_state={"topic": "ml", "n": 2})
    panel = SessionPanel(agent)
    panel.select(session.session_id)
    assert panel.state.text.value == '{\n  "topic": "ml",\n  "n": 2\n}'


def test_saving_state_merges_edits_and_removes_deleted_keys(agent):
    session = agent.create_session("s", session_state={"topic": "ml", "drop": 1})
    panel = SessionPanel(agent)
    panel.select(session.session_id)
    panel.state.text.value = '{"topic": "stats", "new": [1, 2]}'
    panel.state.save.click()
    assert agent.get_session_state(session.session_id) == {"topic": "stats", "new": [1, 2]}
    assert panel.state.message.value == ""
    assert '"new": [\n    1,\n    2\n  ]' in panel.state.text.value


def test_saving_state_keeps_keys_written_elsewhere_after_the_editor_loaded(agent):
    session = agent.create_session("s", session_state={"topic": "ml"})
    panel = SessionPanel(agent)
    panel.select(session.session_id)
    other_kernel = Agent(db=agent.db)  # not heard by this panel
    other_kernel.update_session_state({"theirs": 1}, session.session_id)
    panel.state.text.value = '{"topic": "stats"}'
    panel.state.save.click()
    assert agent.get_session_state(session.session_id) == {"topic": "stats", "theirs": 1}
    assert '"theirs": 1' in panel.state.text.value


@pytest.mark.parametrize("text, expected", [
    ('{"topic": ', "invalid JSON at line 1"),
    ("[1, 2]", "must be a JSON object"),
    ('{"x": NaN}', "NaN is not JSON"),
])
def test_invalid_state_shows_an_inline_error_and_saves_nothing(agent, text, expected):
    session = agent.create_session("s", session_state={"topic": "ml"})
    panel = SessionPanel(agent)
    panel.select(session.session_id)
    before = agent.get_session(session.session_id).updated_at
    panel.state.text.value = text
    panel.state.save.click()
    assert expected in panel.state.message.value
    assert agent.get_session_state(session.session_id) == {"topic": "ml"}
    assert agent.get_session(session.session_id).updated_at == before
    assert panel.state.text.value == text  # the user's edit is not thrown away


# -- history ---------------------------------------------------------------------------------------
def test_history_shows_fifty_runs_per_page_newest_page_first(agent):
    session = agent.create_session("long")
    add_runs(agent, session.session_id, 120)
    panel = SessionPanel(agent)
    panel.select(session.session_id)
    h = panel.history
    assert h.page_info.value == "runs 71–120 of 120"
    assert h.markup.count('class="nbsessions-run"') == 50
    assert "prompt 119" in h.markup and "prompt 69" not in h.markup
    assert h.markup.index("prompt 119") < h.markup.index("prompt 118") < h.markup.index("prompt 70")  # newest on top
    assert h.newer.disabled and not h.older.disabled

    h.older.click()
    assert h.page_info.value == "runs 21–70 of 120"
    assert "prompt 20" in h.markup and "prompt 70" not in h.markup
    panel.tabs.selected_index = 2  # the Metrics tab
    assert panel.metrics.table.value.count("<tr>") == 51  # the metrics table follows the History page

    h.older.click()
    assert h.page_info.value == "runs 1–20 of 120"
    assert h.markup.count('class="nbsessions-run"') == 20 and h.older.disabled

    h.newer.click()
    h.newer.click()
    assert h.page_info.value == "runs 71–120 of 120"


def test_history_marks_error_cancelled_paused_and_superseded_runs(agent):
    session = agent.create_session("s")
    sid = session.session_id
    ok, = add_runs(agent, sid, 1)
    for status, error in [(RunStatus.error, "429: rate limited"), (RunStatus.cancelled, None),
                          (RunStatus.paused, None)]:
        agent.db.upsert_run(RunOutput(session_id=sid, status=status, input=status.value, error=error))
    agent.db.upsert_run(RunOutput(session_id=sid, status=RunStatus.completed, input="old",
                                  superseded_by=ok.run_id))
    panel = SessionPanel(agent)
    panel.select(sid)
    page = panel.history.markup
    badges = [part.split(">", 1)[1].split("<", 1)[0] for part in page.split('class="nbsessions-badge"')[1:]]
    assert badges == ["superseded", "paused", "cancelled", "error"]  # newest run first
    assert "429: rate limited" in page
    assert "10 in / 0 out tokens" in page and "500 ms" in page


def test_history_renders_markdown(agent):
    model = RecordingModel("# Title\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n```py\nx = 1\n```")
    run = Agent(model=model, db=agent.db).run("**bold** prompt")
    panel = SessionPanel(agent)
    panel.select(run.session_id)
    page = panel.history.markup
    assert "<strong>bold</strong>" in page and "<h1>Title</h1>" in page
    assert "<table>" in page and '<pre style="background:var(--jp-cell-editor-background' in page
    assert 'editor-number-color)">1</span>' in page  # highlighted in the panel as in the cell


def test_model_and_user_text_cannot_inject_markup_anywhere(agent):
    evil = Agent(model=RecordingModel(XSS_REPLY, id='<img src=x onerror="window.__xss=5">'),
                 db=agent.db)
    run = evil.run('<script>window.__xss=6</script> prompt', cell_id="c1")
    evil.run("again", session_id=run.session_id)
    agent.db.update_session(run.session_id, summary=XSS_REPLY,
                            session_name='<b onmouseover="window.__xss=7">name</b>')
    agent.db.upsert_run(RunOutput(session_id=run.session_id, status=RunStatus.error, input="x",
                                  error='<img src=x onerror="window.__xss=8">'))
    panel = SessionPanel(agent)
    panel.select(run.session_id)

    for markup in (panel.history.markup, panel.metrics.totals.value, panel.metrics.chart.value,
                   panel.metrics.table.value):
        report = audit(markup)
        assert report.problems == [], report.problems
    assert "Sure!" in panel.history.markup and "click me" in panel.history.markup
    assert "<svg" not in panel.history.markup
    # names go into text-only widgets: shown literally, never parsed
    assert row_texts(panel)[0][0] == '<b onmouseover="window.__xss=7">name</b>'


# -- metrics ---------------------------------------------------------------------------------------
def test_metrics_tab_shows_totals_table_and_chart(agent):
    session = agent.create_session("s")
    add_runs(agent, session.session_id, 3)
    agent.db.upsert_run(RunOutput(session_id=session.session_id, status=RunStatus.error, input="bad",
                                  metrics=Metrics(total_tokens=999)))
    panel = SessionPanel(agent)
    panel.select(session.session_id)
    m = panel.metrics
    assert m.table.value == m.chart.value == ""  # drawn only once the tab is shown: not after every run meanwhile
    panel.tabs.selected_index = 2
    assert "<b>4</b> runs" in m.totals.value
    assert "<b>33</b> total tokens" in m.totals.value  # completed runs only
    assert "<b>$0.0030</b> cost" in m.totals.value and "<b>1.50 s</b> total time" in m.totals.value
    assert m.table.value.count("<tr>") == 5  # header + 4 runs
    chart = audit(m.chart.value)
    assert chart.tags.count("title") == 4 and "polyline" in chart.tags  # a bar (with its tip) per run
    assert chart.tags.count("rect") == 6 and 'fill="currentColor"' in m.chart.value  # + 2 legend swatches
    assert "#3: 12 tokens, 500 ms" in m.chart.value
    add_runs(agent, session.session_id, 1)  # while shown, a run redraws the tab
    panel.refresh()
    assert m.table.value.count("<tr>") == 6 and "<b>5</b> runs" in m.totals.value
    panel.tabs.selected_index = 0
    add_runs(agent, session.session_id, 1)  # while hidden, only the totals line follows
    panel.refresh()
    assert m.table.value.count("<tr>") == 6 and "<b>6</b> runs" in m.totals.value
    panel.tabs.selected_index = 2
    assert m.table.value.count("<tr>") == 7


def test_the_chart_s_token_scale_marks_an_estimated_count(agent):
    """The biggest run's count heads the scale; guessed by the offline model's estimate, it reads ``~N``."""
    session = agent.create_session("s")
    for total, estimated in ((12, False), (1234, True)):
        agent.db.upsert_run(RunOutput(session_id=session.session_id, status=RunStatus.completed, input="q",
                                      metrics=Metrics(total_tokens=total, tokens_estimated=estimated)))
    panel = SessionPanel(agent)
    panel.select(session.session_id)
    panel.tabs.selected_index = 2
    assert "tokens (max ~1,234)" in panel.metrics.chart.value


def test_metrics_of_a_session_without_runs(agent):
    session = agent.create_session("empty")
    panel = SessionPanel(agent)
    panel.select(session.session_id)
    assert "<b>0</b> runs" in panel.metrics.totals.value and "n/a</b> cost" in panel.metrics.totals.value
    assert panel.metrics.chart.value == "" and panel.metrics.table.value == ""


# -- life cycle ----------------------------------------------------------------------------------------
def test_panel_over_a_bare_store(db):
    Agent(db=db).run("hello")
    panel = SessionPanel(db=db)
    assert row_texts(panel)[0][2] == "1"
    assert panel.agent.db is db


def test_agent_and_a_different_store_is_refused(agent):
    from nbsessions import InMemoryDb

    with pytest.raises(ValueError, match="not two different stores"):
        SessionPanel(agent, db=InMemoryDb())


def test_closed_panel_stops_listening(agent):
    run = agent.run("before")
    panel = SessionPanel(agent)
    panel.select(run.session_id)
    panel.close()
    agent.run("after", session_id=run.session_id)
    assert "before" in panel.history.markup and "after" not in panel.history.markup
    assert panel.sessions.rows[0].name.comm is None  # child widgets closed too


def test_a_closed_panel_is_not_kept_alive_by_the_agent(agent):
    panel = SessionPanel(agent)
    ref = weakref.ref(panel)
    panel.close()
    del panel
    gc.collect()
    assert ref() is None


def test_a_failing_panel_never_breaks_a_run(agent, monkeypatch):
    run = agent.run("first")
    panel = SessionPanel(agent)
    panel.select(run.session_id)

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(panel.sessions, "refresh", broken)
    second = agent.run("second", session_id=run.session_id)
    assert second.status == RunStatus.completed
    assert "the panel could not update: boom" in panel.status.value


# -- tool calls, paused runs, variants ----------------------------------------------------------------
def scripted(*calls: ToolCall, answer: Callable[[list[str]], str] | None = None) -> FunctionModel:
    """First round: the given tool calls; after the tools answered: text made from their results."""
    def model(messages, tools):
        if messages[-1].role == "tool":
            results = [m.content or "" for m in messages if m.role == "tool" and not m.from_history]
            return answer(results) if answer else "tool said: " + " | ".join(results)
        return list(calls)
    return FunctionModel(model)


def call(tool_name: str, call_id: str = "call_1", /, **arguments) -> ToolCall:
    return ToolCall(call_id, tool_name, json.dumps(arguments))


def snapshot(agent: Agent, session_id: str) -> tuple:
    """Everything the store holds for a session: equal snapshots mean nothing was written."""
    return agent.db.get_session(session_id).to_dict(), [r.to_dict() for r in agent.db.list_runs(session_id)]


def shown(widget) -> bool:
    return widget.layout.display != "none"


def panel_on(agent: Agent, session_id: str) -> SessionPanel:
    panel = SessionPanel(agent)
    panel.select(session_id)
    return panel


@pytest.fixture
def ledger() -> list:
    return []


@pytest.fixture
def drop_table(ledger):
    @tool(requires_confirmation=True)
    def drop_table(name: str) -> str:
        """Drop a table."""
        ledger.append(name)
        return f"dropped {name}"
    return drop_table


@pytest.fixture
def pay(ledger):
    @tool(requires_user_input=True, user_input_fields=["amount", "memo"])
    def pay(to: str, amount=None, memo=None) -> str:
        """Pay someone."""
        ledger.append((to, amount, memo))
        return f"paid {amount!r} ({type(amount).__name__}) to {to}, memo {memo!r}"
    return pay


def test_a_run_that_needs_approval_shows_approve_and_reject_and_approve_continues_it(db, drop_table, ledger):
    agent = Agent(model=scripted(call("drop_table", name="sales")), db=db, tools=[drop_table])
    run = agent.run("drop the sales table")
    panel = panel_on(agent, run.session_id)

    card, = panel.history.paused
    assert card.run_id == run.run_id and card.children[-1].children[:2] == (card.approve, card.reject)
    assert "waiting for approval" in panel.history.markup and "drop_table" in panel.history.markup
    card.approve.click()

    stored = agent.db.get_run(run.run_id)
    assert stored.status == RunStatus.completed and stored.content == "tool said: dropped sales"
    assert ledger == ["sales"]
    assert panel.history.paused == []
    texts = "".join(cell_texts(panel.history.markup))
    assert 'drop_table({"name": "sales"}) → dropped sales' in texts
    assert "tool said: dropped sales" in texts
    assert panel.status.value == "run #1 continued: completed"


def test_reject_tells_the_model_and_never_calls_the_tool(db, drop_table, ledger):
    agent = Agent(model=scripted(call("drop_table", name="sales")), db=db, tools=[drop_table])
    run = agent.run("drop the sales table")
    panel = panel_on(agent, run.session_id)
    panel.history.paused[0].reject.click()
    assert ledger == []
    assert agent.db.get_run(run.run_id).content == "tool said: Function call was rejected by the user"
    assert "Function call was rejected by the user" in panel.history.markup


def test_requested_fields_are_typed_as_text_and_read_as_json_when_they_parse(db, pay, ledger):
    agent = Agent(model=scripted(call("pay", to="bob", memo="rent")), db=db, tools=[pay])
    run = agent.run("pay bob")
    panel = panel_on(agent, run.session_id)
    card, = panel.history.paused
    assert list(card.fields) == ["amount", "memo"]
    assert card.fields["memo"].value == "rent"  # what the model proposed, editable
    assert card.children[-1].children[0] is card.submit  # no confirmation asked: one Continue button

    card.fields["amount"].value = "12.5"
    card.fields["memo"].value = "May rent, not June"
    card.submit.click()

    assert ledger == [("bob", 12.5, "May rent, not June")]
    assert agent.db.get_run(run.run_id).content == "tool said: paid 12.5 (float) to bob, memo 'May rent, not June'"


@pytest.mark.parametrize("text, value", [("5", 5), ("true", True), ('"5"', "5"), ("[1, 2]", [1, 2]),
                                         ("five", "five"), ("NaN", "NaN"), ("{oops", "{oops")])
def test_field_values_are_json_when_they_parse_else_text(text, value):
    assert parse_value(text) == value and type(parse_value(text)) is type(value)


def test_externally_executed_calls_get_one_result_box_each(db, ledger):
    @tool(external_execution=True)
    def run_sql(query: str) -> str:
        ledger.append(query)
        return "never here"

    agent = Agent(model=scripted(call("run_sql", "c1", query="select 1"), call("run_sql", "c2", query="select 2")),
                  db=db, tools=[run_sql])
    run = agent.run("count twice")
    panel = panel_on(agent, run.session_id)
    card, = panel.history.paused
    assert list(card.results) == ["c1", "c2"]
    card.results["c1"].value = "1 row"
    card.results["c2"].value = "2 rows"
    card.submit.click()
    assert ledger == []
    assert agent.db.get_run(run.run_id).content == "tool said: 1 row | 2 rows"
    assert "→ 2 rows" in "".join(cell_texts(panel.history.markup))


@pytest.mark.parametrize("fill", [{}, {"amount": "  "}])
def test_a_missing_answer_is_shown_on_the_card_and_nothing_runs_or_changes(db, pay, ledger, fill):
    agent = Agent(model=scripted(call("pay", to="bob")), db=db, tools=[pay])
    run = agent.run("pay bob")
    panel = panel_on(agent, run.session_id)
    card, = panel.history.paused
    before = snapshot(agent, run.session_id)
    card.fields["memo"].value = "rent"
    for name, value in fill.items():
        card.fields[name].value = value

    card.submit.click()

    assert card.message.value == "fill in amount first"
    assert panel.status.value == "fill in amount first" and panel.status.style.text_color == theme.ERROR_LABEL
    assert snapshot(agent, run.session_id) == before and ledger == []
    assert panel.history.paused == [card] and card.fields["memo"].value == "rent"  # the user's typing stays


def test_an_answer_the_agent_refuses_is_shown_inline_and_changes_nothing(db, drop_table, ledger):
    agent = Agent(model=scripted(call("drop_table", name="sales")), db=db, tools=[drop_table])
    run = agent.run("drop the sales table")
    panel = panel_on(agent, run.session_id)
    card, = panel.history.paused
    other_kernel = Agent(model=agent.model, db=agent.db, tools=[drop_table])  # not heard by this panel
    other_kernel.continue_run(run.run_id, approve=False)
    before = snapshot(agent, run.session_id)

    card.approve.click()  # the card is stale: the run is no longer paused

    assert "is completed, not paused" in card.message.value
    assert "is completed, not paused" in panel.status.value and panel.status.style.text_color == theme.ERROR_LABEL
    assert snapshot(agent, run.session_id) == before and ledger == []
    assert panel.history.paused == []  # the redraw shows the run as it now is


def test_typing_in_a_paused_run_survives_a_redraw_from_another_cell(db, pay):
    agent = Agent(model=scripted(call("pay", to="bob")), db=db, tools=[pay])
    run = agent.run("pay bob")
    panel = panel_on(agent, run.session_id)
    card, = panel.history.paused
    card.fields["amount"].value = "7"
    agent.run("something else", session_id=run.session_id, model=RecordingModel())  # the listener redraws
    assert "echo something else" in panel.history.markup
    assert panel.history.paused == [card] and card.fields["amount"].value == "7"


def test_tool_calls_and_results_are_shown_compactly_and_only_in_their_own_run(db):
    def get_weather(city: str) -> dict:
        """Weather for a city."""
        return {"city": city, "temp": 21, "notes": "x" * 300}

    agent = Agent(model=scripted(call("get_weather", city="Oslo"), answer=lambda r: "It is 21 degrees."), db=db,
                  tools=[get_weather], add_history_to_context=True)
    run = agent.run("weather in Oslo?")
    agent.run("thanks", session_id=run.session_id, model=RecordingModel())  # sees the tool call as history
    panel = panel_on(agent, run.session_id)
    markup = panel.history.markup
    assert markup.count('class="nbsessions-tool"') == 1
    tool_part = markup.split('class="nbsessions-tool"', 1)[1]  # the tool call's own line, not a Sent view's
    summary_line = "".join(cell_texts(tool_part.split("<summary>", 1)[1].split("</summary>", 1)[0]))
    assert summary_line.startswith('tool get_weather({"city": "Oslo"}) → {"city": "Oslo", "temp": 21, "notes": "xxx')
    assert summary_line.endswith("…") and len(summary_line) < 300
    assert "x" * 300 in markup  # the whole result unfolds under "details"


def test_hostile_tool_names_arguments_and_results_stay_text(db):
    hostile = '<img src=x onerror="window.__xss=9"><script>window.__xss=10</script>'

    @tool(requires_confirmation=True)
    def publish(text: str) -> str:
        """Publish."""
        return XSS_REPLY

    def echo_tool(text: str) -> str:
        """Echo."""
        return text

    agent = Agent(model=scripted(call("echo_tool", "c1", text=hostile), call(hostile, "c2"),
                                 call("publish", "c3", text=XSS_REPLY), answer=lambda r: XSS_REPLY),
                  db=db, tools=[publish, echo_tool])
    run = agent.run("go")
    panel = panel_on(agent, run.session_id)
    card, = panel.history.paused
    assert audit(panel.history.markup).problems == []
    card.approve.click()

    markup = panel.history.markup
    assert audit(markup).problems == [], audit(markup).problems
    texts = "".join(cell_texts(markup))
    assert "→ " + hostile in texts  # the echoed arguments are shown, as text
    assert f"there is no tool named '{hostile}'" in texts
    assert '<script>window.__xss=2</script>' in texts  # the tool's hostile result, unfolded as text


def counting_model(*failing: int) -> FunctionModel:
    """Replies "answer 1", "answer 2", …; the calls numbered in ``failing`` fail as a provider would."""
    from nbsessions.records.errors import ModelError

    counter = itertools.count(1)

    def model(messages):
        n = next(counter)
        if n in failing:
            raise ModelError(f"503: overloaded on call {n}", status_code=503)
        return f"answer {n}"
    return FunctionModel(model)


def columns(group) -> list[str]:
    """Each variant column as a reader sees it: its reply, then "kept in history" or "Keep this one"."""
    out = []
    for column in group.columns.children:
        body, foot = column.children
        markup = body.children[0].value if isinstance(body, PausedRun) else body.value
        reply = markup.split('class="nbsessions-reply">', 1)[1]
        words = foot.description if isinstance(foot, Button) else "".join(cell_texts(foot.value))
        out.append(f"{''.join(cell_texts(reply)).strip()} / {words}")
    return out


def test_regenerate_shows_the_variants_side_by_side_and_keep_picks_the_one_in_history(db):
    agent = Agent(model=counting_model(), db=db, add_history_to_context=True)
    run = agent.run("Name a colour")
    panel = panel_on(agent, run.session_id)
    assert panel.history.variant_groups == []
    assert panel.history.regenerate_from.value == run.run_id

    panel.history.regenerate.click()

    group, = panel.history.variant_groups
    assert columns(group) == ["answer 1 / Keep this one", "answer 2 / kept in history"]
    shown = panel.history.markup
    for view in panel.history.sent_views:
        shown = shown.replace(view.body, "")
    assert shown.count("Name a colour") == 1  # the prompt once, above the columns (the Sent view aside)
    assert panel.status.value == "new variant: completed"
    new = agent.db.list_runs(run.session_id)[-1]
    assert new.variant_of == run.run_id and agent.db.get_run(run.run_id).superseded_by == new.run_id

    group.keep_buttons[run.run_id].click()

    assert agent.db.get_run(run.run_id).superseded_by is None
    assert agent.db.get_run(new.run_id).superseded_by == run.run_id
    group, = panel.history.variant_groups
    assert columns(group) == ["answer 1 / kept in history", "answer 2 / Keep this one"]
    later = agent.run("and another?", session_id=run.session_id)
    assert [m.content for m in later.messages if m.from_history] == ["Name a colour", "answer 1"]


def test_regenerate_from_a_group_adds_a_column(db):
    agent = Agent(model=counting_model(), db=db)
    run = agent.run("Name a colour")
    agent.regenerate(run_id=run.run_id)
    panel = panel_on(agent, run.session_id)
    panel.history.variant_groups[0].regenerate.click()
    group, = panel.history.variant_groups
    assert columns(group) == ["answer 1 / Keep this one", "answer 2 / Keep this one",
                              "answer 3 / kept in history"]
    assert isinstance(group.columns, HBox) and panel.history.markup.count("nbsessions-run") == 3


def test_an_older_run_regenerated_groups_its_variants_where_it_stands(db):
    agent = Agent(model=counting_model(), db=db)
    first = agent.run("first question")
    agent.run("second question", session_id=first.session_id)
    panel = panel_on(agent, first.session_id)
    assert [label for label, _ in panel.history.regenerate_from.options] == ["#2 · second question",
                                                                             "#1 · first question"]
    panel.history.regenerate_from.value = first.run_id
    panel.history.regenerate.click()

    (plain, sent), (group,) = panel.history.entries  # newest on top: the second run and its Sent view
    assert group is panel.history.variant_groups[0] and isinstance(plain, HTML)
    assert sent is panel.history.sent_views[0] and "second question" in sent.body
    assert columns(group) == ["answer 1 / Keep this one", "answer 3 / kept in history"]
    assert "second question" in plain.value and "first question" not in plain.value


def test_regenerate_follows_the_newest_run_unless_the_user_picked_one(db):
    agent = Agent(model=counting_model(), db=db)
    first = agent.run("first question")
    panel = panel_on(agent, first.session_id)
    second = agent.run("second question", session_id=first.session_id)  # arrives while the panel is open
    assert panel.history.regenerate_from.value == second.run_id
    panel.history.regenerate_from.value = first.run_id
    agent.run("third question", session_id=first.session_id)
    assert panel.history.regenerate_from.value == first.run_id


def test_a_failed_regeneration_is_reported_and_cannot_be_kept(db):
    agent = Agent(model=counting_model(2), db=db)
    run = agent.run("Name a colour")
    panel = panel_on(agent, run.session_id)
    panel.history.regenerate.click()
    assert panel.status.value == "503: overloaded on call 2" and panel.status.style.text_color == theme.ERROR_LABEL
    group, = panel.history.variant_groups
    assert columns(group) == ["answer 1 / kept in history", "503: overloaded on call 2 / "]
    assert group.keep_buttons == {}
    assert agent.db.get_run(run.run_id).superseded_by is None


def test_regenerate_is_offered_only_for_runs_that_carry_their_prompt(agent):
    session = agent.create_session("imported")
    add_runs(agent, session.session_id, 2)  # stored without messages: there is no context to replay
    panel = panel_on(agent, session.session_id)
    assert panel.history.regenerate.disabled and panel.history.regenerate_from.options == ()


def test_a_paused_variant_is_answered_in_its_column(db, drop_table, ledger):
    agent = Agent(model=scripted(call("drop_table", name="sales")), db=db, tools=[drop_table])
    run = agent.run("drop the sales table")
    panel = panel_on(agent, run.session_id)
    panel.history.regenerate.click()
    assert panel.status.value == "new variant: paused again, waiting for you below"
    group, = panel.history.variant_groups
    first, second = panel.history.paused
    assert [c.children[0] for c in group.columns.children] == [first, second]

    second.approve.click()

    assert ledger == ["sales"]
    group, = panel.history.variant_groups
    assert len(panel.history.paused) == 1
    assert columns(group)[1] == "tool said: dropped sales / kept in history"


def test_variants_with_hostile_prompt_and_replies_are_inert(db):
    agent = Agent(model=RecordingModel(XSS_REPLY), db=db)
    run = agent.run('**prompt** <script>window.__xss=6</script> <img src=x onerror="window.__xss=7">')
    agent.regenerate(run_id=run.run_id)
    panel = panel_on(agent, run.session_id)
    group, = panel.history.variant_groups
    for html_widget in [group.children[0], *(c.children[0] for c in group.columns.children)]:
        assert audit(html_widget.value).problems == [], html_widget.value
    assert "<strong>prompt</strong>" in group.children[0].value and "Sure!" in panel.history.markup
    assert [label for label, _ in panel.history.regenerate_from.options][0].startswith("#2 · **prompt** <script>")


# -- teams and workflows ----------------------------------------------------------------------------------
VOID_TAGS = {"br", "hr", "img", "input", "meta", "link", "wbr", "area", "col", "source"}


class Outline(HTMLParser):
    """Each piece of text with the elements around it, outermost first, as (class, element number) pairs."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[tuple[str, int]] = []
        self.pieces: list[tuple[tuple[tuple[str, int], ...], str]] = []
        self.count = 0

    def handle_starttag(self, tag, attrs):
        if tag not in VOID_TAGS:
            self.count += 1
            self.stack.append((dict(attrs).get("class") or tag, self.count))

    def handle_endtag(self, tag):
        if tag not in VOID_TAGS:
            self.stack.pop()

    def handle_data(self, data):
        self.pieces.append((tuple(self.stack), data))


def outline(markup: str) -> Outline:
    parser = Outline()
    parser.feed(markup)
    parser.close()
    return parser


def texts_of(markup: str, css: str) -> list[str]:
    """The text of every element of class ``css``, in page order, pieces joined by a space, whitespace collapsed."""
    found: dict[int, list[str]] = {}
    for chain, data in outline(markup).pieces:
        for cls, number in chain:
            if cls == css:
                found.setdefault(number, []).append(data)
    return [" ".join(" ".join(parts).split()) for _number, parts in sorted(found.items())]


def classes_around(markup: str, text: str) -> list[str]:
    """The classes of the elements around the first piece of text that is ``text``, outermost first."""
    chain = next(chain for chain, data in outline(markup).pieces if data.strip() == text)
    return [cls for cls, _number in chain if cls.startswith("nbsessions-") or cls in ("details", "summary")]


def leader_model(*handoffs: tuple[str, str], answer: Callable[[list[str]], str] | None = None) -> FunctionModel:
    """A scripted team leader: hands each (member, task) over in turn with ask_<member>, then composes."""
    def reply(messages, tools):
        results = [m.content or "" for m in messages if m.role == "tool" and not m.from_history]
        if len(results) < len(handoffs):
            name, task = handoffs[len(results)]
            return ToolCall(f"call_{len(results)}", f"ask_{name}", json.dumps({"task": task}))
        return answer(results) if answer else "composed: " + " | ".join(results)
    return FunctionModel(reply, id="leader")


def member_agent(name: str, reply: Callable[[str], str] | None = None) -> Agent:
    fn = reply or (lambda task: f"{name} did {task}")
    return Agent(model=FunctionModel(lambda m: fn(m[-1].content or ""), id=f"{name}-model"), name=name)


def newsroom(db, **leader_options) -> Team:
    return Team(members=[member_agent("researcher"), member_agent("writer")], db=db,
                model=leader_model(("researcher", "find facts"), ("writer", "write it up"), **leader_options))


def test_a_team_run_folds_its_member_runs_under_it(db):
    team = newsroom(db)
    run = team.run("report on tea")
    panel = SessionPanel(db=db)  # a panel on the store, not on the team: it still shows the team's runs
    panel.select(run.session_id)
    markup = panel.history.markup

    assert panel.history.page_info.value == "runs 1–1 of 1" and row_texts(panel)[0][2] == "1"
    header = texts_of(markup, "nbsessions-run")[0]
    assert header.startswith("#1 · team · 2 member runs ·") and "· leader" in header
    fold, = texts_of(markup, "nbsessions-members")
    assert fold.startswith("2 member runs: researcher, writer · ~19 tokens")
    researcher, writer = texts_of(markup, "nbsessions-nested-run")
    assert researcher.startswith("researcher ·") and "~3 in / ~7 out tokens" in researcher
    assert "researcher-model" in researcher and researcher.endswith("find facts researcher did find facts")
    assert writer.startswith("writer ·") and writer.endswith("write it up writer did write it up")
    assert classes_around(markup, "writer did write it up") == [
        "nbsessions-run", "nbsessions-members", "nbsessions-nested-run", "nbsessions-reply"]
    assert 'class="nbsessions-tool"' not in markup  # the ask_ calls are the member runs, shown once
    assert texts_of(markup, "nbsessions-reply")[-1] == "composed: researcher did find facts | writer did write it up"
    assert panel.history.regenerate.disabled and panel.history.paused == []  # the panel's agent cannot replay a team


def test_nested_runs_are_never_top_level_and_pages_count_top_level_runs(agent):
    session = agent.create_session("teams")
    for i in range(55):
        team_run = RunOutput(session_id=session.session_id, status=RunStatus.completed, kind="team",
                             input=f"task {i}", content=f"team answer {i}", model="leader",
                             metrics=Metrics(total_tokens=100 + i))
        agent.db.upsert_run(team_run)
        for j in range(3):
            agent.db.upsert_run(RunOutput(session_id=session.session_id, status=RunStatus.completed,
                                          parent_run_id=team_run.run_id, input=f"part {j} of {i}",
                                          content=f"member {j} on {i}", model="m", metrics=Metrics(total_tokens=5)))
    panel = panel_on(agent, session.session_id)
    h = panel.history

    assert h.page_info.value == "runs 6–55 of 55" and row_texts(panel)[0][2] == "55"
    assert h.markup.count('class="nbsessions-run"') == 50 and h.markup.count('class="nbsessions-nested-run"') == 150
    assert texts_of(h.markup, "nbsessions-run")[-1].startswith("#6 · team · 3 member runs")  # newest on top
    assert len(panel.actions.fork_from.options) == 51  # "all runs" and the 50 team runs, no member run
    panel.tabs.selected_index = 2
    assert panel.metrics.table.value.count("<tr>") == 51
    assert "<td" + ' style="padding:1px 8px;text-align:right">team</td>' in panel.metrics.table.value

    h.older.click()

    assert h.page_info.value == "runs 1–5 of 55"
    runs = texts_of(h.markup, "nbsessions-run")
    assert [r.split(" · ")[0] for r in runs] == ["#5", "#4", "#3", "#2", "#1"]
    assert "member 2 on 0" in runs[4] and "member 0 on 4" in runs[0]  # the oldest page keeps its members
    assert "<b>5</b> runs" not in panel.metrics.totals.value and "<b>55</b> runs" in panel.metrics.totals.value
    assert "<b>6,985</b> total tokens" in panel.metrics.totals.value  # 100..154 summed, members not again


def test_a_workflow_run_lists_its_steps_in_order_and_folds_its_agent_step_run(db):
    def shout(step: StepInput) -> str:
        return step.previous_output.upper()

    summariser = member_agent("summariser", lambda text: f"**summary** of {text}")
    flow = Workflow(steps=[shout, summariser, lambda s: f"{s.previous_output} (from {s.input})"], db=db,
                    name="pipeline")
    run = flow.run("raw text")
    panel = SessionPanel(db=db)
    panel.select(run.session_id)
    panel.tabs.selected_index = 2  # its Metrics tab too
    markup = panel.history.markup

    assert panel.history.page_info.value == "runs 1–1 of 1"
    assert texts_of(markup, "nbsessions-run")[0].startswith("#1 · workflow · 3 steps ·")
    assert texts_of(markup, "nbsessions-step-head") == [
        "step 1 · shout · function", "step 2 · summariser · agent", "step 3 · <lambda> · function"]
    assert texts_of(markup, "nbsessions-step-output") == [
        "RAW TEXT", "summary of RAW TEXT", "summary of RAW TEXT (from raw text)"]
    assert "<strong>summary</strong>" in markup  # step outputs are rendered Markdown
    folded, = texts_of(markup, "nbsessions-step-run")
    assert folded.startswith("its agent run · summariser-model ·")
    assert classes_around(markup, "RAW TEXT") == ["nbsessions-run", "nbsessions-steps", "nbsessions-step",
                                                  "nbsessions-step-output"]
    nested, = texts_of(markup, "nbsessions-nested-run")
    assert "summariser-model" in nested and nested.endswith("RAW TEXT summary of RAW TEXT")
    assert "<td" + ' style="padding:1px 8px;text-align:right">workflow</td>' in panel.metrics.table.value
    assert panel.metrics.table.value.count("<tr>") == 2 and panel.history.regenerate.disabled


def test_a_failing_step_shows_its_error_badge_and_keeps_the_steps_before_it(db):
    def shout(step: StepInput) -> str:
        return step.previous_output.upper()

    def explode(step: StepInput) -> str:
        raise RuntimeError("disk full")

    def broken(messages):
        raise ModelError("429 rate limited: retry in 7 s", status_code=429)

    flow = Workflow(steps=[shout, Step(name="explode", executor=explode, max_retries=0), shout], db=db)
    with pytest.raises(WorkflowError):
        flow.run("data")
    flaky = Agent(model=FunctionModel(broken, id="flaky-model"), name="flaky")
    failed = Workflow(steps=[Step(name="flaky", agent=flaky, max_retries=0)], db=db)  # Agno retries 3 times
    with pytest.raises(WorkflowError) as caught:
        failed.run("x", session_id=flow.get_sessions()[0].session_id)
    panel = SessionPanel(db=db)
    panel.select(caught.value.run.session_id)
    markup = panel.history.markup

    second, first = texts_of(markup, "nbsessions-run")  # newest on top
    assert first.startswith("#1 · workflow · 2 steps") and "error" in first
    assert texts_of(markup, "nbsessions-step-head") == [
        "step 1 · flaky · agent error", "step 1 · shout · function", "step 2 · explode · function error"]
    assert texts_of(markup, "nbsessions-step-error") == ["429 rate limited: retry in 7 s", "disk full"]
    assert texts_of(markup, "nbsessions-step-output") == ["DATA"]
    badges = [part.split(">", 1)[1].split("<", 1)[0] for part in markup.split('class="nbsessions-badge"')[1:]]
    assert badges == ["error", "error", "error", "error", "error"]  # runs, steps, the step run
    folded, = texts_of(markup, "nbsessions-step-run")
    assert folded.startswith("its agent run · flaky-model") and "429 rate limited" in folded
    assert panel.history.folds[0].titles[0].endswith(" · error")  # the folded step run says it failed
    assert "step 'explode' failed: disk full" in first


def test_a_team_step_of_a_workflow_folds_its_members_two_levels_down(db):
    flow = Workflow(steps=[lambda s: s.input.upper(), newsroom(None)], db=db)
    run = flow.run("topic")
    panel = SessionPanel(db=db)
    panel.select(run.session_id)
    markup = panel.history.markup

    assert panel.history.page_info.value == "runs 1–1 of 1"
    assert classes_around(markup, "writer did write it up") == [
        "nbsessions-run", "nbsessions-steps", "nbsessions-step", "nbsessions-step-run",
        "nbsessions-nested-run", "nbsessions-members", "nbsessions-nested-run", "nbsessions-reply"]
    assert texts_of(markup, "nbsessions-step-run")[0].startswith("its team run · leader ·")
    assert texts_of(markup, "nbsessions-members")[0].startswith("2 member runs: researcher, writer")


def test_hostile_member_replies_tasks_step_outputs_names_and_errors_are_inert(db):
    hostile = '<img src=x onerror="window.__xss=11"><script>window.__xss=12</script>'
    team = Team(members=[member_agent("writer", lambda task: XSS_REPLY)], db=db,
                model=leader_model(("writer", hostile), answer=lambda results: XSS_REPLY))
    run = team.run("go")

    def output(step: StepInput) -> str:
        return XSS_REPLY

    def explode(step: StepInput) -> str:
        raise RuntimeError(hostile)

    explode.__name__ = '<b onmouseover="window.__xss=13">step</b>'
    with pytest.raises(WorkflowError):
        Workflow(steps=[output, explode], db=db, name=hostile).run("go", session_id=run.session_id)
    panel = panel_on(Agent(db=db), run.session_id)
    markup = panel.history.markup

    for part in (markup, panel.metrics.table.value, panel.metrics.chart.value):
        assert audit(part).problems == [], audit(part).problems
    texts = cell_texts(markup)
    assert hostile in texts  # the step's error and the member's task, shown as the text they are
    assert '<b onmouseover="window.__xss=13">step</b>' in texts
    assert "Sure!" in "".join(texts_of(markup, "nbsessions-step-output"))
    assert "Sure!" in texts_of(markup, "nbsessions-nested-run")[0]


def test_following_a_team_or_workflow_updates_the_panel_without_a_click(db):
    agent = Agent(model=RecordingModel(), db=db)
    first = agent.run("hello")
    panel = panel_on(agent, first.session_id)
    team = newsroom(db)
    flow = Workflow(steps=[lambda s: "done"], db=db)
    panel.follow(team)
    panel.follow(flow)

    team.run("report", session_id=first.session_id)
    assert panel.history.page_info.value == "runs 1–2 of 2" and "composed: researcher did" in panel.history.markup
    flow.run("go", session_id=first.session_id)
    assert panel.history.page_info.value == "runs 1–3 of 3"
    assert panel.history.regenerate_from.options == (("#1 · hello", first.run_id),)  # agent runs only

    ref = weakref.ref(panel)
    panel.close()
    team.run("after", session_id=first.session_id)
    flow.run("after", session_id=first.session_id)  # a closed panel is left alone
    assert panel.history.page_info.value == "runs 1–3 of 3"
    del panel
    gc.collect()
    assert ref() is None  # the workflow, which cannot drop a listener, does not keep it alive
    with pytest.raises(ValueError, match="own store"):
        SessionPanel(agent).follow(Workflow(steps=[lambda s: "x"]))


def test_a_paused_team_run_gets_its_badge_but_no_controls(agent):
    session = agent.create_session("s")
    agent.db.upsert_run(RunOutput(session_id=session.session_id, status=RunStatus.paused, kind="team", input="t",
                                  requirements=[{"tool_call_id": "c1", "tool_name": "drop", "kind": "confirmation",
                                                 "resolved": False}]))
    panel = panel_on(agent, session.session_id)
    assert panel.history.paused == [] and panel.history.regenerate.disabled
    assert "paused" in cell_texts(panel.history.markup)


def test_member_runs_stored_while_the_team_run_is_open_appear_on_refresh(agent):
    session = agent.create_session("s")
    team_run = RunOutput(session_id=session.session_id, status=RunStatus.running, kind="team", input="go")
    agent.db.upsert_run(team_run)
    panel = panel_on(agent, session.session_id)
    assert texts_of(panel.history.markup, "nbsessions-run")[0].startswith("#1 · team ·")
    for name in ("first", "second"):  # another kernel's team: only its members' runs change meanwhile
        agent.db.upsert_run(RunOutput(session_id=session.session_id, status=RunStatus.completed, input=name,
                                      content=f"{name} reply", parent_run_id=team_run.run_id, model=name))
        panel.refresh_button.click()
        assert f"{name} reply" in texts_of(panel.history.markup, "nbsessions-members")[0]
    assert texts_of(panel.history.markup, "nbsessions-run")[0].startswith("#1 · team · 2 member runs")
    assert "running" in texts_of(panel.history.markup, "nbsessions-run")[0]


def test_a_workflow_with_more_nested_runs_than_a_page_still_shows_the_runs_before_it(agent):
    session = agent.create_session("s")
    add_runs(agent, session.session_id, 3)
    flow_run = RunOutput(session_id=session.session_id, status=RunStatus.completed, kind="workflow", input="many")
    agent.db.upsert_run(flow_run)
    for i in range(60):
        step_run = RunOutput(session_id=session.session_id, status=RunStatus.completed, input=f"in {i}",
                             content=f"step reply {i}", parent_run_id=flow_run.run_id)
        agent.db.upsert_run(step_run)
        flow_run.steps.append(StepRecord(name=f"s{i}", kind="agent", input=f"in {i}", status=RunStatus.completed,
                                         output=f"step reply {i}", run_id=step_run.run_id))
    agent.db.upsert_run(flow_run)
    panel = panel_on(agent, session.session_id)
    markup = panel.history.markup
    assert panel.history.page_info.value == "runs 1–4 of 4"
    assert [r.split(" · ")[0] for r in texts_of(markup, "nbsessions-run")] == ["#4", "#3", "#2", "#1"]
    assert len(texts_of(markup, "nbsessions-step-run")) == 60 and "prompt 0" in markup


def test_a_page_with_nested_runs_costs_about_what_it_shows(agent):
    from nbsessions.panel.run_tree import read_page

    session = agent.create_session("s")
    for i in range(80):
        parent = RunOutput(session_id=session.session_id, status=RunStatus.completed, kind="team", input=f"t{i}")
        agent.db.upsert_run(parent)
        for _ in range(3):
            agent.db.upsert_run(RunOutput(session_id=session.session_id, parent_run_id=parent.run_id))
    reads: list[int] = []

    def read(last: int) -> list[RunOutput]:
        runs = agent.db.list_runs(session.session_id, last=last)
        reads.append(len(runs))
        return runs

    runs, nested = read_page(read, 80, 0)
    assert [r.input for r in runs] == [f"t{i}" for i in range(30, 80)]
    assert all(len(nested[r.run_id]) == 3 for r in runs)
    assert reads[0] == 50 and 200 <= reads[1] <= 250  # one look, then about the 200 runs the page needs
    reads.clear()
    assert [r.input for r in read_page(read, 80, 1)[0]] == [f"t{i}" for i in range(30)]
    assert reads == [80, 320]


def test_experiment_sessions_are_hidden_until_asked_for_then_listed_under_their_source(agent):
    from nbsessions.explore import batch, compare

    base = agent.create_session("analysis")
    agent.run("first", session_id=base.session_id)
    other = agent.create_session("other")
    compare(agent, "hi", models=["offline", RecordingModel()], session_id=base.session_id,
            progress=False)
    agent.set_active_session(base.session_id)
    batch(agent, "say {x}", [{"x": 1}], progress=False)
    panel = SessionPanel(agent)
    assert sorted(r[0] for r in row_texts(panel)) == ["analysis", "other"]
    assert panel.sessions.page_info.value.endswith("· 3 experiment sessions hidden")
    panel.sessions.show_experiments.value = True
    names = [r[0] for r in row_texts(panel)]
    at = names.index("analysis")
    assert names[at + 1] == "↳ batch: say {x} · echo"  # newest first within the group, as in the list
    assert sorted(names[at + 2:at + 4]) == ["↳ compare: echo", "↳ compare: offline"]
    assert "other" in names and len(names) == 5
    assert other.session_id in panel.sessions.shown_ids
    panel.close()
