"""The magic's session intelligence on a real IPython shell: tools, paused runs and ``%agent continue``,
history budgets, summaries and generated session names."""

from __future__ import annotations

import json
import re

import pytest
from conftest import RecordingModel, echo
from IPython.core.displaypub import CapturingDisplayPublisher
from notebook_shell import PAYLOAD, one_red_line, stored_runs
from xss import ActiveContent

from nbsessions.llm.offline import FunctionModel
from nbsessions.magic.cellrun import CellError
from nbsessions.records.errors import ModelError
from nbsessions.records.schema import RunStatus
from nbsessions.runs.summary import SUMMARY_PROMPT


def safe(fragment: str) -> bool:
    parser = ActiveContent()
    parser.feed(fragment)
    return parser.found == []


def call(tool: str, **arguments) -> dict:
    """A server reply that calls ``tool`` with these arguments."""
    return calls((tool, arguments))


def calls(*wanted: tuple[str, dict]) -> dict:
    """A server reply that calls each ``(tool, arguments)`` at once."""
    return {"content": "", "tool_calls": [{"name": tool, "arguments": json.dumps(arguments)}
                                          for tool, arguments in wanted]}


def paused_trip(served, openai_server, tmp_path, reply: dict, prompt: str, then: str):
    """A run in a new session ``trip`` whose model answers ``reply`` (tool calls: it pauses), then ``then``.
    Returns the cell and the run's short id."""
    openai_server.script(reply, then)
    ran = served.run(f"%%agent --new trip\n{prompt}")
    return ran, stored_runs(tmp_path / "nbsessions.json")[0].run_id[:8]


def db_bytes(tmp_path) -> bytes:
    return (tmp_path / "nbsessions.json").read_bytes()


TOOLS = '''
from nbsessions.runs.core.tools import tool
calls = []

def word_count(text: str) -> int:
    """Count the words of a text.

    text: the text to count
    """
    calls.append(text)
    return len(text.split())

@tool(requires_confirmation=True)
def drop_table(name: str) -> str:
    """Drop a table."""
    calls.append(name)
    return f"dropped {name}"

@tool(requires_user_input=True, user_input_fields=["seat"])
def book(flight: str, seat: str) -> str:
    """Book a seat on a flight."""
    return f"booked {flight} seat {seat}"

@tool(external_execution=True)
def run_sql(query: str) -> str:
    """Run SQL in the user's database."""
'''


# -- tools ----------------------------------------------------------------------------------------------
def test_tools_from_the_notebook_are_called_by_the_model(served, openai_server):
    served.run(TOOLS)
    listed = served.run("%agent tools word_count").stdout
    assert listed == "tools:\n  word_count(text) — Count the words of a text.\n"
    openai_server.script(call("word_count", text="a b c"), "There are 3 words.")
    ran = served.run("%%agent --new counting\nHow many words in 'a b c'?")
    assert ran.result.success and ran.final.startswith("There are 3 words.\n\n— local-model")
    shown = ran.outputs[-1].data["text/html"]  # the tool and its arguments, folded under the reply
    assert '<details class="nbsessions-tools"' in shown and "<summary>1 tool call: word_count</summary>" in shown
    assert "{&quot;text&quot;: &quot;a b c&quot;}" in shown
    frames = [o.data["text/plain"] for o in ran.outputs]  # the cell's one output, frame by frame
    assert any(f.startswith("… local-model") and f.endswith("· calling word_count") for f in frames), frames
    first, second = openai_server.requests
    assert [t["function"]["name"] for t in first["tools"]] == ["word_count"]
    assert {"role": "tool", "tool_call_id": second["messages"][-1]["tool_call_id"], "content": "3"} \
        == second["messages"][-1]
    assert served.shell.user_ns["calls"] == ["a b c"]
    assert "word_count" in served.run("%agent").stdout  # the status lists them
    assert served.run("%agent tools --clear").stdout.startswith("tools: none")
    served.run("%%agent\nAgain")
    assert "tools" not in openai_server.last.body


@pytest.mark.parametrize(("line", "message"), [
    ("%agent tools nosuch", "UsageError: %agent tools nosuch: no variable 'nosuch' in the notebook"),
    ("%agent tools number", "UsageError: %agent tools number: not a function (it is int)"),
    ("%agent tools anonymous", "UsageError: %agent tools anonymous: a tool needs a plain function name"),
    ("%agent tools word_count nosuch", "UsageError: %agent tools nosuch: no variable"),
    ("%agent tools --clear word_count", "UsageError: use either %agent tools NAME ... or %agent tools --clear"),
])
def test_tools_that_are_not_functions_are_refused_and_nothing_changes(served, line, message):
    served.run(TOOLS + "number = 3\nanonymous = lambda text: text\n")
    served.run("%agent tools drop_table")
    assert one_red_line(served.run(line)).startswith(message)
    assert list(served.magics.agent.tools) == ["drop_table"]


