"""``%%agent`` and ``%agent`` on a real IPython shell, against the loopback OpenAI-compatible server."""

from __future__ import annotations

import json

import pytest
from IPython.core.displaypub import CapturingDisplayPublisher
from notebook_shell import PAYLOAD, SECRET, Notebook, one_red_line, refused, stored_runs
from xss import ActiveContent

from nbsessions import formatting as fmt
from nbsessions.llm.offline import FunctionModel
from nbsessions.llm.openai import OpenAIChat, OpenAIResponses
from nbsessions.magic.cellrun import CellError, CellInterrupted, LiveOutput
from nbsessions.magic.notebook import OFFLINE_NOTICE
from nbsessions.schema import RunStatus


# -- streaming and the footer ---------------------------------------------------------------------
def test_reply_streams_into_one_output_updated_in_place_then_the_footer(served, openai_server):
    openai_server.script("one two three four five")
    ran = served.run("%%agent\nCount to five.")
    assert ran.result.success
    ids = {o.transient["display_id"] for o in ran.outputs}
    assert len(ids) == 1  # one output slot...
    assert [o.update for o in ran.outputs] == [False] + [True] * (len(ran.outputs) - 1)  # ...updated in place
    texts = [o.data["text/plain"] for o in ran.outputs[1:-1]]
    assert len(texts) >= 4 and texts == sorted(texts, key=len)  # growing reply, a frame per chunk
    assert all("—" not in t for t in texts)  # no footer while streaming
    assert ran.final.startswith("one two three four five\n\n— local-model")
    assert all("text/markdown" not in o.data for o in ran.outputs)
    call = openai_server.calls[0]  # the reply; the session's title is asked for after it, as a whole reply
    assert call.path == "/v1/chat/completions" and call.body["stream"] is True  # custom base_url → chat API
    assert call.headers["authorization"] == "Bearer not-needed"  # placeholder key for local servers


def test_updates_are_throttled_but_the_final_frame_always_shows():
    now = [0.0]
    shown = []

    class Out(LiveOutput):
        def show(self, bundle):
            shown.append(bundle["text/plain"])
            self._last = self.clock()

    out = Out(interval=0.1, clock=lambda: now[0])
    for step in range(10):  # 10 chunks, 30 ms apart: at most one frame per 100 ms
        now[0] = step * 0.03
        out.progress(lambda step=step: {"text/plain": str(step)})
    assert shown == ["0", "4", "8"]


def test_footer_numbers_are_the_stored_metrics(served, openai_server, workdir):
    openai_server.usage = {"input_tokens": 1234, "output_tokens": 56, "cached_tokens": 7}
    ran = served.run("%%agent --new costs\nHello")
    [run] = stored_runs(workdir / "nbsessions.json")
    assert (run.metrics.input_tokens, run.metrics.output_tokens, run.metrics.cached_tokens) == (1234, 56, 7)
    label = f"costs ({run.session_id[:8]})"
    ttft, duration = fmt.seconds(run.metrics.time_to_first_token), fmt.seconds(run.metrics.duration)  # as stored
    footer = f"local-model · {label} · 1,234 in / 56 out tokens · TTFT {ttft} · {duration} · cost n/a"
    assert ran.final.endswith("— " + footer)
    assert "1,234 in / 56 out tokens" in ran.html[-1]
    metrics = served.run("%agent metrics").stdout
    assert "1,234 in / 56 out / 1,290 total (cached 7" in metrics


def test_no_stream_shows_the_reply_once_at_the_end(served, openai_server):
    for line in ("%%agent --no-stream\nHi", "%%agent\nHi"):
        if line == "%%agent\nHi":
            served.run("%config AgentMagics.stream = False")
        ran = served.run(line)
        assert len(ran.outputs) == 1 and ran.final.startswith("echo: Hi\n\n— local-model")
    ran = served.run("%%agent --stream\nHi")  # the flag wins over the setting
    assert len(ran.outputs) > 2


# -- conversations: history, persistence, re-runs -----------------------------------------------------
def sent_messages(openai_server) -> list[tuple[str, str]]:
    return [(m["role"], m["content"]) for m in openai_server.last.body["messages"]]


def test_cells_of_a_session_form_a_conversation(served, openai_server):
    served.run("%%agent\nMy name is Ada.")
    served.run("%%agent\nWhat is my name?")
    assert sent_messages(openai_server) == [
        ("user", "My name is Ada."), ("assistant", "echo: My name is Ada."), ("user", "What is my name?")]
    served.run("%%agent --no-history\nAgain?")
    assert sent_messages(openai_server) == [("user", "Again?")]
    served.run("%%agent --history 1\nLast one?")
    assert [m for m in sent_messages(openai_server) if m[0] == "user"] == [("user", "Again?"), ("user", "Last one?")]
    served.run("%config AgentMagics.history = 0")
    served.run("%%agent\nNone now?")
    assert len(sent_messages(openai_server)) == 1


