"""The panel's "Sent" view: under each run of History (a paused run's card too), folded, exactly what the run sent
— inert. One the user unfolded stays unfolded, by run id, however History redraws."""

from __future__ import annotations

import json

from conftest import RecordingModel
from notebook_shell import PAYLOAD
from xss import ActiveContent

from nbsessions import Agent, FunctionModel, RunOutput, RunStatus
from nbsessions.llm.base import ToolCall
from nbsessions.panel import SessionPanel
from nbsessions.panel.sent_view import SentView
from nbsessions.panel.widget_tree import descendants
from nbsessions.runs.core.tools import tool


def by_run(panel: SessionPanel) -> dict[str, SentView]:
    return {view.run_id: view for view in panel.history.sent_views}


def unfold(view: SentView) -> None:
    view.selected_index = 0  # what the browser sends when the user clicks the Sent line


def test_each_run_has_a_folded_sent_view_naming_the_runs_its_history_came_from(db):
    agent = Agent(model=RecordingModel(), db=db, add_history_to_context=True,
                  instructions="Be brief.")
    first = agent.run("one")
    second = agent.run("two", session_id=first.session_id)
    panel = SessionPanel(agent)
    panel.select(first.session_id)
    views = panel.history.sent_views
    assert [v.run_id for v in views] == [second.run_id, first.run_id]  # under each run, newest first
    assert not any(v.unfolded for v in views)  # folded by default
    assert views[1].line.startswith("Sent · 2 messages (0 from history) · ~")
    assert views[0].line.startswith("Sent · 4 messages (2 from history) · ~")
    body = views[0].body
    assert body.count(f"#1 {first.run_id[:8]}") == 2  # the question and the reply of run #1, in run #2's view
    assert "Be brief." in body and body in panel.history.markup


def test_a_folded_sent_view_holds_only_its_line_and_draws_its_context_when_first_unfolded(db):
    agent = Agent(model=RecordingModel(), db=db, add_history_to_context=True, instructions="Be brief.")
    first = agent.run("one")
    sid = first.session_id
    second = agent.run("two", session_id=sid)
    panel = SessionPanel(agent)
    panel.select(sid)
    views = panel.history.sent_views
    blank = views[0].children[0]
    assert [v.children for v in views] == [(blank,), (blank,)] and blank.value == ""  # one empty widget for all
    assert "Be brief." in views[0].body  # rendered when asked for, not before
    unfold(views[0])
    inside, = views[0].children
    assert inside is not blank and inside.value == views[0].body and blank.value == ""
    assert views[1].children == (blank,)  # still folded: nothing drawn for it

    agent.run("three", session_id=sid)  # arrives live, and a session switch and back: drawn again each time
    panel.select(agent.create_session("elsewhere").session_id)
    panel.select(sid)
    views = by_run(panel)
    assert views[second.run_id].unfolded and views[second.run_id].children[0].value == views[second.run_id].body
    assert "Be brief." in views[second.run_id].children[0].value
    shown = [v.children[0].value for v in views.values() if v.run_id != second.run_id]
    assert shown == ["", ""]  # the other runs' views, folded: no context in the page, whichever slot they took
    panel.close()


def test_a_hostile_history_stays_text_in_the_sent_view(db):
    agent = Agent(model=RecordingModel(PAYLOAD), db=db, add_history_to_context=True)
    first = agent.run(PAYLOAD)
    agent.run("next", session_id=first.session_id)
    panel = SessionPanel(agent)
    panel.select(first.session_id)
    views = "".join(view.body for view in panel.history.sent_views)
    checker = ActiveContent()
    checker.feed(views)
    assert checker.found == [] and views.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 3


def test_runs_that_sent_nothing_get_no_sent_view(db):
    agent = Agent(model=RecordingModel("x"), db=db)
    session = agent.create_session("s")
    db.upsert_run(RunOutput(session_id=session.session_id, status=RunStatus.error, input="never sent"))
    panel = SessionPanel(agent)
    panel.select(session.session_id)
    assert panel.history.sent_views == [] and "never sent" in panel.history.markup


