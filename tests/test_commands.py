"""The ``%agent`` subcommands on a real IPython shell (offline model: no network needed)."""

from __future__ import annotations

import csv
import json

from notebook_shell import Notebook, one_red_line, stored_runs
from traitlets.config import Config

from nbsessions.db.tinydb import TinyDb


def active_label(nb) -> str:
    return nb.run("%agent").stdout.split("session:", 1)[1].splitlines()[0].strip()


def test_status_says_where_the_db_is_and_why(nb, tmp_path):
    out = nb.run("%agent").stdout
    assert f"database:    {tmp_path / 'nbsessions.json'}" in out
    assert "no notebook path known" in out and "session:     none yet" in out and "offline" in out
    columns = {len(line) - len(line.split(":", 1)[1].lstrip()) for line in out.splitlines()}
    assert len(columns) == 1, "every value starts in the same column"


def test_sessions_table_escapes_names_and_marks_the_active_one(nb):
    nb.run("%agent new <b onclick=x>evil</b>")
    nb.run("%agent new plain")
    shown = nb.run("%agent sessions").outputs[0].data
    assert "<b onclick" not in shown["text/html"] and "&lt;b onclick=x&gt;evil&lt;/b&gt;" in shown["text/html"]
    lines = shown["text/plain"].splitlines()
    assert len(lines) == 3 and lines[1].startswith("●  plain")  # newest first, the active one marked


def test_new_use_and_rename_switch_the_session_cells_continue(nb):
    nb.run("%agent new alpha")
    nb.run("%%agent\nfirst")
    nb.run("%agent new beta")
    assert active_label(nb).startswith("beta (")
    used = nb.run("%agent use alpha").stdout
    assert used.startswith("active session: alpha (") and ", 1 run" in used
    assert "history messages in context: 2" in nb.run("%%agent\nsecond").final
    sid = active_label(nb).split("(")[1][:8]
    nb.run("%agent rename alpha renamed")
    assert active_label(nb) == f"alpha renamed ({sid}), 2 runs"
    assert nb.run(f"%agent use {sid[:5]}").result.success  # an id prefix works too
    assert "UsageError: give the new name" in one_red_line(nb.run("%agent rename"))


def test_a_new_session_never_takes_a_name_in_use_and_the_line_says_so(nb):
    nb.run("%agent new cleanup")
    out = nb.run("%agent new cleanup").stdout
    assert "'cleanup' is taken" in out and active_label(nb).startswith("cleanup (2) (")
    assert "'cleanup' is taken" in nb.run("%%agent --new cleanup\nhi").stdout
    assert active_label(nb).startswith("cleanup (3) (")


def test_a_repeated_name_means_the_newest_but_delete_wants_it_unambiguous(nb):
    from nbsessions import Session

    db = nb.magics.notebook.agent.db  # stores written before names were unique may hold twins
    older, newer = Session(session_name="twin", created_at=1.0, updated_at=1.0), Session(session_name="twin")
    for session in (older, newer):
        db.upsert_session(session)
    assert nb.run(f"%agent use {older.session_id[:8]}").result.success
    out = nb.run("%agent use twin").stdout
    newer = f"twin ({newer.session_id[:8]})"
    assert out.startswith(f"active session: {newer}") and "newest of 2 sessions" in out
    assert "matches 2 sessions" in one_red_line(nb.run("%agent delete twin --yes"))
    assert "no session 'ghost'" in one_red_line(nb.run("%agent use ghost"))


def test_delete_asks_for_yes_and_only_then_deletes(nb, tmp_path):
    nb.run("%%agent --new doomed\nhello")
    before = (tmp_path / "nbsessions.json").read_bytes()
    out = nb.run("%agent delete doomed").stdout
    assert "nothing was deleted" in out and "--yes" in out
    assert (tmp_path / "nbsessions.json").read_bytes() == before
    assert "deleted session doomed" in nb.run("%agent delete doomed --yes").stdout
    assert stored_runs(tmp_path / "nbsessions.json") == []
    assert "session:     none yet" in nb.run("%agent").stdout
    assert nb.run("%%agent\nfresh start").result.success  # the next cell starts a new session


