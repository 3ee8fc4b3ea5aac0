import json
import subprocess
import sys
import textwrap

import pytest
from conftest import RecordingModel

from nbsessions import Agent, FunctionModel, Message, ModelError, RunStatus, StepRecord, TinyDb
from nbsessions.llm.base import ToolCall
from nbsessions.runs.core.tools import RunContext
from nbsessions.runs.team import Team
from nbsessions.runs.workflows.workflow import StepInput, Workflow, WorkflowError


def leader(*handoffs: tuple[str, str]):
    """A scripted leader: hands each task to a member in turn, then composes what the members said."""

    def reply(messages: list[Message], tools: list[dict]):
        results = [m.content for m in messages if m.role == "tool" and not m.from_history]
        if len(results) < len(handoffs):
            member, task = handoffs[len(results)]
            return ToolCall(f"call_{len(results)}", f"ask_{member}", json.dumps({"task": task}))
        return "composed: " + " | ".join(results)

    return FunctionModel(reply, id="leader")


def member(name: str, fn=None) -> Agent:
    return Agent(model=FunctionModel(fn or (lambda m: f"{name} did {m[-1].content}"), id=name), name=name)


def test_a_team_routes_to_members_and_stores_their_runs_nested(db):
    team = Team(members=[member("researcher"), member("writer")], model=leader(
        ("researcher", "find facts"), ("writer", "write it up")), db=db)
    run = team.run("report on tea")
    assert run.kind == "team" and run.status == RunStatus.completed
    assert run.content == "composed: researcher did find facts | writer did write it up"
    members = team.member_runs(run.run_id)
    assert [(r.model, r.input, r.parent_run_id) for r in members] == [
        ("researcher", "find facts", run.run_id), ("writer", "write it up", run.run_id)]
    assert all(r.session_id == run.session_id for r in members)
    own = sum(m.metrics.total_tokens for m in members)
    assert run.metrics.total_tokens > own > 0  # leader + members
    count, totals = db.session_totals(run.session_id)
    assert count == 1 and totals.total_tokens == run.metrics.total_tokens  # members counted once, in the team run


def test_team_history_holds_team_runs_only_and_state_is_shared(db):
    def remembering(messages):
        return "noted"

    writer = member("writer", remembering)
    team = Team(members=[writer], model=leader(("writer", "note it")), db=db, add_history_to_context=True,
                session_state={"topic": "tea"})
    first = team.run("one")
    seen = []
    team.run("two", session_id=first.session_id,
             model=FunctionModel(lambda m, t: seen.extend(m) or "done", id="leader"))
    assert [m.content for m in seen if m.from_history and m.role == "user"] == ["one"]
    assert team.get_session_state(first.session_id) == {"topic": "tea"}
    assert [r.input for r in team.get_runs(first.session_id) if r.parent_run_id is None] == ["one", "two"]


def test_a_failing_member_is_reported_to_the_leader_and_kept(db):
    def broken(messages):
        raise ModelError("500 server error", status_code=500)

    team = Team(members=[member("flaky", broken)], model=leader(("flaky", "try")), db=db)
    run = team.run("go")
    assert run.status == RunStatus.completed and "flaky failed: 500 server error" in run.content
    (child,) = team.member_runs(run.run_id)
    assert child.status == RunStatus.error


def test_team_arguments_are_checked():
    assert Team(members=[]).run("hi").content  # Agno: with no members the leader answers alone
    with pytest.raises(ValueError, match="mode"):
        Team(members=[member("a")], mode="vote")


def shout(step: StepInput) -> str:
    step.session_state["count"] = step.session_state.get("count", 0) + 1
    return step.previous_output.upper()