def test_agentic_state_lets_the_model_update_the_session_state(served, openai_server):
    served.run("%config AgentMagics.agentic_state = True")
    assert "update_session_state(session_state_updates)" in served.run("%agent tools").stdout
    openai_server.script(call("update_session_state", session_state_updates={"topic": "ml"}), "Noted.")
    served.run("%%agent --new stateful\nRemember that the topic is ml.")
    assert json.loads(served.run("%agent state").stdout) == {"topic": "ml"}
    served.run("%config AgentMagics.agentic_state = False")
    assert served.run("%agent tools").stdout.startswith("tools: none")


# -- paused runs ------------------------------------------------------------------------------------------
def test_a_paused_run_shows_what_it_waits_for_and_continues_when_approved(served, openai_server, tmp_path):
    served.run(TOOLS)
    served.run("%agent tools drop_table")
    openai_server.script(call("drop_table", name="<script>alert(1)</script>"), "The table is gone.")
    ran = served.run("%%agent --new ops\nDrop the <b>old</b> table.")
    assert ran.result.success and served.shell.user_ns["calls"] == []  # nothing ran without approval
    [run] = stored_runs(tmp_path / "nbsessions.json")
    assert run.status == RunStatus.paused and run.requirements[0].kind == "confirmation"
    notice = ran.outputs[-1].data
    command = f"%agent continue {run.run_id[:8]} --approve"
    assert f"to continue: {command} (or --reject)" in notice["text/plain"]
    assert "drop_table (confirmation) needs your approval" in notice["text/plain"]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in notice["text/html"] and command in notice["text/html"]
    assert all(safe(h) for h in ran.html)

    done = served.run(command)
    assert done.result.success and done.final.startswith("The table is gone.\n\n— local-model · ops (")
    assert served.shell.user_ns["calls"] == ["<script>alert(1)</script>"]
    assert openai_server.last.body["messages"][-1]["content"] == "dropped <script>alert(1)</script>"
    [run] = stored_runs(tmp_path / "nbsessions.json")
    assert run.status == RunStatus.completed and run.requirements[0].resolved
    served.run("%%agent\nNext?")  # the continued run is history like any other
    assert [m["role"] for m in openai_server.last.body["messages"]] == \
        ["user", "assistant", "tool", "assistant", "user"]


def test_a_rejected_call_never_runs_and_the_model_is_told(served, openai_server, tmp_path):
    served.run(TOOLS)
    served.run("%agent tools drop_table")
    openai_server.script(call("drop_table", name="users"), "Understood, I left it.")
    served.run("%%agent --new ops\nDrop users.")
    served.run("%agent continue --reject")
    assert served.shell.user_ns["calls"] == []
    assert openai_server.last.body["messages"][-1]["content"] == "Function call was rejected by the user"
    assert stored_runs(tmp_path / "nbsessions.json")[0].status == RunStatus.completed


def test_input_and_outside_results_are_checked_before_anything_runs(served, openai_server, tmp_path):
    served.run(TOOLS)
    served.run("%agent tools book run_sql")
    ran, short = paused_trip(served, openai_server, tmp_path,
                             calls(("book", {"flight": "LH1"}), ("run_sql", {"query": "select 1"})),
                             "Book LH1 and count rows.", "Booked, and the query returned one row.")
    expected = f"""%agent continue {short} --input '{{"seat": "..."}}' --results '{{"run_sql": "..."}}'"""
    assert expected in ran.outputs[-1].data["text/plain"]
    before = db_bytes(tmp_path)
    for line, message in [
        ("%agent continue", "UsageError: book needs --input with seat"),
        ("%agent continue --input {bad", "UsageError: invalid --input JSON"),
        ("%agent continue --input '[1]'", "UsageError: --input must be a JSON object"),
        ("""%agent continue --input '{"seat": "12A"}'""", "UsageError: run_sql (call "),
        ("""%agent continue --approve --input '{"seat": "12A"}'""", f"UsageError: run {short} asks for no approval"),
        ("""%agent continue --input '{"seat": "1"}' --results '{"run_sql": 1, "other": 2}'""",
         "UsageError: --results names 'other'"),
        ("%agent continue zzzz", "UsageError: no run in this session with an id starting 'zzzz'"),
        ("%agent continue --approve --reject", "UsageError: argument --reject: not allowed with argument"),
    ]:
        assert one_red_line(served.run(line)).startswith(message), line
    assert db_bytes(tmp_path) == before
    done = served.run("""%agent continue --input '{"seat": "12A"}' --results '{"run_sql": [[1]]}'""")
    assert done.final.startswith("Booked, and the query returned one row.")
    assert [m["content"] for m in openai_server.last.body["messages"][-2:]] == ["booked LH1 seat 12A", "[[1]]"]
    assert one_red_line(served.run(f"%agent continue {short}")).startswith(
        f"UsageError: run {short} is completed, not paused")