def test_the_conversation_survives_a_kernel_restart(workdir, openai_server):
    first = Notebook()
    first.run(f"%config AgentMagics.base_url = '{openai_server.base_url}'")
    first.run("%%agent -m local --new analysis\nRemember: 42.")
    first.close()

    second = Notebook()  # a new shell, a new AgentMagics, the same folder
    try:
        second.run(f"%config AgentMagics.base_url = '{openai_server.base_url}'")
        ran = second.run("%%agent -m local\nWhat should you remember?")
        assert ran.result.success
        assert sent_messages(openai_server)[:2] == [("user", "Remember: 42."), ("assistant", "echo: Remember: 42.")]
        assert "analysis (" in ran.final
        table = second.run("%agent sessions").outputs[0].data["text/plain"]
        assert table.count("analysis") == 1 and "●  analysis" in table
    finally:
        second.close()


def test_rerunning_a_cell_supersedes_its_previous_run(served, openai_server, workdir):
    served.run("%%agent\nFirst try.", cell_id="cell-a")
    served.run("%%agent\nSecond try.", cell_id="cell-a")  # the same cell, edited and re-run
    served.run("%%agent\nNext.", cell_id="cell-b")
    assert [c for r, c in sent_messages(openai_server) if r == "user"] == ["Second try.", "Next."]
    first, second, _ = stored_runs(workdir / "nbsessions.json")
    assert first.superseded_by == second.run_id and first.content == "echo: First try."  # kept, marked
    assert first.cell_id == second.cell_id == "cell-a"
    assert second.execution_count == first.execution_count + 1  # the In[n] of each cell
    history = served.run("%agent history").outputs[0].data["text/plain"]
    assert "completed, superseded" in history


def test_cells_without_an_id_are_new_runs(served, openai_server):
    served.run("%%agent\nSame text.")
    served.run("%%agent\nSame text.")
    served.run("%%agent\nAnd?")
    assert [c for r, c in sent_messages(openai_server) if r == "user"] == ["Same text.", "Same text.", "And?"]


# -- bad input: one red line, nothing written -------------------------------------------------------------
@pytest.mark.parametrize(("cell", "message"), [
    ("%%agent --bogus\nHi", "UsageError: unrecognized arguments: --bogus"),
    ("%%agent --history many\nHi", "UsageError: argument --history: invalid int value: 'many'"),
    ("%%agent -s first --new\nHi", "UsageError: use either -s SESSION"),
    ("%%agent --history 2 --no-history\nHi", "UsageError: use either --history N or --no-history"),
    ("%%agent -s nosuch\nHi", "UsageError: no session 'nosuch' in nbsessions.json"),
    ("%%agent --state {bad\nHi", "UsageError: invalid state JSON"),
    ("%%agent --state '[1, 2]'\nHi", "UsageError: state must be a JSON object"),
    ("%%agent -m 'gpt 5'\nHi", "UsageError: unknown model id 'gpt 5'"),
    ("%%agent\nExplain {undefined_df.shape}", "UsageError: unknown name 'undefined_df'"),
    ("%%agent -o 1x\nHi", "UsageError: -o needs a variable name"),
    ("%%agent\n   \n", "UsageError: the cell has no prompt"),
    ("%agent nonsense", "UsageError: unknown %agent subcommand 'nonsense'"),
])
def test_bad_input_is_one_red_line_and_writes_nothing(served, workdir, cell, message):
    served.run("%%agent --new first\nHello")
    assert refused(served, cell, workdir / "nbsessions.json").startswith(message)


def test_a_session_of_another_user_is_refused_without_writing(served, workdir):
    served.run("%%agent -u alice --new hers\nHello")
    before = (workdir / "nbsessions.json").read_bytes()
    ran = served.run("%%agent -u bob\nLet me in")
    line = one_red_line(ran)  # names nothing of alice's session
    assert line.startswith("UsageError: that session belongs to another user") and "hers" not in line
    assert (workdir / "nbsessions.json").read_bytes() == before


def test_base_url_without_a_model_name_says_what_to_set(nb, openai_server):
    nb.run(f"%config AgentMagics.base_url = '{openai_server.base_url}'")
    ran = nb.run("%%agent\nHi")
    assert "UsageError: AgentMagics.base_url is set but no model is named" in one_red_line(ran)