def test_a_workflow_passes_each_output_on_and_records_every_step(db):
    summarise = member("summariser", lambda m: f"summary of {m[-1].content}")
    flow = Workflow(steps=[shout, summarise, lambda s: f"{s.previous_output} (from {s.input})"], db=db,
                    name="pipeline")
    run = flow.run("raw text")
    assert run.kind == "workflow" and run.status == RunStatus.completed
    assert run.content == "summary of RAW TEXT (from raw text)"
    assert [(s.name, s.kind, s.status, s.output) for s in run.steps] == [
        ("shout", "function", "completed", "RAW TEXT"),
        ("summariser", "agent", "completed", "summary of RAW TEXT"),
        ("<lambda>", "function", "completed", "summary of RAW TEXT (from raw text)")]
    child = db.get_run(run.steps[1].run_id)
    assert child.parent_run_id == run.run_id and run.metrics.total_tokens == child.metrics.total_tokens
    assert flow.get_session_state(run.session_id) == {"count": 1}
    flow.run("again", session_id=run.session_id)
    assert flow.get_session_state(run.session_id) == {"count": 2}


def test_workflow_history_is_run_based(db):
    seen = []

    def remember(step: StepInput) -> str:
        seen.append(step.history)
        return f"out:{step.input}"

    flow = Workflow(steps=[remember], db=db)
    sid = flow.run("a").session_id
    flow.run("b", session_id=sid)
    assert seen == [[], [{"input": "a", "output": "out:a"}]]
    prompts = []
    agent_flow = Workflow(steps=[member("m", lambda m: prompts.append(m[-1].content) or "ok")], db=db,
                          add_workflow_history_to_steps=True)
    agent_flow.run("first", session_id=sid)
    assert "[Workflow Run-1]\nUser input: a\nWorkflow output: out:a" in prompts[0]  # Agno's context text
    assert prompts[0].startswith("<workflow_history_context>")
    assert prompts[0].endswith("</workflow_history_context>\nfirst")


def test_workflow_history_reaches_past_many_step_runs(db):
    """Five agent steps store five nested runs per workflow run: a fixed window of ``4 × count`` runs once
    found only the newest earlier run; the window now widens until ``count`` workflow runs are in it."""
    seen = []

    def remember(step: StepInput) -> str:
        seen.append([h["input"] for h in step.history])
        return "noted"

    flow = Workflow(steps=[*(member(f"m{i}") for i in range(5)), remember], db=db, num_history_runs=3)
    sid = flow.run("a").session_id
    for prompt in "bcd":
        flow.run(prompt, session_id=sid)
    assert seen[-1] == ["a", "b", "c"]


def test_a_failing_step_stops_the_run_names_it_and_keeps_earlier_outputs(db):
    def explode(step: StepInput) -> str:
        raise RuntimeError("disk full")

    flow = Workflow(steps=[shout, explode, shout], db=db)
    with pytest.raises(WorkflowError, match="step 'explode' failed: disk full") as caught:
        flow.run("data")
    stored = db.get_run(caught.value.run.run_id)
    assert stored.status == RunStatus.error
    assert [(s.name, s.status) for s in stored.steps] == [("shout", "completed"), ("explode", "error")]
    assert stored.steps[0].output == "DATA"


def test_a_failing_agent_step_keeps_its_error_run(db):
    def broken(messages):
        raise ModelError("429 rate limited: retry in 7 s", status_code=429)

    flow = Workflow(steps=[member("bad", broken)], db=db)
    with pytest.raises(WorkflowError, match="429 rate limited") as caught:
        flow.run("x")
    step = caught.value.run.steps[0]
    assert db.get_run(step.run_id).status == RunStatus.error


def test_workflow_arguments_are_checked():
    with pytest.raises(ValueError):
        Workflow(steps=[])
    with pytest.raises(TypeError, match="step must be"):
        Workflow(steps=["not a step"])
    with pytest.raises(ValueError, match="empty"):
        Workflow(steps=[shout]).run(" ")


def test_a_team_can_be_a_workflow_step(db):
    team = Team(members=[member("writer")], model=leader(("writer", "draft")), name="editorial")
    flow = Workflow(steps=[shout, team], db=db)
    run = flow.run("topic")
    assert run.content == "composed: writer did draft"
    team_run = db.get_run(run.steps[1].run_id)
    assert team_run.kind == "team" and team_run.parent_run_id == run.run_id
    assert [r.parent_run_id for r in db.list_runs(run.session_id) if r.model == "writer"] == [team_run.run_id]


