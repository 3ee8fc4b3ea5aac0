"""Prompt experiments from cells on a real IPython shell: ``--compare``/``--variants``/``--sweep``, ``--over``,
``%agent regenerate``/``variants``/``keep`` and ``%agent export`` (sessions, comparisons, batches)."""

from __future__ import annotations

import csv
import json
import re

import pytest
from notebook_shell import PAYLOAD, SECRET, one_red_line, refused, stored_runs
from xss import ActiveContent

from nbsessions.errors import ModelError
from nbsessions.explore import BatchResult, Comparison, JobStatus
from nbsessions.llm.offline import FunctionModel
from nbsessions.magic.cellrun import CellError, CellInterrupted
from nbsessions.schema import RunStatus

SETUP = '''
from nbsessions.explore.checks import contains, regex
checks = [contains("echo"), regex("^never")]
systems = {"terse": "Be terse.", "kind": "Be kind."}
rows = [{"city": "Oslo"}, {"city": "Lima"}, {"city": "Pune"}]
city = "a notebook variable, never used with --over"
number, empty, listed, notrows = 3, [], [1], [1, 2]
'''


@pytest.fixture
def nb(nb):
    """The shared notebook, with this file's variables defined."""
    nb.run(SETUP)
    return nb


@pytest.fixture
def served(served, openai_server):
    openai_server.retry_after = 0.001  # the SDK's own retry of a 5xx waits this long
    return served


def safe(fragment: str) -> bool:
    parser = ActiveContent()
    parser.feed(fragment)
    return parser.found == []


def active(nb) -> str:
    return nb.run("%agent").stdout.split("session:", 1)[1].splitlines()[0].strip()


def by_model(openai_server) -> dict[str, dict]:
    return {body["model"]: body for body in openai_server.requests}


# -- compare ------------------------------------------------------------------------------------------------
def test_compare_runs_each_model_in_a_fork_of_the_active_session(served, openai_server, tmp_path):
    served.run("%%agent --new base\nMy name is Ada.")
    before = active(served)
    ran = served.run("%%agent --compare model-a,model-b -o cmp\nWhat is my name? ({number} words)")
    assert ran.result.success and ran.result.result is None
    cmp = served.shell.user_ns["cmp"]
    assert isinstance(cmp, Comparison) and [c.model for c in cmp.cells] == ["model-a", "model-b"]
    assert [c.content for c in cmp.cells] == ["echo: What is my name? (3 words)"] * 2
    sent = by_model(openai_server)
    for model in ("model-a", "model-b"):  # both saw the same history, forked from the active session
        assert [m["content"] for m in sent[model]["messages"]] == [
            "My name is Ada.", "echo: My name is Ada.", "What is my name? (3 words)"]
    [shown] = [o.data for o in ran.outputs if "nbsessions-compare" in o.data.get("text/html", "")]
    assert shown["text/plain"] == repr(cmp) and "model-a" in shown["text/html"] and "model-b" in shown["text/html"]
    assert active(served) == before  # the conversation itself did not move
    runs = stored_runs(tmp_path / "nbsessions.json")
    assert len({r.session_id for r in runs}) == 3 and len(runs) == 5  # base + two forks (copy + new run)


def test_a_failing_model_fails_only_its_column(served, openai_server):
    ran = served.run("%%agent --compare model-a,error-500 -o cmp\nHi")
    assert ran.result.success
    cmp = served.shell.user_ns["cmp"]
    assert [c.status for c in cmp.cells] == [JobStatus.completed, JobStatus.error]
    assert "500 server error" in cmp.cells[1].error
    html = next(o.data["text/html"] for o in ran.outputs if "nbsessions-compare" in o.data.get("text/html", ""))
    assert "500 server error" in html and "echo: Hi" in html


def test_variants_sweeps_and_checks_make_a_grid(served, openai_server):
    ran = served.run("%%agent --variants systems --sweep temperature=0,0.7 --checks checks -o cmp\nHi")
    cmp = served.shell.user_ns["cmp"]
    assert [(c.variant, c.settings) for c in cmp.cells] == [
        ("terse", {"temperature": 0}), ("terse", {"temperature": 0.7}),
        ("kind", {"temperature": 0}), ("kind", {"temperature": 0.7})]
    sent = sorted((b["messages"][0]["content"], b["temperature"]) for b in openai_server.requests)
    assert sent == [("Be kind.", 0), ("Be kind.", 0.7), ("Be terse.", 0), ("Be terse.", 0.7)]
    assert cmp.check_names == ["contains 'echo'", "regex /^never/"]
    assert cmp.pass_rates() == {"local-model": 0.0}  # every reply has "echo", none starts with "never"
    html = next(o.data["text/html"] for o in ran.outputs if "nbsessions-compare" in o.data.get("text/html", ""))
    assert html.count("✓") == 4 and html.count("✗") == 4


