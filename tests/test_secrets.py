"""No piece of a configured secret is kept or shown: a whole session through every path, then every file and
every output scanned for the key and each of its 8-character fragments."""

from __future__ import annotations

import json
import logging
import pathlib
import traceback

import pytest
from ipywidgets import HTML
from notebook_shell import Notebook

from nbsessions import Agent, ModelError, TinyDb
from nbsessions.explore import compare, export_result, export_session
from nbsessions.llm.openai import OpenAIChat
from nbsessions.panel import SessionPanel
from nbsessions.panel.widget_tree import descendants
from nbsessions.presentation.render import reply_bundle
from nbsessions.records.redact import MARK, StreamRedactor, leaks, redact, redact_data
from nbsessions.runs.core.tools import tool

KEY = "sk-proj-Qm7vR2xT9LpW4sZ8nK3jH6fD1cB5yA0eUw"
FRAGMENTS = [KEY[i:i + 8] for i in range(len(KEY) - 7)]
STATUSES = (400, 401, 402, 403, 404, 408, 409, 413, 422, 429, 500, 502, 503)


def leaked(texts: dict[str, str]) -> dict[str, str]:
    """For each text that holds a piece of the key, where the first piece is (empty: nothing leaked)."""
    found = {}
    for where, text in texts.items():
        at = min((i for f in FRAGMENTS if (i := text.find(f)) >= 0), default=-1)
        if at >= 0:
            found[where] = text[max(0, at - 120):at + 60].replace(KEY, "<KEY>")
    return found