def test_fork_copies_the_session_up_to_a_run(nb, tmp_path):
    nb.run("%%agent --new main\none")
    nb.run("%%agent\ntwo")
    first = stored_runs(tmp_path / "nbsessions.json")[0]
    out = nb.run(f"%agent fork {first.run_id[:8]}").stdout
    assert out.startswith("forked main (") and "main (fork)" in out
    assert active_label(nb).endswith(", 1 run")


def test_history_shows_every_run_newest_n(nb):
    for n in range(4):
        nb.run(f"%%agent\nprompt {n}")
    text = nb.run("%agent history 2").outputs[0].data["text/plain"]
    assert "> prompt 2" in text and "> prompt 3" in text and "prompt 1" not in text
    assert "UsageError: argument n: invalid int value" in one_red_line(nb.run("%agent history lots"))


def test_state_show_and_merge(nb):
    assert "no active session yet" in one_red_line(nb.run("%agent state"))
    assert json.loads(nb.run('%agent state {"a": 1, "b": {"c": [1, 2]}}').stdout) == {"a": 1, "b": {"c": [1, 2]}}
    assert json.loads(nb.run("%agent state '{\"a\": 2}'").stdout) == {"a": 2, "b": {"c": [1, 2]}}
    assert "invalid state JSON" in one_red_line(nb.run("%agent state {a: 1}"))


def test_export_writes_a_transcript_and_records(nb, tmp_path):
    nb.run("%%agent --new report\nSummarise ```code``` please")
    out = nb.run("%agent export md").stdout
    target = tmp_path / out.rsplit(" to ", 1)[1].strip()
    md = target.read_text()
    assert target.name.startswith("nbsessions-") and target.suffix == ".md"
    assert md.startswith("# report") and "````\nSummarise ```code``` please\n````" in md
    nb.run("%agent export json data/out.json")  # folders are made as needed
    data = json.loads((tmp_path / "data" / "out.json").read_text())
    assert data["format"] == "nbsessions.export" and data["runs"][0]["input"] == "Summarise ```code``` please"
    nb.run("%agent export csv runs.csv")
    [row] = list(csv.DictReader((tmp_path / "runs.csv").open(encoding="utf-8")))
    assert row["input"] == "Summarise ```code``` please" and row["status"] == "completed"
    assert "invalid choice: 'xml'" in one_red_line(nb.run("%agent export xml"))


def test_db_switches_files_and_config_does_too(nb, tmp_path):
    nb.run("%%agent\nin the default file")
    out = nb.run("%agent db other.json").stdout
    assert out.startswith(f"database: {tmp_path / 'other.json'} (0 sessions)")
    assert "set with %agent db" in nb.run("%agent db").stdout
    nb.run("%%agent\nin the other file")
    assert len(stored_runs(tmp_path / "other.json")) == 1
    nb.run(f"%config AgentMagics.db_path = '{tmp_path / 'third.json'}'")
    assert "set with %config AgentMagics.db_path" in nb.run("%agent db").stdout
    nb.run("%%agent\nthird")
    assert len(stored_runs(tmp_path / "third.json")) == 1
    assert len(stored_runs(tmp_path / "nbsessions.json")) == 1


def test_db_takes_a_quoted_path_with_spaces_and_refuses_unquoted_words(nb, tmp_path):
    (tmp_path / "my dir").mkdir()
    out = nb.run('%agent db "my dir/s.json"').stdout
    assert out.startswith(f"database: {tmp_path / 'my dir' / 's.json'} (0 sessions)")
    assert nb.run("%%agent\nin the spaced folder").result.success
    assert len(stored_runs(tmp_path / "my dir" / "s.json")) == 1
    line = one_red_line(nb.run("%agent db my dir/s.json"))
    assert line == ("UsageError: %agent db PATH takes one argument, not 2 ('my dir/s.json'): quote one that holds "
                    "spaces")
    assert f"database: {tmp_path / 'my dir' / 's.json'}" in nb.run("%agent db").stdout  # still the same one