# -- provider failures: one line, stored as error -------------------------------------------------------
@pytest.mark.parametrize(("model", "message"), [
    ("error-401", "ModelError: 401 unauthorized: check OPENAI_API_KEY"),
    ("error-429", "ModelError: 429 rate limited: retry in 1 s"),
    ("error-500", "ModelError: 500 server error from 127.0.0.1"),
])
def test_provider_errors_are_one_line_and_stored_as_error_runs(served, openai_server, workdir, model, message):
    openai_server.retry_after = 0.001  # the SDK's own retry waits this long
    ran = served.run(f"%%agent -m {model} -o r\nHi")
    assert isinstance(ran.result.error_in_exec, CellError)
    assert message in one_red_line(ran)
    assert ran.outputs == []  # the waiting frame is gone: no empty output above the error line
    [run] = stored_runs(workdir / "nbsessions.json")
    assert run.status == RunStatus.error and message.split(": ", 1)[1] in run.error
    assert served.shell.user_ns["r"].status == RunStatus.error  # -o is set even when the run failed
    history = served.run("%agent history").outputs[0].data["text/plain"]
    assert "· error" in history and message.split(": ", 1)[1] in history


def test_timeouts_are_one_line(served, openai_server, workdir):
    served.magics.notebook.register_model(
        "slow", OpenAIChat("slow-5000", base_url=openai_server.base_url, timeout=0.2, max_retries=0))
    ran = served.run("%%agent -m slow\nHi")
    assert "ModelError: timed out after 0.2 s" in one_red_line(ran)
    assert stored_runs(workdir / "nbsessions.json")[0].status == RunStatus.error


# -- Ctrl-C ---------------------------------------------------------------------------------------------
def interrupted_model(messages):
    yield "partial "
    yield "words "
    raise KeyboardInterrupt  # what Ctrl-C does while the model is waiting for the network


def test_ctrl_c_keeps_the_partial_reply_and_stores_a_cancelled_run(served, openai_server, workdir):
    served.magics.notebook.register_model("stops", FunctionModel(interrupted_model))
    ran = served.run("%%agent -m stops --new story\nTell me a long story.")
    assert isinstance(ran.result.error_in_exec, CellInterrupted)
    assert isinstance(ran.result.error_in_exec, KeyboardInterrupt)  # "Run all" stops here
    assert one_red_line(ran).endswith("interrupted: the partial reply is kept as a cancelled run")
    assert ran.final.startswith("partial words") and "cancelled" in ran.final
    [run] = stored_runs(workdir / "nbsessions.json")
    assert run.status == RunStatus.cancelled and run.content == "partial words "
    served.run("%%agent\nNext")
    assert sent_messages(openai_server) == [("user", "Next")]  # a cancelled run is never history


class InterruptingPublisher(CapturingDisplayPublisher):
    """Ctrl-C landing while the output is being updated, rather than inside the model."""

    def publish(self, data, metadata=None, source=None, *, transient=None, update=False):
        if update and not getattr(self, "fired", False) and "—" not in data.get("text/plain", ""):
            self.fired = True
            raise KeyboardInterrupt
        super().publish(data, metadata, transient=transient, update=update)


def test_ctrl_c_during_a_display_update_also_stores_a_cancelled_run(served, openai_server, workdir):
    openai_server.script("a b c d e f")
    publisher = InterruptingPublisher()
    served.shell.display_pub = publisher
    result = served.shell.run_cell("%%agent\nGo", store_history=True)
    assert isinstance(result.error_in_exec, CellInterrupted)
    [run] = stored_runs(workdir / "nbsessions.json")
    assert run.status == RunStatus.cancelled
    assert run.content and "a b c d e f".startswith(run.content) and run.content != "a b c d e f"
    assert "cancelled" in publisher.outputs[-1]["data"]["text/plain"]


# -- untrusted output -----------------------------------------------------------------------------------
def test_model_output_reaches_the_cell_only_as_sanitised_html(served, openai_server):
    openai_server.script(PAYLOAD)
    ran = served.run("%%agent\nSay something nasty")
    served.run("%%agent\nAnd now?")
    history = served.run("%agent history").outputs[0].data["text/html"]
    assert len(ran.html) > 3
    for fragment in [*ran.html, history]:
        parser = ActiveContent()
        parser.feed(fragment)
        assert parser.found == []
    parser = ActiveContent()
    parser.feed(ran.html[-1])
    assert "strong" in parser.tags  # formatting still works
    assert all(set(o.data) == {"text/html", "text/plain"} for o in ran.outputs)


# -- -o and --result ----------------------------------------------------------------------------------
def test_output_variable_and_result_value(served, workdir):
    ran = served.run("%%agent -o reply\nHi")
    assert ran.result.result is None  # no Out[] value, so the reply is not shown twice
    run = served.shell.user_ns["reply"]
    assert run.content == "echo: Hi" and run.run_id == stored_runs(workdir / "nbsessions.json")[0].run_id
    ran = served.run("%%agent --result\nHi again")
    assert ran.result.result == "echo: Hi again"


