"""Teams, workflows and registered agents in a notebook: ``%agent register``, ``%%agent --team/--workflow/--agent``
and ``%agent history`` with nested runs, on a real IPython shell with scripted models."""

from __future__ import annotations

import json
import re

import pytest
from conftest import RecordingModel
from notebook_shell import PAYLOAD, Notebook, one_red_line, refused, stored_runs
from xss import ActiveContent

from nbsessions import Agent, FunctionModel, InMemoryDb, Message, ModelError, RunStatus, Team, TinyDb
from nbsessions.llm.base import ToolCall
from nbsessions.magic.cellrun import CellInterrupted
from nbsessions.runs.workflows.workflow import StepInput, Workflow


def leader(*handoffs: tuple[str, str], seen: list | None = None):
    """A scripted leader: hands each task to a member in turn, then streams what the members said."""

    def reply(messages: list[Message], tools: list[dict]):
        if seen is not None:
            seen.append(messages)
        results = [m.content for m in messages if m.role == "tool" and not m.from_history]
        if len(results) < len(handoffs):
            member, task = handoffs[len(results)]
            return ToolCall(f"call_{len(results)}", f"ask_{member}", json.dumps({"task": task}))
        return iter(["composed: ", *(f"{r} | " for r in results[:-1]), results[-1] if results else ""])

    return FunctionModel(reply, id="leader")


def member(name: str, fn=None) -> Agent:
    return Agent(model=FunctionModel(fn or (lambda m: f"{name} did {m[-1].content}"), id=f"{name}-model"),
                 name=name)


def research_team(**members) -> Team:
    writer = members.get("writer") or member("writer")
    return Team(members=[member("researcher"), writer], model=leader(("researcher", "find facts"),
                                                                      ("writer", "write it up")))


def shout(step: StepInput) -> str:
    step.session_state["shouted"] = step.session_state.get("shouted", 0) + 1
    return step.previous_output.upper()


def sign(step: StepInput) -> str:
    return f"{step.previous_output} (signed, from {step.input!r})"


def explode(step: StepInput) -> str:
    raise RuntimeError("disk full")


def pipeline(*steps) -> Workflow:
    summariser = member("summariser", lambda m: f"summary of {m[-1].content}")
    return Workflow(steps=list(steps) or [shout, summariser, sign], name="pipeline")


@pytest.fixture
def nb(nb):
    nb.run("%config AgentMagics.update_interval = 0")
    return nb


def registered(nb: Notebook, **objects) -> Notebook:
    nb.shell.push(objects)
    for name in objects:
        ran = nb.run(f"%agent register {name} {name}")
        assert ran.result.success, ran.stderr
    return nb


def safe(fragment: str) -> bool:
    parser = ActiveContent()
    parser.feed(fragment)
    return parser.found == []