SCRIPT = textwrap.dedent("""
    import sys
    from nbsessions import TinyDb
    from nbsessions.runs.workflows.workflow import Workflow

    def step(s):
        s.session_state["seen"] = s.session_state.get("seen", []) + [s.input]
        return f"{s.input} after {len(s.history)} earlier runs"

    flow = Workflow(steps=[step], db=TinyDb(sys.argv[1]))
    sid = sys.argv[3] if len(sys.argv) > 3 else None
    print(flow.run(sys.argv[2], session_id=sid).session_id)
""")


def test_workflow_runs_persist_with_history_across_processes(tmp_path):
    path = str(tmp_path / "flow.json")
    sid = subprocess.run([sys.executable, "-c", SCRIPT, path, "one"], capture_output=True, text=True,
                         check=True).stdout.strip()
    subprocess.run([sys.executable, "-c", SCRIPT, path, "two", sid], capture_output=True, text=True, check=True)
    db = TinyDb(path)
    runs = db.list_runs(sid)
    assert [r.content for r in runs] == ["one after 0 earlier runs", "two after 1 earlier runs"]
    assert db.get_session(sid).session_state == {"seen": ["one", "two"]}


def test_forking_keeps_member_runs_under_their_copied_team_run(db):
    team = Team(members=[member("writer")], model=leader(("writer", "draft")), db=db)
    first = team.run("one")
    team.run("two", session_id=first.session_id)
    fork = team.fork_session(first.session_id, run_id=first.run_id)
    runs = team.get_runs(fork.session_id)
    (copied_team,) = [r for r in runs if r.parent_run_id is None]
    (copied_member,) = [r for r in runs if r.parent_run_id is not None]
    assert copied_team.input == "one" and copied_member.parent_run_id == copied_team.run_id
    assert copied_member.agent_name == "writer"
    with pytest.raises(Exception, match="top-level"):
        team.fork_session(first.session_id, run_id=copied_member.run_id)


def test_forking_a_workflow_session_points_steps_at_the_copied_runs(db):
    flow = Workflow(steps=[shout, member("m")], db=db)
    run = flow.run("go")
    fork = flow.fork_session(run.session_id)
    copied = [r for r in flow.get_runs(fork.session_id) if r.kind == "workflow"][0]
    step_run = db.get_run(copied.steps[1].run_id)
    assert step_run.session_id == fork.session_id and step_run.parent_run_id == copied.run_id
    assert db.get_run(run.run_id).steps[1].run_id == run.steps[1].run_id != copied.steps[1].run_id  # source kept


def test_workflow_steps_are_records_that_survive_tinydb_and_are_stored_as_before(tmp_path):
    path = tmp_path / "flow.json"
    run = Workflow(steps=[shout, member("m")], db=TinyDb(str(path))).run("go")
    back = TinyDb(str(path)).get_run(run.run_id)
    assert back.steps == run.steps and all(isinstance(s, StepRecord) for s in back.steps)
    assert [(s.name, s.kind, s.input, s.status, s.output) for s in back.steps] == [
        ("shout", "function", "go", RunStatus.completed, "GO"), ("m", "agent", "GO", RunStatus.completed, "m did GO")]
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()[1:]]
    stored = [r["doc"] for r in rows if r["t"] == "runs" and r["id"] == run.run_id][-1]["steps"]
    assert stored == [{"name": "shout", "kind": "function", "input": "go", "status": "completed", "output": "GO"},
                      {"name": "m", "kind": "agent", "input": "GO", "status": "completed",
                       "run_id": run.steps[1].run_id, "output": "m did GO",
                       "metrics": run.steps[1].metrics}]  # the step run's metrics, as Agno keeps them
    assert back.step_results[1].metrics.output_tokens == run.steps[1].metrics["output_tokens"] > 0