MEALS = '''
@tool(requires_user_input=True, user_input_fields=["meal"])
def order(flight: str, meal: str) -> str:
    """Order a meal."""
    return f"{meal} on {flight}"
'''


def test_several_tools_asking_for_input_are_answered_one_object_each(served, openai_server, tmp_path):
    served.run(TOOLS + MEALS)
    served.run("%agent tools book order")
    ran, short = paused_trip(served, openai_server, tmp_path,
                             calls(("book", {"flight": "LH1"}), ("order", {"flight": "LH1"})),
                             "Book and order.", "All set.")
    command = f"""%agent continue {short} --input '{{"book": {{"seat": "..."}}, "order": {{"meal": "..."}}}}'"""
    assert command in ran.outputs[-1].data["text/plain"]
    flat = served.run("""%agent continue --input '{"seat": "1A", "meal": "soup"}'""")
    assert one_red_line(flat).startswith("UsageError: book (call ")
    done = served.run("""%agent continue --input '{"book": {"seat": "1A"}, "order": {"meal": "soup"}}'""")
    assert done.final.startswith("All set.")
    assert [m["content"] for m in openai_server.last.body["messages"][-2:]] == ["booked LH1 seat 1A",
                                                                                 "soup on LH1"]


def test_continue_without_a_paused_run_or_session_is_one_red_line(nb, tmp_path):
    assert "no active session yet" in one_red_line(nb.run("%agent continue --approve"))
    nb.run("%%agent --new calm\nHello")
    before = db_bytes(tmp_path)
    assert one_red_line(nb.run("%agent continue")).startswith("UsageError: nothing is paused in session calm (")
    assert db_bytes(tmp_path) == before


def test_a_failure_while_continuing_is_one_line_and_stored(served, openai_server, tmp_path):
    served.run(TOOLS)
    served.run("%agent tools drop_table")
    openai_server.script(call("drop_table", name="t"))
    served.run("%%agent --new ops\nDrop t.")
    openai_server.fail_next("error-401")
    ran = served.run("%agent continue --approve")
    assert isinstance(ran.result.error_in_exec, CellError)
    assert one_red_line(ran).startswith("ModelError: 401 unauthorized")
    assert stored_runs(tmp_path / "nbsessions.json")[0].status == RunStatus.error


def test_a_paused_run_continues_on_the_model_it_started_with(served, openai_server):
    served.run(TOOLS)
    served.run("%agent tools drop_table")

    def scripted(messages, tools):
        from nbsessions.llm.base import ToolCall
        if messages[-1].role == "tool":
            return f"function model saw: {messages[-1].content}"
        return ToolCall("c1", "drop_table", '{"name": "t"}')

    served.magics.notebook.register_model("fm", FunctionModel(scripted))
    served.run("%%agent -m fm --new ops\nDrop t.")
    done = served.run("%agent continue --approve")
    assert done.final.startswith("function model saw: dropped t\n\n— function")
    assert openai_server.calls == []  # the notebook's default model was never asked


# -- history budgets -----------------------------------------------------------------------------------------
def test_history_by_messages_and_by_token_budget(served, openai_server):
    served.run("%%agent --new long\n" + "a" * 40)  # each exchange: 10 + 12 estimated tokens
    served.run("%%agent\n" + "b" * 40)

    def ask(line: str) -> list[str]:  # re-runs of one cell: each replaces the last in the history
        served.run(f"{line}\nq", cell_id="asking")
        return [m["content"] for m in openai_server.last.body["messages"]]

    assert ask("%%agent --history-messages 2") == ["b" * 40, "echo: " + "b" * 40, "q"]
    assert ask("%%agent --history-tokens 30") == ["b" * 40, "echo: " + "b" * 40, "q"]  # 29 left: one exchange
    served.run("%config AgentMagics.history_tokens = 30")
    assert len(ask("%%agent")) == 3
    assert len(ask("%%agent --history-tokens 1000")) == 5  # the flag wins over the setting
    served.run("%config AgentMagics.history_tokens = 0")
    assert len(ask("%%agent --history-messages 0")) == 1