def test_variants_of_one_prompt_show_once_the_context_they_all_sent(db):
    agent = Agent(model=RecordingModel("an answer"), db=db, add_history_to_context=True)
    earlier = agent.run("setup")
    agent.run("question", session_id=earlier.session_id)
    agent.regenerate(earlier.session_id, model=RecordingModel("another answer"))
    panel = SessionPanel(agent)
    panel.select(earlier.session_id)
    group, = panel.history.variant_groups
    view, = [w for w in descendants(group) if isinstance(w, SentView)]
    assert group.children[1] is view  # under the prompt, above the columns
    assert view.line.startswith("Sent · 3 messages (2 from history)")
    assert f"#1 {earlier.run_id[:8]}" in view.body


def test_an_unfolded_sent_view_stays_unfolded_as_runs_arrive_and_when_its_run_is_drawn_anew(db):
    agent = Agent(model=RecordingModel(), db=db, add_history_to_context=True)
    first = agent.run("one", cell_id="cell-1")
    sid = first.session_id
    second = agent.run("two", session_id=sid)
    panel = SessionPanel(agent)
    panel.select(sid)
    view = by_run(panel)[first.run_id]
    unfold(view)

    third = agent.run("three", session_id=sid)  # arrives live: History redraws
    views = by_run(panel)
    assert set(views) == {first.run_id, second.run_id, third.run_id}
    assert [views[r].unfolded for r in (first.run_id, second.run_id, third.run_id)] == [True, False, False]

    agent.run("one, again", session_id=sid, cell_id="cell-1")  # the cell re-run: run #1 now reads superseded
    anew = by_run(panel)[first.run_id]
    assert anew.unfolded and "superseded" in panel.history.markup  # drawn anew, unfolded as the user left it
    panel.select(agent.create_session("elsewhere").session_id)
    panel.select(sid)
    assert [v.run_id for v in panel.history.sent_views if v.unfolded] == [first.run_id]

    by_run(panel)[first.run_id].selected_index = None  # folded again by the user: that is remembered too
    agent.run("five", session_id=sid)
    panel.select(agent.create_session("elsewhere again").session_id)
    panel.select(sid)
    assert not any(v.unfolded for v in panel.history.sent_views)
    panel.close()


def test_a_paused_runs_card_has_the_same_sent_view_kept_unfolded_by_run_id(db):
    @tool(requires_confirmation=True)
    def drop_table(name: str) -> str:
        """Drop a table."""
        return f"dropped {name}"

    def model(messages, tools):
        if messages[-1].content == "drop the sales table":
            return [ToolCall("call_1", "drop_table", json.dumps({"name": "sales"}))]
        return "done"

    agent = Agent(model=FunctionModel(model), db=db, tools=[drop_table], add_history_to_context=True,
                  instructions="Be careful.")
    paused = agent.run("drop the sales table")
    assert paused.status == RunStatus.paused
    panel = SessionPanel(agent)
    panel.select(paused.session_id)
    card, = panel.history.paused
    view, = [w for w in card.children if isinstance(w, SentView)]
    assert card.children[1] is view and view.run_id == paused.run_id and not view.unfolded  # under the run
    assert view.line.startswith("Sent · 2 messages (0 from history)")
    assert "Be careful." in view.body and "drop the sales table" in view.body
    unfold(view)

    agent.run("something else", session_id=paused.session_id)  # a run arrives while the card is open
    card, = panel.history.paused
    assert [w for w in card.children if isinstance(w, SentView)] == [view] and view.unfolded
    panel.select(agent.create_session("elsewhere").session_id)
    panel.select(paused.session_id)
    card, = panel.history.paused
    assert [w.unfolded for w in card.children if isinstance(w, SentView)] == [True]
    panel.close()