def test_compare_output_is_sanitised(served, openai_server):
    def fails(messages):
        raise ModelError("<script>alert('error')</script> failed", status_code=500)

    served.magics.notebook.register_model("evil", FunctionModel(fails, id="<img src=x onerror=alert(1)>"))
    openai_server.reply = lambda body: PAYLOAD
    ran = served.run("%%agent --compare evil,model-b\nHi")
    [html] = [h for h in ran.html if h]
    assert safe(html) and "<strong>bold</strong>" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html and "&lt;script&gt;alert" in html


# -- batch ----------------------------------------------------------------------------------------------------
def test_over_fills_fields_from_each_row_never_from_the_notebook(served, openai_server):
    before = served.run("%%agent --new chat\nHello") and active(served)
    ran = served.run("%%agent --over rows --checks checks -o res\nWeather in {city}? Keep {{city}}.")
    assert ran.result.success
    res = served.shell.user_ns["res"]
    assert isinstance(res, BatchResult) and [r.prompt for r in res] == [
        "Weather in Oslo? Keep {city}.", "Weather in Lima? Keep {city}.", "Weather in Pune? Keep {city}."]
    assert sorted(b["messages"][-1]["content"] for b in openai_server.requests[1:]) == sorted(r.prompt for r in res)
    assert all(len(b["messages"]) == 1 for b in openai_server.requests[1:])  # rows see no history
    assert res.counts() == {"completed": 3} and res.check_names == ["contains 'echo'", "regex /^never/"]
    assert ran.stdout.startswith("rows stored in session batch: ")
    assert "3/3" in ran.stderr  # the progress bar
    [shown] = [o.data for o in ran.outputs if "nbsessions-batch" in o.data.get("text/html", "")]
    assert shown["text/plain"] == repr(res) and safe(shown["text/html"])
    assert active(served) == before


def test_over_takes_a_dataframe_and_a_model(served, openai_server):
    served.run('''
class Frame:  # what --over needs of a DataFrame
    columns = ["n"]
    def to_dict(self, orient):
        return [{"n": 1}, {"n": 2}]
frame = Frame()
''')
    served.run("%%agent --over frame -m row-model -j 1 -o res\nDouble {n}")
    assert [r.content for r in served.shell.user_ns["res"]] == ["echo: Double 1", "echo: Double 2"]
    assert {b["model"] for b in openai_server.requests} == {"row-model"}


def test_ctrl_c_during_a_batch_keeps_the_finished_rows(served, tmp_path):
    def stops_at_lima(messages):
        if "Lima" in messages[-1].content:
            raise KeyboardInterrupt
        return f"done {messages[-1].content}"

    served.magics.notebook.register_model("stopper", FunctionModel(stops_at_lima))
    ran = served.run("%%agent --over rows -m stopper -j 1 -o res\nVisit {city}")
    error = ran.result.error_in_exec
    assert isinstance(error, CellInterrupted) and isinstance(error, KeyboardInterrupt)
    assert error._render_traceback_()[0].endswith("interrupted: finished rows are kept in res; the rest were "
                                                  "cancelled or never started")
    assert "Traceback" not in ran.stdout + ran.stderr
    res = served.shell.user_ns["res"]
    assert [r.status for r in res] == [JobStatus.completed, JobStatus.cancelled, JobStatus.not_run]
    assert res.interrupted and res[0].content == "done Visit Oslo"
    assert any("nbsessions-batch" in h for h in ran.html)  # the table of what finished is shown
    statuses = sorted(r.status.value for r in stored_runs(tmp_path / "nbsessions.json"))
    assert statuses == ["cancelled", "completed"]  # Pune never started: no run at all


def test_experiments_run_as_the_notebooks_user(served):
    served.run("%agent user alice")
    served.run("%%agent --new hers\nHello")
    served.run("%%agent --over rows -o res\nWeather in {city}")
    served.run("%%agent --compare model-a -o cmp\nHi")
    listed = served.run("%agent sessions --experiments").outputs[0].data["text/plain"].splitlines()[1:]
    assert len(listed) == 3 and all(" alice " in line for line in listed)  # hers, the batch's, the fork
    served.run("%agent user bob")
    assert "no sessions yet" in served.run("%agent sessions").stdout