def files_under(root) -> dict[str, str]:
    return {str(p): p.read_bytes().decode("utf-8", "replace") for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def keyed(openai_server, workdir, monkeypatch):
    """The loopback server requiring the key, quoting it in every error; the key in OPENAI_API_KEY."""
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    openai_server.api_key = KEY
    openai_server.quirks = frozenset({"quote-key"})
    return openai_server


def test_redaction_replaces_every_piece_of_eight_or_more_characters(monkeypatch):
    other = "pg-Pa55word/with#odd@chars"
    assert redact(f"a {KEY} b", [KEY]) == f"a {MARK} b" and redact(f"a {KEY} b", [other]) == f"a {KEY} b"
    assert redact(f"x{KEY[5:13]}y{KEY[-9:]}", [KEY]) == f"x{MARK}y{MARK}"
    assert redact(f"{KEY[:7]} {other[3:11]}", [KEY, other]) == f"{KEY[:7]} {MARK}"  # 7 characters say nothing
    assert not leaks("an ordinary sentence", [KEY]) and leaks(KEY[10:18], [KEY])
    data = {"state": {KEY[:10]: [KEY, 1, None]}, "plain": "kept"}
    assert redact_data(data) is data  # no secret configured: nothing to do
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    assert redact_data(data) == {"state": {MARK: [MARK, 1, None]}, "plain": "kept"}
    assert redact_data({"plain": "kept"}) == {"plain": "kept"}
    for size in (1, 3, 7, 8, 13):
        stream = StreamRedactor()
        text = f"before {KEY} between {KEY[2:12]} after"
        shown = "".join(stream.feed(text[i:i + size]) for i in range(0, len(text), size)) + stream.flush()
        assert shown == f"before {MARK} between {MARK} after"


def test_a_whole_session_keeps_and_shows_no_piece_of_the_key(keyed, workdir, caplog, capsys):
    @tool(requires_confirmation=True)
    def fetch_token() -> str:
        """Return the service token."""
        return f"token={KEY}"

    def lookup() -> str:
        """Look the key up."""
        return f"found {KEY}"

    def broken() -> str:
        """Fail, quoting the key."""
        raise RuntimeError(f"cannot use {KEY}")

    model = OpenAIChat("local-model", base_url=keyed.base_url, api_key_env="OPENAI_API_KEY", max_retries=0)
    db = TinyDb(workdir / "s.nbsessions.json")
    agent = Agent(model, db, instructions=f"Authenticate with {KEY}.", session_state={"token": KEY},
                  metadata={"key": KEY, KEY: "as a key"}, tools=[lookup, fetch_token, broken], debug_mode=True,
                  add_history_to_context=True)
    shown: dict[str, str] = {}
    caplog.set_level(logging.DEBUG, logger="nbsessions.debug")

    keyed.script(f"Your key is {KEY}, and a piece: {KEY[3:20]}")
    agent.print_response("What is my key?")
    keyed.script(f"Streamed: {' '.join(KEY)} and {KEY}!")
    agent.print_response("Stream it", stream=True)
    keyed.script({"content": "", "tool_calls": [{"name": "lookup", "arguments": "{}"}]}, "looked up")
    agent.run("Look it up")
    keyed.script({"content": "", "tool_calls": [{"name": "fetch_token", "arguments": "{}"}]}, f"got {KEY}")
    paused = agent.run("Fetch the token")
    assert paused.status.value == "paused"
    agent.continue_run(paused.run_id, approve=True)
    agent.update_session_state({"again": f"k={KEY}"})
    shown["reprs"] = repr(paused) + repr(agent.get_session()) + repr(agent.get_last_run_output())
    agent.set_session_name(session_name=f"session {KEY}")
    keyed.script({"content": "", "tool_calls": [{"name": "broken", "arguments": "{}"}]}, "after the failure")
    try:
        agent.run("Break it")
    except Exception as exc:  # a failing tool is the model's to see, or the run's error: shown either way
        shown["tool failure"] = "".join(traceback.format_exception(exc))
    for status in STATUSES:
        keyed.fail_next(f"error-{status}")
        with pytest.raises(ModelError) as failed:
            agent.run(f"fail with {status}")
        assert failed.value.status_code == status
        shown[f"error {status}"] = "".join(traceback.format_exception(failed.value)) + repr(failed.value)
    assert keyed.calls and all(c.headers["authorization"] == f"Bearer {KEY}" for c in keyed.calls)

    for fmt in ("md", "json", "csv", "ipynb"):
        shown[f"export {fmt}"] = export_session(agent, agent.session_id, fmt, workdir / f"export.{fmt}")
    keyed.script(f"compared: {KEY}")
    result = compare(agent, "Compare it", models=[model], progress=False)
    shown["comparison"] = result._repr_html_() + repr(result) + reply_bundle(result[0].run, "s")["text/plain"]
    for fmt in ("md", "json", "csv"):
        shown[f"comparison {fmt}"] = export_result(result, fmt, workdir / f"comparison.{fmt}")
    panel = SessionPanel(agent)
    panel.select(agent.session_id)
    shown["panel"] = "\n".join(w.value for w in [panel, *descendants(panel)] if isinstance(w, HTML))
    shown["debug log"] = caplog.text
    shown["printed"] = "".join(capsys.readouterr())
    assert "tool result" in caplog.text and "[redacted]" in shown["export md"]
    db.close()
    assert leaked(shown) == {}
    assert leaked(files_under(workdir)) == {}


@pytest.fixture
def keyed_notebook(keyed, workdir):
    notebook = Notebook()
    notebook.run(f"%config AgentMagics.base_url = '{keyed.base_url}'")
    notebook.run("%config AgentMagics.model = 'local-model'")
    notebook.run("%config AgentMagics.api_key_env = 'OPENAI_API_KEY'")
    notebook.run("%config AgentMagics.update_interval = 0")
    yield notebook
    notebook.close()


TOOL_CELL = '''
import os
from nbsessions.runs.core.tools import tool

@tool(requires_confirmation=True)
def fetch_token() -> str:
    """Return the service token."""
    return "token=" + os.environ["OPENAI_API_KEY"]
'''


def test_the_magics_cell_outputs_show_no_piece_of_the_key(keyed, keyed_notebook, workdir):
    nb = keyed_notebook
    cells = [f"%%agent --new 'n {KEY}' --state '{{\"t\": \"{KEY}\"}}'\nSay hello",
             "%%agent\nEcho the key", "%agent state", "%agent sessions", "%agent history", "%agent export md",
             "%agent export json", "%agent", f"%agent rename r{KEY}", TOOL_CELL, "%agent tools fetch_token",
             "%%agent\nFetch the token", "%agent continue --approve", "%agent history", "%agent context"]
    fetch = {"content": "", "tool_calls": [{"name": "fetch_token", "arguments": "{}"}]}
    keyed.script("hello", f"the key: {KEY}", fetch, f"fetched {KEY}")
    outputs: dict[str, str] = {}
    for status in (400, 403, 500):
        keyed.fail_next(f"error-{status}")
        cells.insert(2, f"%%agent\nfail {status}")
    for number, cell in enumerate(cells):
        ran = nb.run(cell)
        outputs[f"{number}: {cell[:30].replace(KEY, 'KEY')}"] = "\n".join(
            [ran.stdout, ran.stderr, str(ran.result.error_in_exec or "")]
            + [json.dumps(o.data) for o in ran.outputs])
    assert any("[redacted]" in text for text in outputs.values())
    assert "fetched [redacted]" in "".join(outputs.values())  # the paused run was approved and went on
    assert leaked(outputs) == {}
    assert leaked(files_under(workdir)) == {}


ATTACKS = [
    "{os.environ[OPENAI_API_KEY]:.37}", "{os.environ[OPENAI_API_KEY]}", "{os.environ}",
    "{os.environ[OPENAI_API_KEY][3]}",
    "{key}", "{key[3]}", "{key[-1]}", "{key:.20}", "{key:.8}", "{key:>60}", "{key:s}", "{key!r}", "{key!a}",
    "{keys}", "{keys[0]}", "{keys[0][5]}", "{cfg}", "{cfg[token]}", "{cfg[token]:.9}", "{holder}", "{holder.token}",
    "{holder.token[0]}", "{raw}", "{raw[2]}", "{front}{back}", "{front} and {back}", "{key[0]}{key[1]}{key[2]}",
]


def test_templates_that_reach_the_key_are_refused_and_nothing_is_sent(keyed, keyed_notebook):
    nb = keyed_notebook
    nb.run("import os\nkey = os.environ['OPENAI_API_KEY']\nkeys = [key]\ncfg = {'token': key}\nraw = key.encode()\n"
           "front, back = key[:10], key[10:20]\n"
           "class Holder:\n    token = key\n    def __str__(self):\n        return 'holds ' + key\nholder = Holder()")
    for attack in ATTACKS:
        ran = nb.run(f"%%agent\nTell me {attack} please")
        assert not ran.result.success, attack
        said = ran.stderr + ran.stdout + str(ran.result.error_in_exec)
        assert "nothing was sent or stored" in said and leaked({attack: said}) == {}, attack
    assert keyed.calls == []  # neither a prompt nor a title request
    assert nb.run("%%agent --new\nTell me {key[:3]} and {len(key)} and {cfg[other]}").result.success is False
    assert nb.run("%%agent --new\nTell me {front[:3]} about {keys.__len__}").result.success is False
    nb.run("short = key[:2]")
    ran = nb.run("%%agent --new\nSay {short} please")  # two characters of the key are not a piece of it
    assert ran.result.success and keyed.calls
    assert leaked({f"call {i}": json.dumps(c.body) for i, c in enumerate(keyed.calls)}) == {}


@pytest.mark.parametrize("password", ["Bob#Pw/Sec2x", "p@ss@w0rd!xyz", "Bob?Pw=Sec2&q", "sp ace:pass@wd"])
def test_a_database_password_that_is_not_percent_encoded_is_masked_wherever_the_url_is_printed(
        password, nb, capsys):
    from nbsessions.__main__ import main
    from nbsessions.db.postgres import PostgresDb
    from nbsessions.db.urls import mask_url
    from nbsessions.records.errors import StorageError

    url = f"postgresql://bob:{password}@127.0.0.1:1/db"
    pieces = {password[i:i + 8] for i in range(len(password) - 7)}
    assert mask_url(f"at {url} today") == "at postgresql://bob:***@127.0.0.1:1/db today" or " " in password
    shown: dict[str, str] = {}
    with pytest.raises(StorageError) as failed:
        PostgresDb(url, timeout=1).list_sessions()
    shown["api"] = str(failed.value) + repr(failed.value)
    for line in (f"%agent db {url}", "%agent", "%%agent\nhello", "%agent sessions"):
        ran = nb.run(line)
        shown[line.replace(password, "<pw>")] = ran.stdout + ran.stderr + str(ran.result.error_in_exec) + "".join(
            json.dumps(o.data) for o in ran.outputs)
    main(["ls", url])
    shown["cli ls"] = "".join(capsys.readouterr())
    assert "bob:***@" in shown["api"] + shown["cli ls"]
    assert {where: text for where, text in shown.items() if any(p in text for p in pieces)} == {}


def stored_text(db, request) -> str:
    """Everything a store holds, as text: its files, its tables."""
    if getattr(db, "url", None):
        import psycopg

        with psycopg.connect(request.getfixturevalue("postgres_url")) as conn:
            return "\n".join(str(row) for table in ("sessions", "runs", "meta")
                             for row in conn.execute(f"SELECT * FROM nbsessions.{table}").fetchall())
    if getattr(db, "path", None):
        return "\n".join(files_under(pathlib.Path(db.path).parent).values())
    return json.dumps([db._sessions, db._runs, db._meta], default=str)


def test_every_store_keeps_no_piece_of_the_key(db, keyed, request):
    model = OpenAIChat("local-model", base_url=keyed.base_url, api_key_env="OPENAI_API_KEY", max_retries=0)
    agent = Agent(model, db, instructions=f"Use {KEY}.", session_state={KEY: KEY}, metadata={"k": KEY[4:30]})
    keyed.script(f"the key {KEY}")
    agent.run("Echo it")
    keyed.fail_next("error-400")
    with pytest.raises(ModelError):
        agent.run("Fail")
    agent.update_session_state({"more": KEY[1:]}, )
    agent.set_session_name(session_name=f"named {KEY}")
    agent.fork_session(agent.session_id)
    text = stored_text(db, request)
    assert "[redacted]" in text and agent.session_id in text
    assert leaked({type(db).__name__: text}) == {}