def plain(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def db_runs(workdir):
    return stored_runs(workdir / "nbsessions.json")


# -- %agent register -----------------------------------------------------------------------------------
def test_register_lists_replaces_and_removes_teams_workflows_and_agents(nb, workdir):
    assert "nothing registered" in nb.run("%agent register").stdout
    registered(nb, research=research_team(), flow=pipeline(), critic=member("critic"))
    listing = nb.run("%agent register").stdout
    assert "research: team of researcher, writer (coordinate; leader leader) — %%agent --team research" in listing
    assert "flow: workflow: shout → summariser → sign — %%agent --workflow flow" in listing
    assert "critic: agent critic on critic-model — %%agent --agent critic" in listing
    assert nb.run("%agent register research flow").stdout.startswith("replaced research: workflow")
    assert nb.run("%agent register --remove critic").stdout.strip() == "removed agent critic"
    listing = nb.run("%agent register").stdout
    assert "critic" not in listing and "research: workflow" in listing
    assert not (workdir / "nbsessions.json").exists()  # registering writes nothing
    assert "registered:  research (workflow), flow (workflow)\n" in nb.run("%agent").stdout


@pytest.mark.parametrize(("line", "message"), [
    ("%agent register research numbers", "UsageError: %agent register research numbers: numbers is a list, "
                                         "not a Team, a Workflow or an Agent"),
    ("%agent register research nowhere", "UsageError: %agent register research nowhere: no variable 'nowhere'"),
    ("%agent register research", "UsageError: give the variable to register"),
    ("%agent register '<b>' team", "UsageError: %agent register: '<b>' is not a usable name"),
    ("%agent register --remove ghost", "UsageError: %agent register --remove ghost: nothing is registered"),
    ("%agent register x team --remove y", "UsageError: use either %agent register NAME VAR or"),
])
def test_bad_registrations_are_one_red_line(nb, line, message):
    nb.shell.push({"numbers": [1, 2], "team": research_team()})
    ran = nb.run(line)
    assert not ran.result.success and one_red_line(ran).startswith(message)
    assert "nothing registered" in nb.run("%agent register").stdout


# -- %%agent --team --------------------------------------------------------------------------------------
def test_a_team_cell_streams_the_reply_with_the_footer_and_a_member_line(nb, workdir):
    registered(nb, research=research_team())
    nb.shell.push({"topic": "green tea"})
    ran = nb.run("%%agent --team research --new tea\nReport on {topic}.")
    assert ran.result.success, ran.stderr
    reply = [o for o in ran.outputs if "display_id" in o.transient]
    assert len({o.transient["display_id"] for o in reply}) == 1 and len(reply) >= 4  # streamed, in place
    team_run = next(r for r in db_runs(workdir) if r.kind == "team")
    members = [r for r in db_runs(workdir) if r.parent_run_id == team_run.run_id]
    assert team_run.input == "Report on green tea." and team_run.status == RunStatus.completed
    assert team_run.metrics.tokens_estimated  # scripted models count from the text
    footer = (f"— leader · tea ({team_run.session_id[:8]}) · ~{team_run.metrics.input_tokens} in / "
              f"~{team_run.metrics.output_tokens} out tokens")
    assert reply[-1].data["text/plain"].startswith(
        f"composed: researcher did find facts | writer did write it up\n\n{footer}")
    assert team_run.metrics.total_tokens > sum(m.metrics.total_tokens for m in members) > 0  # leader + members
    line = ran.outputs[-1].data["text/plain"]
    assert line == (f"members: researcher · ~{members[0].metrics.total_tokens} tokens · completed | "
                    f"writer · ~{members[1].metrics.total_tokens} tokens · completed")
    assert "members: researcher" in ran.outputs[-1].data["text/html"]


def test_registered_objects_run_on_the_notebooks_store_session_and_user(nb, workdir):
    own_db = InMemoryDb()
    team = Team(members=[member("researcher")], model=leader(("researcher", "look")), db=own_db)
    registered(nb, research=team)
    nb.run("%config AgentMagics.user = 'ada'")
    nb.run("%%agent --new main\nHello")  # the notebook's own model starts the active session
    ran = nb.run("%%agent --team research\nAsk the team")
    assert ran.result.success, ran.stderr
    assert own_db.list_sessions() == []  # nothing in the store the team was built with
    runs = db_runs(workdir)
    assert {r.session_id for r in runs} == {nb.magics.notebook.active_session().session_id}
    assert {r.user_id for r in runs} == {"ada"}
    assert [r.kind for r in runs] == ["agent", "team", "agent"]  # notebook cell, team run, its member
    other = nb.run("%%agent --team research --new side\nSomewhere else")
    assert "side (" in other.outputs[-2].data["text/plain"]
    nb.run("%agent db other.json")
    nb.run("%%agent --team research --new there\nIn the other file")
    with TinyDb(workdir / "other.json") as db:
        assert [r.kind for s in db.list_sessions() for r in db.list_runs(s.session_id)] == ["team", "agent"]


def test_team_cells_continue_the_conversation_and_history_shows_members_folded(nb, workdir):
    seen: list = []
    team = Team(members=[member("researcher")], model=leader(("researcher", "dig"), seen=seen))
    registered(nb, research=team)
    nb.run("%%agent --new chat\nFirst question")
    nb.run("%%agent --team research\nSecond question")
    nb.run("%%agent --team research\nThird question")
    history = [(m.role, m.content) for m in seen[-1] if m.from_history]
    assert ("user", "First question") in history and ("user", "Second question") in history
    shown = nb.run("%agent history").outputs[0].data
    top = [line for line in shown["text/plain"].splitlines() if line.startswith("── ")]
    assert len(top) == 3 and "team · completed" in top[0] and "team · completed" in top[1]  # newest first
    nested = [line for line in shown["text/plain"].splitlines() if line.startswith("    ── researcher · ")]
    assert len(nested) == 2  # one member run under each team run, indented, named
    assert shown["text/html"].count("<details><summary") == 2 and "1 member run<" in shown["text/html"]
    newest = nb.run("%agent history 1").outputs[0].data["text/plain"]
    assert newest.count("\n── ") + newest.startswith("── ") == 1 and "Third question" in newest
    assert "Second question" not in newest and "researcher did dig" in newest


def test_delete_counts_a_team_run_once_not_with_its_member_runs(nb, workdir):
    registered(nb, research=research_team())
    nb.run("%%agent --team research --new crew\nReport on tea")
    assert len(db_runs(workdir)) == 3  # the team run and its two member runs
    status = nb.run("%agent").stdout
    assert re.search(r"^session: +crew \(\w{8}\), 1 run$", status, re.M), status
    assert nb.run("%agent use crew").stdout.strip().endswith(", 1 run")
    assert ": 1 run, 1 completed\n" in nb.run("%agent metrics").stdout
    assert "(1 run) to " in nb.run("%agent export md").stdout
    assert "and its 1 run; nothing was deleted" in nb.run("%agent delete crew").stdout
    assert nb.run("%agent delete crew --yes").stdout.strip().endswith("and its 1 run")
    assert db_runs(workdir) == []


def test_a_failing_member_shows_in_the_member_line(nb, workdir):
    def broken(messages):
        raise ModelError("500 server error", status_code=500)

    registered(nb, flaky=Team(members=[member("helper", broken)], model=leader(("helper", "try"))))
    ran = nb.run("%%agent --team flaky\nGo")
    assert ran.result.success
    assert ran.outputs[-1].data["text/plain"].startswith("members: helper · ") and \
        ran.outputs[-1].data["text/plain"].endswith(" · error")
    assert "helper failed: 500 server error" in ran.outputs[-2].data["text/plain"]


def test_a_failing_leader_is_one_red_line_stored_as_error_with_the_member_line(nb, workdir):
    def leader_then_fail(messages, tools):
        if any(m.role == "tool" for m in messages):
            raise ModelError("429 rate limited: retry in 7 s", status_code=429)
        return ToolCall("c1", "ask_researcher", json.dumps({"task": "look"}))

    team = Team(members=[member("researcher")], model=FunctionModel(leader_then_fail, id="leader"))
    registered(nb, research=team)
    ran = nb.run("%%agent --team research\nGo")
    assert one_red_line(ran) == "ModelError: 429 rate limited: retry in 7 s"
    assert ran.outputs[-1].data["text/plain"].startswith("members: researcher · ")
    assert [(r.kind, r.status) for r in db_runs(workdir)] == [("team", RunStatus.error),
                                                              ("agent", RunStatus.completed)]


def test_a_registered_agent_runs_with_its_own_model_and_instructions(nb, workdir):
    critic = Agent(model=RecordingModel(id="critic"), instructions="Be harsh.", name="critic")
    registered(nb, critic=critic)
    ran = nb.run("%%agent --agent critic --new review -o crit\nMy essay")
    assert ran.result.success
    assert critic.model.prompts == [["Be harsh.", "My essay"]]
    assert ran.outputs[-1].data["text/plain"].startswith("echo My essay\n\n— critic · review (")
    assert nb.shell.user_ns["crit"].run_id == db_runs(workdir)[0].run_id


# -- %%agent --workflow ------------------------------------------------------------------------------------
def test_a_workflow_cell_shows_each_step_the_final_output_and_a_footer(nb, workdir):
    registered(nb, flow=pipeline())
    ran = nb.run("%%agent --workflow flow --new wf -o out --state '{\"shouted\": 10}'\nraw text")
    assert ran.result.success, ran.stderr
    assert ran.outputs[0].data["text/plain"].startswith("… workflow flow: 3 steps · wf (")  # while it runs
    frames = [o.data["text/plain"] for o in ran.outputs[1:-1]]
    assert [f.count("\nstep ") + 1 for f in frames] == [1, 2, 3]  # each step shows as it finishes...
    assert all(f.endswith(" · running") for f in frames) and "\nstep 2" not in frames[0]
    assert len({o.transient["display_id"] for o in ran.outputs}) == 1  # ...in the one output, updated in place
    final = ran.outputs[-1].data["text/plain"]
    run = nb.shell.user_ns["out"]
    assert final.startswith("step 1 · shout · function · completed\n    RAW TEXT\n"
                            "step 2 · summariser · agent · completed\n    summary of RAW TEXT\n"
                            "step 3 · sign · function · completed\n")
    assert "\n\nsummary of RAW TEXT (signed, from 'raw text')\n\n— workflow pipeline · wf (" in final
    assert final.endswith(f"3/3 steps · ~{run.metrics.input_tokens} in / ~{run.metrics.output_tokens} out tokens"
                          f" · {final.split(' · ')[-2]} · cost n/a")
    assert run.metrics.total_tokens > 0 and run.metrics.duration is not None
    stored = db_runs(workdir)
    assert [(r.kind, r.parent_run_id) for r in stored] == [("workflow", None), ("agent", run.run_id)]
    assert stored[0].content == run.content and stored[0].session_id == \
        nb.magics.notebook.active_session().session_id
    assert nb.magics.notebook.agent.get_session_state(run.session_id) == {"shouted": 11}
    html = ran.outputs[-1].data["text/html"]
    assert "<b>final output</b>" in html and "step 2 · summariser · agent · completed" in html
    result = nb.run("%%agent --workflow flow --result\nagain")
    assert result.result.result == "summary of AGAIN (signed, from 'again')"


def test_a_failing_step_is_one_red_line_and_earlier_outputs_stay_visible(nb, workdir):
    registered(nb, flow=pipeline(shout, explode, sign))
    ran = nb.run("%%agent --workflow flow --new broken -o failed\nsome data")
    assert one_red_line(ran) == "WorkflowError: step 'explode' failed: disk full"
    assert nb.shell.user_ns["failed"].status == RunStatus.error
    shown = ran.outputs[-1].data["text/plain"]
    assert "step 1 · shout · function · completed\n    SOME DATA" in shown
    assert "step 2 · explode · function · error\n  error: disk full" in shown and "sign" not in shown
    assert "· 1/3 steps ·" in shown and shown.endswith("error: step 'explode' failed: disk full")
    (run,) = db_runs(workdir)
    assert run.status == RunStatus.error and run.steps[0].output == "SOME DATA"
    history = nb.run("%agent history").outputs[0].data
    assert "workflow · error" in history["text/plain"] and "SOME DATA" in history["text/plain"]
    assert "error: disk full" in history["text/plain"] and "step 'explode' failed" in history["text/plain"]
    assert "· 1 step completed ·" in history["text/plain"]
    assert "SOME DATA" in history["text/html"]


def interrupt(step: StepInput) -> str:
    raise KeyboardInterrupt


def test_ctrl_c_in_a_workflow_keeps_a_cancelled_run_with_the_steps_that_finished(nb, workdir):
    registered(nb, flow=pipeline(shout, interrupt, sign))
    ran = nb.run("%%agent --workflow flow --new stop\nsome data")
    assert isinstance(ran.result.error_in_exec, CellInterrupted)
    assert isinstance(ran.result.error_in_exec, KeyboardInterrupt)  # "Run all" stops here
    assert one_red_line(ran).endswith("interrupted: the workflow run is kept as cancelled, with the steps that "
                                      "finished")
    (run,) = db_runs(workdir)
    assert run.status == RunStatus.cancelled and run.steps[0].output == "SOME DATA"
    assert [s.status for s in run.steps] == ["completed", "cancelled"]
    assert "step 2 · interrupt · function · cancelled" in ran.outputs[-1].data["text/plain"]


def test_workflow_steps_and_team_steps_nest_in_history(nb, workdir):
    team = Team(members=[member("researcher")], model=leader(("researcher", "check it")), name="desk")
    registered(nb, flow=pipeline(shout, team))
    nb.run("%%agent --workflow flow --new nested\nquestion")
    shown = nb.run("%agent history").outputs[0].data
    lines = shown["text/plain"].splitlines()
    assert [line for line in lines if line.startswith("── ")] == [line for line in lines
                                                                   if line.startswith("── ") and "workflow" in line]
    assert "step 2 · desk · team · completed" in shown["text/plain"]
    assert any(line.startswith("        ── researcher · ") for line in lines)  # member under the team step
    runs = db_runs(workdir)
    assert [r.kind for r in runs] == ["workflow", "team", "agent"] and runs[2].parent_run_id == runs[1].run_id


# -- bad input -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("cell", "message"), [
    ("%%agent --team ghost\nHi", "UsageError: --team ghost: nothing is registered as 'ghost' (registered: "
                                 "research (team), flow (workflow))"),
    ("%%agent --workflow research\nHi", "UsageError: --workflow research: 'research' is registered as a team: "
                                        "use --team research"),
    ("%%agent --team research --workflow flow\nHi", "UsageError: use one of --team and --workflow"),
    ("%%agent --team research -m gpt-5.2\nHi", "UsageError: -m does not apply to --team research"),
    ("%%agent --team research --system 'be brief'\nHi", "UsageError: --system does not apply to --team"),
    ("%%agent --team research --compare a,b\nHi", "UsageError: --compare does not apply to --team research"),
    ("%%agent --workflow flow --no-stream\nHi", "UsageError: --stream/--no-stream does not apply to --workflow"),
    ("%%agent --workflow flow --history 2\nHi", "UsageError: --history does not apply to --workflow flow"),
    ("%%agent --team research\nAbout {undefined_thing}", "UsageError: unknown name 'undefined_thing'"),
    ("%%agent --workflow flow -s nosuch\nHi", "UsageError: no session 'nosuch'"),
    ("%%agent --workflow flow\n  \n", "UsageError: the cell has no prompt"),
    ("%%agent --team research -u bob\nHi", "UsageError: that session belongs to another user"),  # not named
])
def test_bad_team_and_workflow_cells_are_one_red_line_and_write_nothing(nb, workdir, cell, message):
    registered(nb, research=research_team(), flow=pipeline())
    nb.run("%%agent --new first -u ada\nHello")
    nb.run("%config AgentMagics.user = 'ada'")
    assert refused(nb, cell, workdir / "nbsessions.json").startswith(message)