# -- state and {fields} ---------------------------------------------------------------------------------
def test_state_and_variables_fill_prompts_and_instructions(served, openai_server):
    served.run("rows = [3, 1, 2]\nclass T: shape = (10, 2)\ndf = T()")
    served.run("%agent new lesson")  # named: no title request among the calls checked below
    served.run('%agent state {"topic": "ml", "level": 2}')
    served.run("%%agent --system 'You teach {topic}.' --state '{\"level\": 3}'\n"
               "Level {level}: sort {rows} and explain {df.shape}; keep {{rows}}.")
    messages = sent_messages(openai_server)
    assert messages[0] == ("system", "You teach ml.")
    assert messages[-1] == ("user", "Level 3: sort [3, 1, 2] and explain (10, 2); keep {rows}.")
    shown = json.loads(served.run("%agent state").stdout)
    assert shown == {"topic": "ml", "level": 3}


# -- models ---------------------------------------------------------------------------------------------
def test_model_resolution_order(nb, monkeypatch):
    assert "offline" in nb.run("%agent model").stdout
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    assert "OpenAIResponses(id='gpt-5.2'" in nb.run("%agent model").stdout  # OpenAI itself: Responses API
    monkeypatch.setenv("NBSESSIONS_MODEL", "gpt-env")
    assert "id='gpt-env'" in nb.run("%agent model").stdout
    nb.run("%config AgentMagics.model = 'gpt-config'")
    assert "id='gpt-config'" in nb.run("%agent model").stdout
    nb.run("%config AgentMagics.api = 'chat'")
    assert "OpenAIChat(id='gpt-config'" in nb.run("%agent model").stdout
    assert SECRET not in nb.run("%agent model").stdout
    assert isinstance(nb.magics.notebook.model("gpt-x"), OpenAIChat)
    nb.run("%config AgentMagics.api = 'auto'")
    assert isinstance(nb.magics.notebook.model("gpt-x"), OpenAIResponses)


def test_flag_beats_setting_for_one_cell(served, openai_server):
    served.run("%%agent -m other-model\nHi")
    assert openai_server.last.body["model"] == "other-model"
    served.run("%agent model third-model")
    served.run("%%agent\nHi")
    assert openai_server.last.body["model"] == "third-model"


def test_offline_fallback_is_announced_once(nb):
    first = nb.run("%%agent\nHello")
    assert first.stdout.strip() == OFFLINE_NOTICE
    assert "Offline model" in first.final
    second = nb.run("%%agent\nAgain")
    assert second.stdout == "" and "history messages in context: 2" in second.final


# -- keys never written --------------------------------------------------------------------------------
def test_the_api_key_is_never_written_to_db_outputs_or_exports(served, openai_server, workdir, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    openai_server.api_key = SECRET  # the server refuses any other key: the run proves the key was used
    ran = served.run("%%agent --new keyed\nHi")
    assert ran.result.success and openai_server.last.headers["authorization"] == f"Bearer {SECRET}"
    shown = [ran.stdout, ran.stderr, *(json.dumps(o.data) for o in ran.outputs)]
    for line in ("%agent export md out.md", "%agent export json out.json", "%agent", "%agent history",
                 "%agent metrics", "%agent sessions", "%agent model"):
        other = served.run(line)
        shown += [other.stdout, other.stderr, *(json.dumps(o.data) for o in other.outputs)]
    files = [workdir / "out.md", workdir / "out.json", workdir / "nbsessions.json"]
    assert all(SECRET not in text for text in shown)
    assert all(SECRET not in f.read_text() for f in files)
    exported = json.loads((workdir / "out.json").read_text())
    assert exported["session"]["session_name"] == "keyed" and exported["runs"][0]["content"] == "echo: Hi"
    md = (workdir / "out.md").read_text()
    assert md.startswith("# keyed") and "echo: Hi" in md and "local-model" in md


def test_a_model_the_server_does_not_list_is_one_red_line_and_nothing_is_sent(served, openai_server, workdir):
    openai_server.models = ["local-model", "other-model"]
    bad = served.run("%%agent -m local-modle\nhello")
    host = openai_server.base_url.split("//")[1].split("/")[0]
    assert one_red_line(bad).endswith(f"unknown model id 'local-modle': {host} offers local-model, other-model")
    assert not (workdir / "nbsessions.json").exists() or stored_runs(workdir / "nbsessions.json") == []
    assert [c.path for c in openai_server.calls] == []  # nothing was sent to a chat endpoint
    assert served.run("%%agent -m other-model\nhello").result.success
    assert openai_server.last.body["model"] == "other-model"


def test_servers_without_a_model_list_accept_any_well_formed_name(served, openai_server):
    assert openai_server.models is None  # GET /v1/models answers 404, as on many local servers
    assert served.run("%%agent -m anything-goes\nhello").result.success
    assert openai_server.last.body["model"] == "anything-goes"