# -- bad input --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("cell", "message"), [
    ("%%agent --compare a,,b\nHi", "UsageError: --compare takes model names separated by commas"),
    ("%%agent --compare 'gpt 5'\nHi", "UsageError: unknown model id 'gpt 5'"),
    ("%%agent --variants nosuch\nHi", "UsageError: --variants nosuch: no variable 'nosuch' in the notebook"),
    ("%%agent --variants listed\nHi", "UsageError: --variants listed: give a non-empty dict"),
    ("%%agent --sweep temperature\nHi", "UsageError: --sweep takes KEY=V1,V2"),
    ("%%agent --sweep temperature=0 --sweep temperature=1\nHi", "UsageError: --sweep temperature is given twice"),
    ("%%agent --sweep model=a,b\nHi", "UsageError: --sweep model: not a generation setting"),
    ("%%agent --compare a --checks notrows\nHi", "UsageError: --checks notrows: a check must be a function"),
    ("%%agent --checks checks\nHi", "UsageError: --checks needs --compare, --variants, --sweep or --over"),
    ("%%agent --compare a,b -m c\nHi", "UsageError: use either -m MODEL or --compare MODELS"),
    ("%%agent --compare a --over rows\nHi", "UsageError: use either --over VAR (a template over rows) or --compare"),
    ("%%agent --compare a --new x\nHi", "UsageError: --new does not apply to --compare"),
    ("%%agent --variants systems --result\nHi", "UsageError: --result does not apply to --variants"),
    ("%%agent --compare a --system hi\nHi", "UsageError: --compare takes system prompts from --variants VAR"),
    ("%%agent --compare a\nWhat is {undefined}?", "UsageError: unknown name 'undefined'"),
    ("%%agent --compare a -s nosuch\nHi", "UsageError: no session 'nosuch'"),
    ("%%agent --over nosuch\n{city}", "UsageError: --over nosuch: no variable 'nosuch'"),
    ("%%agent --over notrows\n{city}", "UsageError: --over notrows: row 0 is a int"),
    ("%%agent --over rows\nWeather in {town}", "UsageError: --over rows: row 0: unknown name 'town'"),
    ("%%agent --over empty\n{city}", "UsageError: --over empty has no rows"),
    ("%%agent --over rows --no-history\n{city}", "UsageError: --no-history does not apply to --over"),
    ("%%agent --over rows -j 0\n{city}", "UsageError: --concurrency needs 1 or more"),
    ("%%agent --over rows -o 1x\n{city}", "UsageError: -o needs a variable name"),
    ("%%agent --over rows\n   \n", "UsageError: the cell has no template"),
])
def test_bad_experiment_flags_are_one_red_line_and_write_nothing(served, tmp_path, cell, message):
    served.run("%%agent --new first\nHello")
    assert refused(served, cell, tmp_path / "nbsessions.json").startswith(message)


# -- regenerate, variants, keep ---------------------------------------------------------------------------------
def test_regenerate_streams_a_variant_that_joins_the_history_and_keep_picks_another(served, openai_server,
                                                                                     tmp_path):
    served.run("%%agent --new jokes\nTell a joke.")
    openai_server.script("A second, <b onclick=x>better</b> joke.")
    ran = served.run("%agent regenerate")
    assert ran.result.success and len(ran.outputs) > 2  # streamed into one output, in place
    assert ran.final.startswith("A second, <b onclick=x>better</b> joke.\n\n— local-model · jokes (")
    assert all(safe(h) for h in ran.html)
    first_call, second_call = openai_server.requests
    assert first_call["messages"] == second_call["messages"]  # the same context
    original, variant = stored_runs(tmp_path / "nbsessions.json")
    assert variant.variant_of == original.run_id and original.superseded_by == variant.run_id

    shown = served.run("%agent variants").outputs[0].data
    assert shown["text/html"].count("<th ") == 2 and safe(shown["text/html"])
    assert f"{variant.run_id[:8]} · local-model · ● in history" in shown["text/plain"]
    assert f"{original.run_id[:8]} · local-model · superseded" in shown["text/plain"]
    assert served.run(f"%agent variants {original.run_id[:6]}").outputs[0].data == shown

    kept = served.run(f"%agent keep {original.run_id[:8]}").stdout
    assert kept.startswith(f"kept {original.run_id[:8]}: its reply is the one in history; 1 other variant(s)")
    served.run("%%agent\nAnother?")
    assert [m["content"] for m in openai_server.last.body["messages"]][:2] == ["Tell a joke.", "echo: Tell a joke."]
    served.run("%agent regenerate -m other-model")
    assert openai_server.last.body["model"] == "other-model"