def test_commands_without_arguments_refuse_extra_words(nb):
    nb.run("%%agent\nhello")
    for name in ("panel", "metrics", "summary"):
        line = one_red_line(nb.run(f"%agent {name} extra"))
        assert line == f"UsageError: %agent {name} takes no argument, not 'extra'"


def test_db_is_beside_the_notebook_jupyter_names(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("JPY_SESSION_NAME", str(tmp_path / "analysis.ipynb"))
    nb = Notebook()
    try:
        nb.run("%%agent\nhello")
        assert "JPY_SESSION_NAME" in nb.run("%agent db").stdout
        with TinyDb(tmp_path / "analysis.nbsessions.json") as db:
            [session] = db.list_sessions()
        assert session.notebook == str(tmp_path / "analysis.ipynb")
    finally:
        nb.close()


def test_users_see_and_write_only_their_sessions(nb):
    nb.run("%agent user alice")
    nb.run("%%agent --new hers\nhello")
    out = nb.run("%agent user bob").stdout
    assert out == "user: bob; the next %%agent cell starts a session\n"
    assert "no sessions yet" in nb.run("%agent sessions").stdout
    nb.run("%%agent --new his\nhi")
    assert "active session: hers (" in nb.run("%agent user alice").stdout
    assert "no session 'his'" in one_red_line(nb.run("%agent use his"))


def test_panel_is_a_session_panel_on_the_cells_agent(nb):
    from nbsessions.panel import SessionPanel

    panel = nb.run("%agent panel").result.result
    assert isinstance(panel, SessionPanel) and panel.agent is nb.magics.agent


def test_a_new_panel_or_another_database_closes_the_panel_shown_before(nb, monkeypatch):
    import nbsessions.panel as panels

    closed = []

    class RecordingPanel(panels.SessionPanel):
        def close(self):
            closed.append(self)
            super().close()

    monkeypatch.setattr(panels, "SessionPanel", RecordingPanel)
    first = nb.run("%agent panel").result.result
    agent = nb.magics.agent

    def panels_listening() -> list:
        return [f for f in agent.sessions.listeners if isinstance(getattr(f, "__self__", None), panels.SessionPanel)]

    assert isinstance(first, RecordingPanel) and panels_listening() == [first._on_event]
    second = nb.run("%agent panel").result.result
    assert closed == [first] and panels_listening() == [second._on_event]  # listeners never pile up
    nb.run("%agent db other.json")
    assert closed == [first, second] and panels_listening() == []
    assert nb.run("%%agent\nstill works").result.success


def test_unloading_removes_the_magic(nb):
    nb.run("%unload_ext nbsessions")
    assert "not found" in nb.run("%agent").stderr
    nb.run("%load_ext nbsessions")
    assert nb.run("%agent").result.success


def test_settings_from_an_ipython_profile_apply_from_the_start(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("NBSESSIONS_MODEL", raising=False)
    config = Config()
    config.AgentMagics.db_path = "profile.json"
    config.AgentMagics.model = "offline"
    config.AgentMagics.history = 0
    nb = Notebook(config)
    try:
        assert "from %config AgentMagics.model" in nb.run("%agent model").stdout
        ran = nb.run("%%agent\none")
        assert ran.stdout == ""  # a model was chosen: no offline notice
        assert "history messages in context: 0" in nb.run("%%agent\ntwo").final
        assert len(stored_runs(tmp_path / "profile.json")) == 2
    finally:
        nb.close()


def test_sessions_hides_experiment_sessions_unless_asked(nb):
    nb.run("%agent new base")
    nb.run("%%agent\nhello")
    nb.run("%%agent --compare offline,offline\nhi")
    out = nb.run("%agent sessions").stdout + "".join(o.data["text/plain"] for o in nb.run("%agent sessions").outputs)
    assert "base" in out and "compare:" not in out and "2 experiment session(s) hidden" in out
    listed = nb.run("%agent sessions --experiments").outputs[0].data["text/plain"].splitlines()
    at = next(i for i, line in enumerate(listed) if " base " in f" {line} ")
    assert [line.split()[:2] for line in listed[at + 1:at + 3]] == [["↳", "compare:"]] * 2  # under their source
    assert "UsageError" in one_red_line(nb.run("%agent sessions --bogus"))
