"""History's folds of nested runs — a team run's member runs, a workflow step's run — are widgets whose unfolding
the kernel hears: one the user unfolded stays unfolded, by run id, however History redraws. Their titles are
plain text, never parsed."""

from __future__ import annotations

from conftest import RecordingModel
from ipywidgets import HTML
from newsroom import newsroom
from xss import audit

from nbsessions import Agent, FunctionModel
from nbsessions.panel import SessionPanel
from nbsessions.panel.nested_html import Block, Fold
from nbsessions.panel.widget_tree import descendants
from nbsessions.runs.workflows.workflow import Workflow

HOSTILE = '<img src=x onerror="window.__xss=21">'


def folds(panel: SessionPanel) -> dict[str, Fold]:
    return {fold.key: fold for fold in panel.history.folds}


def test_an_unfolded_member_fold_stays_unfolded_as_runs_arrive_and_when_its_run_is_drawn_anew(db):
    agent = Agent(model=RecordingModel(), db=db)
    sid = agent.run("hello").session_id
    team = newsroom(db)
    first = team.run("report on tea", session_id=sid)
    panel = SessionPanel(agent)
    panel.follow(team)
    panel.select(sid)
    fold = folds(panel)[f"members:{first.run_id}"]
    assert not fold.unfolded and fold.titles[0].startswith("2 member runs: researcher, writer · ")
    assert "writer did write it up" in "".join(w.value for w in descendants(fold) if isinstance(w, HTML))
    fold.selected_index = 0  # what the browser sends when the user clicks the fold's title

    second = team.run("report on coffee", session_id=sid)  # arrives live: History redraws
    shown = folds(panel)
    assert set(shown) == {f"members:{first.run_id}", f"members:{second.run_id}"}
    assert shown[f"members:{first.run_id}"].unfolded and not shown[f"members:{second.run_id}"].unfolded

    panel.select(agent.create_session("elsewhere").session_id)  # another session shown, and back: drawn anew
    panel.select(sid)
    anew = folds(panel)[f"members:{first.run_id}"]
    assert anew is not fold and anew.unfolded  # a new widget, unfolded because the user left it so
    assert not folds(panel)[f"members:{second.run_id}"].unfolded

    anew.selected_index = None  # folded again by the user: that is remembered too
    panel.select(agent.create_session("elsewhere again").session_id)
    panel.select(sid)
    assert not any(f.unfolded for f in panel.history.folds)
    blocks = [w for w in descendants(panel.history.body) if isinstance(w, Block)]
    shown = [*blocks, *(b.layout for b in blocks), *panel.history.folds]
    panel.close()
    assert blocks and all(w.comm is None for w in shown)  # closed with the panel, their shared layouts too


def test_a_workflow_steps_run_and_the_members_inside_it_each_keep_their_own_fold(db):
    flow = Workflow(steps=[lambda s: s.input.upper(), newsroom(None)], db=db)
    run = flow.run("topic")
    panel = SessionPanel(db=db)
    panel.select(run.session_id)
    step_fold, = [f for f in panel.history.folds if f.key.startswith("run:")]
    members, = [f for f in panel.history.folds if f.key.startswith("members:")]
    assert members in descendants(step_fold)  # the team step's members fold inside the step's run
    assert step_fold.titles[0].startswith("its team run · leader ·") and not step_fold.unfolded
    step_fold.selected_index = 0

    flow.run("again", session_id=run.session_id)
    other = panel.agent.create_session("elsewhere").session_id
    panel.select(other)  # another session shown, and back: every widget drawn anew
    panel.select(run.session_id)
    assert len(panel.history.folds) == 4
    unfolded = [f.key for f in panel.history.folds if f.unfolded]
    assert unfolded == [step_fold.key]  # the step's run only; its members fold stays folded, and the new run's
    next(f for f in panel.history.folds if f.key == members.key).selected_index = 0
    panel.select(other)
    panel.select(run.session_id)
    assert sorted(f.key for f in panel.history.folds if f.unfolded) == sorted([step_fold.key, members.key])
    panel.close()


def test_fold_titles_are_plain_text_and_the_page_stays_inert(db):
    step = Agent(model=FunctionModel(lambda m: HOSTILE, id=HOSTILE), name="hostile")
    run = Workflow(steps=[step], db=db).run("go")
    panel = SessionPanel(db=db)
    panel.select(run.session_id)
    fold, = panel.history.folds
    assert fold.titles[0].startswith(f"its agent run · {HOSTILE} · ")  # shown as the text it is (textContent)
    assert audit(panel.history.markup).problems == []
    assert "&lt;img src=x" in panel.history.markup


def test_a_session_without_nested_runs_draws_each_run_as_one_html_widget_as_before(db):
    agent = Agent(model=RecordingModel(), db=db)
    first = agent.run("one")
    agent.run("two", session_id=first.session_id)
    panel = SessionPanel(agent)
    panel.select(first.session_id)
    assert panel.history.folds == []
    assert [[type(w).__name__ for w in entry] for entry in panel.history.entries] == [
        ["HTML", "SentView"], ["HTML", "SentView"]]
    panel.close()


def test_delete_counts_the_top_level_runs_history_shows_not_the_member_runs_inside_them(db):
    team = newsroom(db)
    sid = team.run("report on tea").session_id  # one team run, two member runs nested in it
    panel = SessionPanel(Agent(model=RecordingModel(), db=db))
    panel.select(sid)
    panel.actions.delete.click()
    assert "and its 1 run? " in panel.actions.confirm_text.value
    team.run("report on coffee", session_id=sid)
    panel.select(sid)
    panel.actions.delete.click()
    assert "and its 2 runs? " in panel.actions.confirm_text.value
    panel.close()


def test_estimated_token_counts_carry_the_tilde_in_run_headers_member_lines_and_step_runs(db):
    flow = Workflow(steps=[newsroom(None)], db=db)  # every model here is a FunctionModel: counts are estimated
    run = flow.run("topic")
    team_run, = [r for r in db.list_runs(run.session_id) if r.kind == "team"]
    members = [r for r in db.list_runs(run.session_id) if r.parent_run_id == team_run.run_id]
    assert team_run.metrics.tokens_estimated and all(m.metrics.tokens_estimated for m in members)
    panel = SessionPanel(db=db)
    panel.select(run.session_id)
    shown = "".join(w.value for w in descendants(panel.history.body) if isinstance(w, HTML))
    m = run.metrics
    assert f"~{m.input_tokens:,} in / ~{m.output_tokens:,} out tokens" in shown  # as the cell's footer writes it
    step_fold, = [f for f in panel.history.folds if f.key.startswith("run:")]
    assert step_fold.titles[0].startswith(f"its team run · leader · ~{team_run.metrics.total_tokens:,} tokens · ")
    members_fold, = [f for f in panel.history.folds if f.key.startswith("members:")]
    summed = sum(r.metrics.total_tokens for r in members)
    assert members_fold.titles[0] == f"2 member runs: researcher, writer · ~{summed:,} tokens"
    for member_run in members:
        assert f"~{member_run.metrics.input_tokens:,} in / ~{member_run.metrics.output_tokens:,} out" in shown
    panel.close()