# -- untrusted text ------------------------------------------------------------------------------------------
def test_payloads_in_member_replies_step_outputs_and_names_are_inert_everywhere(nb, workdir):
    nasty = member("nasty", lambda m: PAYLOAD)
    registered(nb, research=Team(members=[nasty], model=leader(("nasty", PAYLOAD))),
               flow=Workflow(steps=[lambda s: PAYLOAD, Agent(model=RecordingModel(PAYLOAD, id="m"),
                                                             name="<img src=x onerror=alert(9)>")],
                             name="<script>alert(8)</script>"),
               bad=Workflow(steps=[_raise_payload]))
    published = []
    for cell in ("%%agent --team research --new x\nGo", "%%agent --workflow flow\nGo",
                 "%%agent --workflow bad\nGo", "%agent history"):
        ran = nb.run(cell)
        published += [o.data.get("text/html", "") for o in ran.outputs]
    assert len(published) > 6
    assert all(safe(fragment) for fragment in published), [f for f in published if not safe(f)]
    assert sum("<strong>bold</strong>" in f for f in published) >= 3  # Markdown still renders
    assert all(set(o) <= {"text/html", "text/plain"} for o in (o.data for o in ran.outputs))


def _raise_payload(step: StepInput) -> str:
    raise ValueError(PAYLOAD)


