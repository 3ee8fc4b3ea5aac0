"""Nested runs in the sidebar's API (real Jupyter Server): a team run's member runs and a workflow run's steps come
folded inside their run's row, as the panel and ``%agent history`` show them, and a page still counts top-level
runs only and reads only what it returns."""

from __future__ import annotations

from newsroom import newsroom as team_of

from nbsessions import Agent, TinyDb
from nbsessions.db.locate import db_path_for
from nbsessions.runs.team import Team
from nbsessions.runs.workflows.workflow import Workflow
from server_api.test_sidebar_api import get, write_notebook


def newsroom(db) -> Team:
    return team_of(db, shown="**{name}**")  # Markdown in the members' replies, rendered by the sidebar


async def test_a_team_runs_member_runs_come_inside_its_row_with_task_reply_and_spelled_metrics(jp_fetch, jp_root_dir):
    notebook = write_notebook(jp_root_dir)
    db = TinyDb(db_path_for(notebook))
    run = newsroom(db).run("report on tea")
    db.close()
    body = await get(jp_fetch, "sessions", run.session_id, "runs", path="analysis.ipynb")
    team, = body["runs"]  # the member runs are not rows of their own
    assert (team["kind"], team["input"], team["nested_text"], team["steps"]) == ("team", "report on tea",
                                                                                 "2 member runs", [])
    members = team["nested"]
    assert [(m["agent_name"], m["model"], m["input"], m["content"], m["status"]) for m in members] == [
        ("researcher", "researcher-model", "find facts", "**researcher** did find facts", "completed"),
        ("writer", "writer-model", "write it up", "**writer** did write it up", "completed")]
    for member in members:
        assert member["tokens_text"] == f"~{member['total_tokens']:,}" and member["cost_text"] == "cost n/a"
        assert member["duration_text"].endswith(("ms", " s")) and member["nested"] == []
    assert body["session"]["runs"] == 1


async def test_a_workflow_runs_steps_come_in_order_each_with_the_run_it_made(jp_fetch, jp_root_dir):
    notebook = write_notebook(jp_root_dir)
    db = TinyDb(db_path_for(notebook))
    run = Workflow(steps=[lambda s: s.input.upper(), newsroom(None)], db=db).run("topic")
    db.close()
    body = await get(jp_fetch, "sessions", run.session_id, "runs", path="analysis.ipynb")
    flow, = body["runs"]
    assert (flow["kind"], flow["steps_text"], flow["nested"], flow["nested_text"]) == ("workflow", "2 steps", [], "")
    upper, team_step = flow["steps"]
    assert (upper["number"], upper["kind"], upper["status"], upper["output"], upper["run"]) == (
        1, "function", "completed", "TOPIC", None)
    assert (team_step["number"], team_step["kind"], team_step["status"]) == (2, "team", "completed")
    team = team_step["run"]  # the team step's run, and inside it that team's member runs: nested twice
    assert (team["kind"], team["input"], team["nested_text"]) == ("team", "TOPIC", "2 member runs")
    assert [m["input"] for m in team["nested"]] == ["find facts", "write it up"]


async def test_a_page_counts_top_level_runs_and_carries_the_nested_runs_of_its_runs_only(jp_fetch, jp_root_dir):
    notebook = write_notebook(jp_root_dir)
    db = TinyDb(db_path_for(notebook))
    team = newsroom(db)
    session = team.run("topic 0").session_id
    for i in range(1, 4):
        team.run(f"topic {i}", session_id=session)
    db.close()
    page = await get(jp_fetch, "sessions", session, "runs", path="analysis.ipynb", last="2")
    assert [r["input"] for r in page["runs"]] == ["topic 3", "topic 2"] and page["more"] is True
    assert all(len(r["nested"]) == 2 for r in page["runs"])
    older = await get(jp_fetch, "sessions", session, "runs", path="analysis.ipynb", last="4")
    assert [r["input"] for r in older["runs"]] == [f"topic {i}" for i in (3, 2, 1, 0)] and older["more"] is False
    assert all(r["nested_text"] == "2 member runs" for r in older["runs"])


def test_a_page_reads_a_window_of_the_newest_runs_not_the_whole_session(tmp_path):
    """The page's runs and their members are read from the newest end: 200 team runs, a page of 2 builds a few."""
    from nbsessions.server.views import list_runs

    db = TinyDb(tmp_path / "s.json")
    team = newsroom(db)
    session = team.run("topic 0").session_id
    for i in range(1, 200):
        team.run(f"topic {i}", session_id=session)
    built: list[int] = []
    plain = db.list_runs

    def counted(session_id, **options):
        runs = plain(session_id, **options)
        built.append(len(runs))
        return runs
    db.list_runs = counted
    page = list_runs(Agent(db=db), session, 2)
    db.close()
    assert [r["input"] for r in page["runs"]] == ["topic 199", "topic 198"]
    assert [len(r["nested"]) for r in page["runs"]] == [2, 2]
    assert sum(built) < 20, built  # 600 runs stored; the page and its members are 6
