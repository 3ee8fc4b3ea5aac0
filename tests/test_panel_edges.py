"""Small things the panel and the history listing said wrong: run counts, latency of failed runs, a stale status
line, "1 messages", the order of ``%agent history`` and a batch table's caption and columns."""

from __future__ import annotations

import json as _json

from conftest import RecordingModel
from xss import ActiveContent

from nbsessions import Agent, FunctionModel, RunOutput, RunStatus
from nbsessions.explore.batch import batch
from nbsessions.llm.base import ToolCall
from nbsessions.panel import SessionPanel
from nbsessions.panel.sent_view import sent_parts
from nbsessions.presentation.render import reply_bundle
from nbsessions.records.schema import Metrics
from nbsessions.runs.core.tools import make_tool


def test_metrics_say_how_many_runs_and_leave_failed_runs_off_the_latency_line(db):
    agent = Agent(model=RecordingModel("ok"), db=db)
    done = agent.run("fine")
    db.upsert_run(RunOutput(session_id=done.session_id, status=RunStatus.error, input="broken", error="boom",
                            metrics=Metrics(duration=30.0)))
    panel = SessionPanel(agent)
    panel.select(done.session_id)
    panel.tabs.selected_index = 2
    totals = panel.metrics.totals.value
    assert "<b>2</b> runs in this session; totals over its completed runs only" in totals
    assert "Session totals (completed runs)" not in totals
    chart = panel.metrics.chart.value
    points = chart.split('<polyline points="')[1].split('"')[0].split()
    assert len(points) == 1 and "latency (max 30" not in chart  # the error's 30 s is no latency
    panel.close()


def test_the_status_line_clears_when_a_cell_acts_after_a_click(db):
    agent = Agent(model=RecordingModel("ok"), db=db)
    first = agent.run("one")
    panel = SessionPanel(agent)
    panel.select(first.session_id)
    assert panel.status.value.endswith("is the active session")
    other = agent.create_session("mix")
    agent.set_active_session(other.session_id)  # what %%agent --new mix does in a cell
    assert panel.status.value == "" and panel.selected == other.session_id
    panel.close()


def test_one_message_is_not_messages(db):
    agent = Agent(model=RecordingModel("ok"), db=db)
    run = agent.run("alone")
    run.messages = run.messages[:1]
    line, _body = sent_parts(run)
    assert line.startswith("Sent · 1 message (0 from history)")


def test_agent_history_lists_newest_first_and_colours_error_runs(nb, workdir):
    for n in range(3):
        nb.run(f"%%agent\nprompt {n}")
    agent = nb.shell.magics_manager.registry["AgentMagics"].agent
    agent.db.upsert_run(RunOutput(session_id=agent.active_session_id, status=RunStatus.error, input="prompt 3",
                                  error="the server said no"))
    shown = nb.run("%agent history 3").outputs[0].data
    text = shown["text/plain"]
    assert text.index("> prompt 3") < text.index("> prompt 2") < text.index("> prompt 1")
    assert "> prompt 0" not in text
    assert shown["text/html"].count('class="nbsessions-error-run"') == 1
    assert shown["text/html"].index("nbsessions-error-run") < shown["text/html"].index("prompt 2")


def test_a_batch_table_wraps_long_check_names_and_its_caption_is_words(db):
    def a_check_with_a_very_long_name_indeed(reply: str) -> bool:
        return True

    result = batch(Agent(model=RecordingModel("ok"), db=db), "About {city}", [{"city": "Oslo"}],
                   checks=[a_check_with_a_very_long_name_indeed])
    table = result._repr_html_()
    assert "max-width:9em;overflow-wrap:anywhere\">a_check_with_a_very_long_name_indeed</th>" in table
    assert "white-space:nowrap\">TTFT" in table  # latency stays on one line
    assert "BatchResult(" not in table and "1 rows: 1 completed · pass rate 100%" in table


def test_the_filter_finds_sessions_by_words_in_their_prompts_and_replies_and_follows_new_runs(db):
    agent = Agent(model=RecordingModel("Zanzibar is an island."), db=db)
    found = agent.run("Where is the spice island?", session_id=agent.create_session("travel").session_id)
    other = agent.run("Something else", session_id=agent.create_session("other").session_id,
                      model=RecordingModel("Nothing to see."))
    panel = SessionPanel(agent)
    panel.sessions.text_filter.value = "ZANZIBAR"  # a word of a reply, any case
    assert panel.sessions.shown_ids == [found.session_id]
    panel.sessions.text_filter.value = "spice island"  # words of a prompt
    assert panel.sessions.shown_ids == [found.session_id]
    panel.sessions.text_filter.value = "quokka"
    assert panel.sessions.shown_ids == []
    agent.run("Tell me about the quokka", session_id=other.session_id, model=RecordingModel("A small marsupial."))
    panel.sessions.text_filter.value = "marsupial"  # a run that arrived, in a session read before
    assert panel.sessions.shown_ids == [other.session_id]
    panel.close()


def test_a_finished_cell_and_its_exported_notebook_show_the_tools_it_called_folded_and_inert(nb, workdir):
    hostile = '<img src=x onerror="alert(1)">'

    def lookup(city: str) -> str:
        """Look a city up."""
        return f"found {city}"

    def model(messages, tools):
        if not any(m.role == "tool" for m in messages):
            return ToolCall("call_1", "lookup", _json.dumps({"city": hostile}))
        return "Done."

    nb.run("%%agent --new tools\nhello")
    agent = nb.shell.magics_manager.registry["AgentMagics"].agent
    agent.tools["lookup"] = make_tool(lookup)
    run = agent.run("look it up", session_id=agent.active_session_id, model=FunctionModel(model))
    shown = reply_bundle(run, "tools")["text/html"]
    assert "<summary>1 tool call: lookup</summary>" in shown and "found &lt;img src=x" in shown
    checker = ActiveContent()
    checker.feed(shown)
    assert checker.found == []
    nb.run("%agent export ipynb out.ipynb")
    exported = (workdir / "out.ipynb").read_text()
    assert "1 tool call: lookup" in exported and "onerror=\\\"alert" not in exported.replace("&quot;", "")