# -- across kernels and into the panel ---------------------------------------------------------------------
def test_team_and_workflow_runs_persist_and_history_continues_in_a_new_shell(workdir):
    first = Notebook()
    try:
        registered(first, research=research_team(), flow=pipeline())
        first.run("%%agent --team research --new kept\nOne")
        first.run("%%agent --workflow flow\nTwo")
    finally:
        first.close()
    seen: list = []
    second = Notebook()
    try:
        assert one_red_line(second.run("%%agent --team research\nThree")).startswith("UsageError: --team research")
        registered(second, research=Team(members=[member("researcher")],
                                         model=leader(("researcher", "recall"), seen=seen)))
        ran = second.run("%%agent --team research\nThree")
        assert ran.result.success and "kept (" in ran.outputs[-2].data["text/plain"]
        assert ("user", "One") in [(m.role, m.content) for m in seen[-1] if m.from_history]
        shown = second.run("%agent history").outputs[0].data["text/plain"]
        top = [line for line in shown.splitlines() if line.startswith("── ")]
        assert [t.split(" · ")[-2:] for t in top] == [["team", "completed"], ["workflow", "completed"],
                                                      ["team", "completed"]]
        assert "step 2 · summariser · agent · completed" in shown and "    ── writer · " in shown
    finally:
        second.close()