def test_regenerate_and_keep_failures_are_one_red_line(served, openai_server, tmp_path):
    assert "no active session yet" in one_red_line(served.run("%agent variants"))
    served.run("%%agent --new jokes\nTell a joke.")
    before = (tmp_path / "nbsessions.json").read_bytes()
    for line, message in [("%agent keep", "UsageError: give the variant to keep"),
                          ("%agent keep zzzz", "UsageError: no run in this session with an id starting 'zzzz'"),
                          ("%agent regenerate zzzz", "UsageError: no run in this session"),
                          ("%agent variants zzzz", "UsageError: no run in this session"),
                          ("%agent regenerate -m 'bad model'", "UsageError: unknown model id 'bad model'")]:
        assert one_red_line(served.run(line)).startswith(message), line
    assert (tmp_path / "nbsessions.json").read_bytes() == before
    failed = served.run("%agent regenerate -m error-401")
    assert isinstance(failed.result.error_in_exec, CellError)
    assert one_red_line(failed).startswith("ModelError: 401 unauthorized")
    broken = [r for r in stored_runs(tmp_path / "nbsessions.json") if r.status == RunStatus.error][0]
    assert "only a completed variant can be kept" in one_red_line(served.run(f"%agent keep {broken.run_id[:8]}"))


# -- export ------------------------------------------------------------------------------------------------------
def test_export_sessions_and_results_in_every_format_without_the_key(served, openai_server, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    openai_server.api_key = SECRET  # the server refuses any other key: the runs prove the key was used
    shown = []
    for line in ["%%agent --new report\nHi", "%%agent --compare model-a,model-b -o cmp\nCompare me",
                 "%%agent --over rows -o res\nWeather in {city}", "%agent export csv",
                 "%agent export md cmp.md --result cmp", "%agent export json --result cmp",
                 "%agent export csv res.csv --result res"]:
        ran = served.run(line)
        assert ran.result.success, line
        shown += [ran.stdout, ran.stderr, *(json.dumps(o.data) for o in ran.outputs)]
    assert all(SECRET not in text for text in shown)
    files = {p.name: p.read_text(encoding="utf-8") for p in tmp_path.iterdir() if p.is_file()}
    assert all(SECRET not in text for text in files.values())
    session_csv = next(text for name, text in files.items() if re.fullmatch(r"nbsessions-\w{8}\.csv", name))
    assert [r["input"] for r in csv.DictReader(session_csv.splitlines())] == ["Hi"]
    assert files["cmp.md"].startswith("# Comparison") and "echo: Compare me" in files["cmp.md"]
    assert json.loads(files["nbsessions-cmp.json"])["format"] == "nbsessions.comparison"
    assert [r["city"] for r in csv.DictReader(files["res.csv"].splitlines())] == ["Oslo", "Lima", "Pune"]


@pytest.mark.parametrize(("line", "message"), [
    ("%agent export md --result nosuch", "UsageError: --result nosuch: no variable 'nosuch'"),
    ("%agent export md --result rows", "UsageError: --result rows is a list: give the Comparison or BatchResult"),
    ("%agent export pdf", "UsageError: argument format: invalid choice: 'pdf'"),
])
def test_export_of_something_else_is_one_red_line_and_writes_no_file(served, tmp_path, line, message):
    served.run("%%agent --new report\nHi")
    files = sorted(tmp_path.iterdir())
    assert one_red_line(served.run(line)).startswith(message)
    assert sorted(tmp_path.iterdir()) == files


def test_regenerate_without_m_uses_the_model_that_made_the_run_when_base_url_has_no_default_model(
        nb, openai_server, tmp_path):
    nb.run(f"%config AgentMagics.base_url = '{openai_server.base_url}'")
    nb.run("%config AgentMagics.update_interval = 0")
    assert nb.run("%%agent -m chosen-model --new jokes\nTell a joke.").result.success
    openai_server.script("A second joke.")
    ran = nb.run("%agent regenerate")
    assert ran.result.success, one_red_line(ran)
    assert [body["model"] for body in openai_server.requests] == ["chosen-model", "chosen-model"]
    original, variant = stored_runs(tmp_path / "nbsessions.json")
    assert variant.variant_of == original.run_id and variant.model == "chosen-model"
