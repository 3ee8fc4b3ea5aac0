"""A session exported as a notebook: valid, private, faithful to what the cells showed, inert, keyless."""

from __future__ import annotations

import stat

import nbformat
import pytest
from conftest import RecordingModel
from notebook_shell import PAYLOAD, one_red_line
from xss import ActiveContent

from nbsessions import Agent, FunctionModel, ModelError, TinyDb
from nbsessions.__main__ import main
from nbsessions.explore import export_session
from nbsessions.llm import OpenAIChat
from nbsessions.presentation.templating import fill_prompt

SECRET = "sk-test-Qx7pLm2vRt-0123456789"  # random-looking: every 8-character piece of a key is redacted


@pytest.fixture
def mixed_session(tmp_path, openai_server):
    """Completed, superseded, failed and cancelled runs, made through a model holding an API key."""
    db = TinyDb(tmp_path / "nb.nbsessions.json")
    agent = Agent(model=OpenAIChat("gpt-5.2", base_url=openai_server.base_url, api_key=SECRET, max_retries=0),
                  db=db, user_id="ada", add_history_to_context=True)
    sid = agent.create_session("eda <b>notes</b>").session_id
    openai_server.script(PAYLOAD, "second answer", "re-run answer")
    agent.run("Explain {df.shape} and {x}", session_id=sid)
    agent.run("Summarise", session_id=sid, cell_id="cell-2")
    agent.run("Summarise again", session_id=sid, cell_id="cell-2")  # supersedes the run before
    openai_server.fail_next("error-500")
    with pytest.raises(ModelError):
        agent.run("Will fail", session_id=sid)
    stream = agent.run("Stopped early", session_id=sid, stream=True)
    next(stream)  # a stream stores its run once iterated; closed after that, the run is cancelled
    stream.close()
    yield agent, sid
    db.close()