def test_step_dicts_from_an_older_file_load_as_records(tmp_path):
    path = tmp_path / "old.json"
    db = TinyDb(str(path))
    session = Agent(db=db).create_session("old")
    old_steps = [{"name": "fetch", "kind": "agent", "input": "q", "status": "completed", "run_id": "r-child",
                  "output": "rows"},
                 {"name": "parse", "kind": "function", "input": "rows", "status": "error", "error": "bad row"}]
    doc = {"run_id": "r-old", "session_id": session.session_id, "user_id": session.user_id, "status": "error",
           "input": "q", "content": "", "messages": [], "kind": "workflow", "steps": old_steps}
    with open(path, "a", encoding="utf-8") as f:  # a line without crc, as another tool or older code writes it
        f.write(json.dumps({"t": "runs", "id": "r-old", "g": session.session_id, "doc": doc}) + "\n")
    run = TinyDb(str(path)).get_run("r-old")
    assert run.steps == [StepRecord(name="fetch", kind="agent", input="q", status=RunStatus.completed,
                                    output="rows", run_id="r-child"),
                         StepRecord(name="parse", kind="function", input="rows", status=RunStatus.error,
                                    error="bad row")]
    assert [s.to_dict() for s in run.steps] == old_steps
    assert [(o.step_name, o.success, o.error) for o in run.step_results] == [("fetch", True, None),
                                                                              ("parse", False, "bad row")]


def test_exports_put_member_runs_under_their_team_run(db):
    from nbsessions.explore.export import export_session

    team = Team(members=[member("writer")], model=leader(("writer", "draft it")), db=db)
    run = team.run("write a memo")
    text = export_session(db, run.session_id, "md")
    assert "- runs: 1" in text and "## 1. Prompt (team)" in text and "### writer: task" in text
    assert text.index("## 1. Prompt") < text.index("### writer: task")
    assert "parent_run_id" in export_session(db, run.session_id, "csv").splitlines()[0]


def test_a_workflow_run_is_history_for_a_later_agent_run(db):
    flow = Workflow(steps=[shout], db=db)
    run = flow.run("quiet words")
    later = RecordingModel("ok")
    Agent(model=later, db=db, add_history_to_context=True).run("and now?", session_id=run.session_id)
    assert [(m.role, m.content) for m in later.requests[0] if m.from_history] == [("user", "quiet words"),
                                                                                  ("assistant", "QUIET WORDS")]


def test_ctrl_c_in_a_workflow_stores_it_cancelled_with_the_steps_done(db):
    def interrupt(step: StepInput) -> str:
        raise KeyboardInterrupt

    flow = Workflow(steps=[shout, interrupt], db=db)
    with pytest.raises(KeyboardInterrupt):
        flow.run("data")
    (run,) = [r for r in db.list_runs(db.list_sessions()[0].session_id)]
    assert run.status == RunStatus.cancelled
    assert [(s.name, s.status) for s in run.steps] == [("shout", "completed"), ("interrupt", "cancelled")]


def test_rerunning_a_workflow_cell_supersedes_its_previous_run(db):
    flow = Workflow(steps=[shout], db=db)
    first = flow.run("one", cell_id="cell-1")
    second = flow.run("two", session_id=first.session_id, cell_id="cell-1")
    assert db.get_run(first.run_id).superseded_by == second.run_id
    assert [r.input for r in db.list_runs(first.session_id) if r.is_history] == ["two"]


def test_a_workflow_rebound_to_another_store_runs_there_and_keeps_its_settings(db):
    flow = Workflow(steps=[shout, member("m")], name="pipeline", session_state={"k": 1})
    rebound = flow.with_db(db)
    run = rebound.run("go")
    assert db.get_run(run.run_id).kind == "workflow" and flow.db.list_sessions() == []
    assert rebound.name == "pipeline" and db.get_session(run.session_id).session_state["k"] == 1


def test_state_keys_deleted_by_workflow_steps_and_their_agents_are_deleted_in_the_store(db):
    def drop_a(step: StepInput) -> str:
        del step.session_state["a"]
        return "dropped a"

    def forget_b(run_context: RunContext) -> str:
        """Forget b."""
        run_context.session_state.pop("b")
        return "ok"

    def calls_forget(messages: list[Message], tools: list[dict]):
        return "done" if messages[-1].role == "tool" else ToolCall("c1", "forget_b", "{}")

    seen = []
    forgetter = Agent(model=FunctionModel(calls_forget), tools=[forget_b])
    flow = Workflow(steps=[drop_a, forgetter, lambda s: seen.append(dict(s.session_state)) or "end"], db=db,
                    session_state={"a": 1, "b": 2, "c": 3})
    run = flow.run("go")
    assert run.status == RunStatus.completed
    assert seen == [{"c": 3}]
    assert db.get_session(run.session_id).session_state == {"c": 3}