@pytest.mark.parametrize(("cell", "message"), [
    ("%%agent --history-tokens 0\nq", "UsageError: --history-tokens needs 1 or more tokens"),
    ("%%agent --history-messages -1\nq", "UsageError: --history-messages needs 0 or more messages"),
    ("%%agent --history 2 --history-messages 2\nq", "UsageError: use either --history N (runs) or"),
    ("%%agent --no-history --history-tokens 5\nq", "UsageError: --no-history sends no history"),
    ("%%agent --history-messages many\nq", "UsageError: argument --history-messages: invalid int value"),
])
def test_contradicting_history_flags_are_one_red_line(served, tmp_path, cell, message):
    served.run("%%agent --new first\nHello")
    before = db_bytes(tmp_path)
    assert one_red_line(served.run(cell)).startswith(message)
    assert db_bytes(tmp_path) == before


# -- summaries ---------------------------------------------------------------------------------------------
def summarising(messages):
    if messages[0].content.startswith(SUMMARY_PROMPT):
        if "FAIL" in messages[-1].content:
            raise ModelError("500 server error while summarising", status_code=500)
        return "**Summary**: " + PAYLOAD
    return echo(messages)


def test_summaries_follow_the_setting_and_stand_in_for_older_runs(nb):
    model = RecordingModel(summarising)
    seen = model.requests
    nb.magics.notebook.register_model("scripted", model)
    nb.run("%config AgentMagics.model = 'scripted'")
    nb.run("%%agent --new talk\none")
    off = nb.run("%agent summary").stdout
    assert off.startswith("no summary yet for session talk (") and "%config AgentMagics.summaries = 5" in off
    nb.run("%config AgentMagics.summaries = 2")
    assert "the first one comes after 2 completed runs" in nb.run("%agent summary").stdout
    nb.run("%%agent\ntwo")
    shown = nb.run("%agent summary").outputs[0].data  # waits for the background refresh
    assert shown["text/plain"].startswith("summary of talk (") and "through run" in shown["text/plain"]
    assert safe(shown["text/html"]) and "<strong>Summary</strong>" in shown["text/html"]
    nb.run("%%agent\nthree")
    system = seen[-1][0]
    assert system.role == "system" and system.content.startswith("Summary of the conversation so far:")
    assert [m.content for m in seen[-1] if m.from_history] == []  # the summary stands in for both runs
    nb.run("%config AgentMagics.summaries = 0")
    nb.run("%%agent\nfour")
    assert seen[-1][0].role == "user" and "off" in nb.run("%agent").stdout


def test_a_failing_summary_never_fails_a_cell_and_says_why(nb):
    nb.magics.notebook.register_model("scripted", FunctionModel(summarising))
    nb.run("%config AgentMagics.model = 'scripted'")
    nb.run("%config AgentMagics.summaries = 1")
    ran = nb.run("%%agent --new risky\nFAIL please")
    assert ran.result.success
    out = nb.run("%agent summary").stdout
    assert "no summary yet" in out and "the last refresh failed: 500 server error while summarising" in out


# -- generated names ---------------------------------------------------------------------------------------
def session_line(nb) -> str:
    return nb.run("%agent").stdout.split("session:", 1)[1].splitlines()[0].strip()


def test_new_sessions_are_named_after_their_first_completed_run_unless_named(nb):
    nb.run("%%agent\nPlot the monthly sales by region for the last year")
    assert re.fullmatch(r"Plot the monthly sales by region… \(\w{8}\), 1 run", session_line(nb))
    nb.run("%%agent --new mine\nSomething else entirely")
    assert session_line(nb).startswith("mine (")
    nb.run("%agent new")
    nb.run("%agent rename chosen")
    nb.run("%%agent\nA prompt that would make a title")
    assert session_line(nb).startswith("chosen (")


class CountingPublisher(CapturingDisplayPublisher):
    """Records how many requests the server had seen each time the cell's output changed."""

    def __init__(self, server) -> None:
        super().__init__()
        self.server = server
        self.seen: list[int] = []

    def publish(self, data, metadata=None, source=None, *, transient=None, update=False):
        self.seen.append(len(self.server.calls))
        super().publish(data, metadata, transient=transient, update=update)