def test_a_session_becomes_a_valid_private_notebook_with_one_agent_cell_per_run(mixed_session, tmp_path):
    agent, sid = mixed_session
    path = tmp_path / "out" / "eda.ipynb"
    path.parent.mkdir()
    text = export_session(agent, sid, "ipynb", path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and SECRET not in text
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    title, load, *cells = nb.cells
    assert title.cell_type == "markdown" and title.source.startswith("# eda &lt;b&gt;notes&lt;/b&gt;")
    assert "- user: ada" in title.source and "- model(s): gpt-5.2" in title.source
    assert "- runs: 5 (3 completed, 1 cancelled, 1 error, 1 superseded)" in title.source
    assert load.source == "%load_ext nbsessions"
    runs = agent.get_runs(sid)
    assert [c.metadata["nbsessions"]["run_id"] for c in cells] == [r.run_id for r in runs]
    assert all(c.source.startswith(f"%%agent -s {sid[:8]}\n") for c in cells)
    assert fill_prompt(cells[0].source.split("\n", 1)[1]) == "Explain {df.shape} and {x}"  # re-runs as sent
    assert [c.metadata.get("tags") for c in cells] == [
        None, ["nbsessions-superseded"], None, ["nbsessions-error"], ["nbsessions-cancelled"]]


def test_the_saved_outputs_are_the_cells_sanitised_replies_with_footers(mixed_session):
    agent, sid = mixed_session
    nb = nbformat.reads(export_session(agent, sid, "ipynb"), as_version=4)
    first, superseded, rerun, failed, cancelled = nb.cells[2:]
    reply = first.outputs[0]
    assert reply.output_type == "display_data" and set(reply.data) == {"text/html", "text/plain"}
    checker = ActiveContent()
    checker.feed(reply.data["text/html"])
    assert checker.found == [] and "<strong>bold</strong>" in reply.data["text/html"]
    assert "gpt-5.2 · eda <b>notes</b>" in reply.data["text/plain"] and "in /" in reply.data["text/plain"]
    assert "superseded by run" in superseded.outputs[-1].text and "re-run answer" in str(rerun.outputs[0].data)
    assert [o.output_type for o in failed.outputs] == ["error"] and failed.outputs[0].evalue.startswith("500")
    assert cancelled.outputs[-1].text.startswith("cancelled:")


def test_the_magic_writes_the_active_session_as_a_notebook(nb, workdir):
    nb.run("%%agent --new demo\nfirst question")
    nb.run("%%agent\nsecond question")
    out = nb.run("%agent export ipynb").stdout
    path = next(workdir.glob("*.ipynb"))
    assert out.startswith("exported demo (") and str(path) in out and stat.S_IMODE(path.stat().st_mode) == 0o600
    cells = nbformat.read(path, as_version=4).cells
    assert [c.source.split("\n", 1)[1] for c in cells[2:]] == ["first question", "second question"]
    assert "Offline model" in cells[2].outputs[0].data["text/plain"]
    nb.run("res = 1")
    assert "ipynb exports a session" in one_red_line(nb.run("%agent export ipynb --result res"))


def test_the_command_line_exports_a_notebook(tmp_path):
    db_path = tmp_path / "a.nbsessions.json"
    with TinyDb(db_path) as db:
        agent = Agent(model=RecordingModel("an answer"), db=db)
        sid = agent.create_session("cli").session_id
        agent.run("a question", session_id=sid)
    target = tmp_path / "cli.ipynb"
    assert main(["export", str(db_path), "cli", "-f", "ipynb", "-o", str(target)]) == 0
    cells = nbformat.read(target, as_version=4).cells
    assert cells[2].source == f"%%agent -s {sid[:8]}\na question"
    assert "an answer" in cells[2].outputs[0].data["text/plain"]


def test_team_members_and_workflow_steps_are_listed_under_their_run(db):
    import json

    from nbsessions.llm.base import ToolCall
    from nbsessions.runs.team import Team
    from nbsessions.runs.workflows.workflow import StepInput, Workflow

    def leader(messages, tools):
        if any(m.role == "tool" and not m.from_history for m in messages):
            return "composed <script>x</script>"
        return ToolCall("call_1", "ask_researcher", json.dumps({"task": "find facts"}))

    researcher = Agent(model=RecordingModel("facts", id="researcher"), name="researcher")
    team = Team(members=[researcher], model=FunctionModel(leader, id="leader"), db=db)
    run = team.run("report on tea")
    flow = Workflow(steps=[lambda step: StepInput.__name__ + " cleaned: " + step.input], name="clean", db=db)
    flow.run("raw notes", session_id=run.session_id)
    nb = nbformat.reads(export_session(db, run.session_id, "ipynb"), as_version=4)
    nbformat.validate(nb)
    team_cell, flow_cell = nb.cells[2:]
    assert team_cell.metadata["nbsessions"]["kind"] == "team"
    reply, members = team_cell.outputs
    assert members.text.startswith("members: researcher · ") and "completed" in members.text
    assert "composed" in reply.data["text/plain"] and "<script" not in reply.data["text/html"]
    assert flow_cell.outputs[0].text.startswith("step 1 · ") and "cleaned: raw notes" in flow_cell.outputs[0].text


def test_the_notebook_names_the_installed_kernel_as_jupyterlab_would_on_connect(tmp_path, monkeypatch):
    """JupyterLab rewrites ``kernelspec`` and ``language_info`` with what the kernel reports when it connects; an
    export holding anything else opens marked as unsaved (the browser test checks that end to end)."""
    from ipykernel.ipkernel import IPythonKernel
    from jupyter_client.kernelspec import KernelSpecManager

    db_path = tmp_path / "a.nbsessions.json"
    with TinyDb(db_path) as db:
        sid = Agent(model=RecordingModel("an answer"), db=db).run("a question").session_id
    target = tmp_path / "k.ipynb"
    assert main(["export", str(db_path), sid, "-f", "ipynb", "-o", str(target)]) == 0
    meta = nbformat.read(target, as_version=4).metadata
    installed = KernelSpecManager().get_kernel_spec("python3")
    assert meta.kernelspec == {"name": "python3", "display_name": installed.display_name, "language": "python"}
    assert meta.language_info == IPythonKernel.language_info  # what ipykernel answers kernel_info with

    spec = tmp_path / "jupyter" / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text('{"argv": ["python", "-m", "ipykernel_launcher", "-f", "{connection_file}"], '
                                      '"display_name": "Python 3 (team env)", "language": "python"}')
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    assert main(["export", str(db_path), sid, "-f", "ipynb", "-o", str(target.with_name("k2.ipynb"))]) == 0
    assert nbformat.read(target.with_name("k2.ipynb"), as_version=4).metadata.kernelspec.display_name == \
        "Python 3 (team env)"