def test_the_notebooks_listeners_hear_team_and_workflow_runs(nb):
    registered(nb, research=research_team(), flow=pipeline())
    events: list = []
    nb.magics.notebook.agent.add_listener(lambda event, sid: events.append(event))
    nb.run("%%agent --team research --new heard\nGo")
    team_events = events.count("run")
    nb.run("%%agent --workflow flow\nGo")
    assert team_events >= 2 and events.count("run") >= team_events + 2


def test_member_runs_without_a_stored_name_are_named_by_the_leaders_calls():
    from nbsessions.magic.nested import member_names
    from nbsessions.records.schema import RunOutput

    calls = [{"id": f"c{i}", "name": f"ask_{who}", "arguments": json.dumps({"task": task})}
             for i, (who, task) in enumerate([("writer", "draft"), ("researcher", "dig"), ("writer", "polish")])]
    team_run = RunOutput(kind="team", messages=[Message(role="assistant", tool_calls=calls)])
    runs = [RunOutput(input=task, model="shared-model") for task in ("dig", "draft", "polish", "unasked")]
    assert member_names(team_run, runs) == ["researcher", "writer", "writer", "shared-model"]


def test_a_paused_registered_agent_continues_with_its_own_tools(nb, workdir):
    from nbsessions.runs.core.tools import tool

    dropped = []

    @tool(requires_confirmation=True)
    def drop_table(name: str) -> str:
        """Drop a table."""
        dropped.append(name)
        return f"dropped {name}"

    def dba(messages, tools):
        if any(m.role == "tool" for m in messages if not m.from_history):
            return f"done: {messages[-1].content}"
        return ToolCall("c1", "drop_table", json.dumps({"name": "logs"}))

    registered(nb, dba=Agent(model=FunctionModel(dba, id="dba"), tools=[drop_table], name="dba"))
    ran = nb.run("%%agent --agent dba --new ops\nClean up")
    assert "%agent continue" in ran.outputs[-1].data["text/plain"] and dropped == []
    done = nb.run("%agent continue --approve")
    assert done.result.success, done.stderr
    assert dropped == ["logs"] and done.outputs[-1].data["text/plain"].startswith("done: dropped logs")


def test_rerunning_a_workflow_cell_replaces_its_run_in_the_history(nb, workdir):
    registered(nb, flow=pipeline(shout))
    first = nb.run("%%agent --workflow flow --new wf -o a\nfirst", cell_id="cell-7")
    again = nb.run("%%agent --workflow flow -o b\nsecond", cell_id="cell-7")
    assert first.result.success and again.result.success, again.stderr
    old, new = nb.shell.user_ns["a"], nb.shell.user_ns["b"]
    runs = {r.run_id: r for r in stored_runs(workdir / "nbsessions.json")}
    assert runs[old.run_id].superseded_by == new.run_id and runs[new.run_id].superseded_by is None