def test_a_real_model_names_the_session_only_after_the_reply_is_shown(served, openai_server):
    openai_server.script("Start with a histogram.", "Sales plots")
    publisher = CountingPublisher(openai_server)
    served.shell.display_pub = publisher
    result = served.shell.run_cell("%%agent\nWhich plot for sales?", store_history=True)
    assert result.success
    assert publisher.outputs[-1]["data"]["text/plain"].startswith("Start with a histogram.\n\n— local-model")
    assert publisher.seen[-1] == 1 and max(publisher.seen) == 1  # every frame, the footer too, came first
    assert len(openai_server.calls) == 2 and openai_server.last.body["messages"][0]["content"].startswith(
        "Give a title")
    assert session_line(served).startswith("Sales plots (")


def test_a_failed_name_leaves_the_session_unnamed_and_the_cell_fine(served, openai_server):
    openai_server.fail_next("", "error-401")  # the reply works, the title request fails
    ran = served.run("%%agent\nHello there")
    assert ran.result.success and ran.stdout == "" and ran.stderr == ""
    assert re.fullmatch(r"\w{8}, 1 run", session_line(served))
    served.run("%%agent\nSecond")  # one attempt only: no title request now
    assert len(openai_server.calls) == 3


def cell_controls(ran):
    """The Approve / Reject (or Continue) card a paused cell shows above its notice."""
    from ipywidgets.widgets.widget import _instances

    shown = [o.data["application/vnd.jupyter.widget-view+json"]["model_id"] for o in ran.outputs
             if "application/vnd.jupyter.widget-view+json" in o.data]
    return _instances[shown[-1]]


def test_approve_in_the_paused_cell_continues_the_run_there_on_its_model(served, openai_server):
    from IPython.utils.capture import capture_output

    served.run(TOOLS)
    served.run("%agent tools drop_table")
    openai_server.script(call("drop_table", name="old"), "The table is gone.")
    ran = served.run("%%agent --new ops\nDrop the old table.")
    notice = ran.outputs[-1]
    card = cell_controls(ran)
    assert [b.description for b in card.buttons] == ["Approve", "Reject"] and card.comm is not None
    with capture_output() as cap:
        card.approve.click()
    updates = {o.transient["display_id"]: o for o in cap.outputs if o.update}
    reply = updates[notice.transient["display_id"]].data["text/plain"]
    assert reply.startswith("The table is gone.") and "ops (" in reply  # the notice became the reply
    assert card.comm is None and len(updates) == 2  # the buttons went with it
    assert openai_server.last.body["model"] == "local-model"  # the model that made the run
    agent = served.magics.notebook.agent
    assert agent.get_runs(agent.active_session_id)[-1].status.value == "completed"


def test_a_missing_field_is_said_on_the_cell_card_and_nothing_runs(served, openai_server):
    served.run(TOOLS)
    served.run("%agent tools book")
    openai_server.script(call("book", flight="LX1"))
    ran = served.run("%%agent --new trip\nBook me a seat.")
    card = cell_controls(ran)
    calls = len(openai_server.calls)
    card.submit.click()
    assert card.message.value.startswith("fill in ") and len(openai_server.calls) == calls
    agent = served.magics.notebook.agent
    assert agent.get_runs(agent.active_session_id)[-1].status.value == "paused"


def test_a_paused_cell_shows_the_reply_once_the_panel_continues_the_run(served, openai_server):
    from IPython.utils.capture import capture_output

    from nbsessions.panel import SessionPanel

    served.run(TOOLS)
    served.run("%agent tools drop_table")
    openai_server.script(call("drop_table", name="old"), "The table is gone.")
    ran = served.run("%%agent --new ops\nDrop the old table.")
    notice = ran.outputs[-1]
    assert "is paused" in notice.data["text/plain"]
    panel = SessionPanel(served.magics.notebook.agent)  # what %agent panel shows
    card, = panel.history.paused
    with capture_output() as cap:
        card.approve.click()
    updates = {o.transient["display_id"]: o for o in cap.outputs if o.update}
    update = updates.pop(notice.transient["display_id"])  # the paused cell's own output
    assert [o.data for o in updates.values()] == [{"text/plain": ""}]  # and its buttons went
    assert update.data["text/plain"].startswith("The table is gone.") and "is paused" not in update.data["text/plain"]
    assert "ops (" in update.data["text/plain"]  # with its footer
    with capture_output() as again:
        served.magics.notebook.agent.run("unrelated", session_id=panel.selected)
    assert not [o for o in again.outputs if o.update]  # a notice is replaced once, then forgotten
    panel.close()
