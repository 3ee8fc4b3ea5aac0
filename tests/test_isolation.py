"""The notebook's user everywhere: after ``%agent user bob`` nothing of alice's is listed, shown or changed."""

from __future__ import annotations

import json

import pytest
from notebook_shell import one_red_line

from nbsessions.__main__ import main as cli
from nbsessions.db import TinyDb


@pytest.fixture
def alice(nb, workdir):
    """Alice's session with a run and some state, made in the notebook; then the notebook switches to bob."""
    nb.run("%agent user alice")
    nb.run("%%agent --new hers\nmy secret plan")
    nb.run('%agent state {"plan": ["a", "b", "c", "d"]}')
    with TinyDb(workdir / "nbsessions.json") as db:
        (session,) = db.list_sessions()
    nb.run("%agent user bob")
    return session


def stored(workdir, session_id: str):
    with TinyDb(workdir / "nbsessions.json") as db:
        return db.get_session(session_id), [r.run_id for r in db.list_runs(session_id)]


def test_the_panel_acts_as_the_notebooks_user(nb, workdir, alice):
    before = stored(workdir, alice.session_id)
    nb.run("%%agent --new his\nhello")
    panel = nb.run("%agent panel").result.result
    assert panel.agent.user_id == "bob"
    assert [label for label, _ in panel.sessions.user_filter.options] == ["all users", "bob"]
    assert alice.session_id not in panel.sessions.shown_ids and len(panel.sessions.shown_ids) == 1

    panel.select(alice.session_id)  # what a crafted call (or a stale id) would ask for
    assert "belongs to another user" in panel.status.value
    assert panel.selected != alice.session_id
    assert "my secret plan" not in panel.history.markup and "plan" not in panel.state.text.value
    assert stored(workdir, alice.session_id) == before


def test_a_delete_confirmed_after_switching_user_is_refused(nb, workdir, alice):
    nb.run("%agent user alice")
    panel = nb.run("%agent panel").result.result
    panel.select(alice.session_id)
    panel.actions.delete.click()  # asked while alice...
    assert "hers" in panel.actions.confirm_text.value
    nb.run("%agent user bob")  # ...confirmed by bob
    assert alice.session_id not in panel.sessions.shown_ids
    panel.actions.confirm.click()
    panel.select(alice.session_id)
    panel.state.text.value = "{}"
    panel.state.save.click()
    assert stored(workdir, alice.session_id)[0].session_state == {"plan": ["a", "b", "c", "d"]}
    assert stored(workdir, alice.session_id)[0].session_name == "hers"


@pytest.mark.parametrize("line", [
    "%agent use hers", "%agent use {id}", "%agent delete {id} --yes", "%agent delete hers --yes",
    "%agent history", "%agent state", "%agent fork", "%agent rename mine now", "%agent metrics",
    "%agent export md", '%agent state {{"plan": null}}', "%agent regenerate", "%agent variants",
    "%%agent -s {id}\nwhat is {{plan[0]}}?",
])
def test_no_subcommand_reaches_another_users_session(nb, workdir, alice, line):
    before = stored(workdir, alice.session_id)
    ran = nb.run(line.format(id=alice.session_id))
    text = ran.stdout + ran.stderr + "".join(o.data.get("text/plain", "") for o in ran.outputs)
    assert "secret" not in text and '"a"' not in text and "hers (" not in text  # her prompt, state or label
    assert stored(workdir, alice.session_id) == before


def test_sessions_with_a_user_set_say_unowned_sessions_exist(nb):
    nb.run("%%agent --new everyone's\nhello")
    nb.run("%agent user bob")
    out = nb.run("%agent sessions").stdout
    assert "no sessions yet" not in out
    assert "1 session(s) without a user are hidden" in out and "%agent user --clear" in out
    nb.run("%agent user --clear")
    assert "everyone's" in nb.run("%agent sessions").outputs[0].data["text/plain"]


def test_templates_do_not_reveal_another_users_state_before_the_owner_check(nb, workdir, alice):
    nb.run("%agent user --clear")
    nb.run("%agent use hers")  # the file's owner may use it; a cell for bob may not
    before = (workdir / "nbsessions.json").read_bytes()
    errors = {one_red_line(nb.run(f"%%agent -u bob\n{{plan[{i}]}}")) for i in (1, 100)}
    assert len(errors) == 1 and "belongs to another user" in errors.pop()
    assert (workdir / "nbsessions.json").read_bytes() == before


def test_cli_show_export_and_ls_filter_by_user(nb, workdir, alice, capsys):
    nb.run("%%agent --new his\nhello")
    path = str(workdir / "nbsessions.json")
    assert cli(["show", path, "hers", "-u", "bob"]) == 1
    assert "no session 'hers' of user 'bob'" in capsys.readouterr().err
    assert cli(["export", path, alice.session_id[:8], "-u", "bob", "-f", "json"]) == 1
    assert "secret" not in capsys.readouterr().out
    assert cli(["ls", path, "-u", "bob", "--plain"]) == 0
    listed = capsys.readouterr().out
    assert "his" in listed and "hers" not in listed
    assert cli(["export", path, "hers", "-u", "alice", "-f", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["session"]["user_id"] == "alice"
    assert cli(["show", path, "hers"]) == 0  # the file's owner reads everything
    assert "my secret plan" in capsys.readouterr().out


def nothing_of(session, text: str) -> bool:
    """No 8-character piece of the session's id, nor its name, in ``text``."""
    sid = session.session_id.replace("-", "")
    return (not session.session_name or session.session_name not in text) and not any(
        sid[i:i + 8] in text.replace("-", "") for i in range(len(sid) - 7))


def test_refusals_of_another_users_run_name_nothing_of_theirs(workdir):
    from nbsessions import Agent, FunctionModel, SessionAccessError
    from nbsessions.llm.base import ToolCall
    from nbsessions.runs.core.tools import tool

    @tool(requires_confirmation=True)
    def launch() -> str:
        """Launch."""
        return "launched"

    model = FunctionModel(lambda messages: ToolCall("c1", "launch", "{}"))
    db = TinyDb(workdir / "api.nbsessions.json")
    hers = Agent(model, db, user_id="alice", tools=[launch])
    paused = hers.run("start", session_id=None)
    session = hers.get_session()
    his = Agent(model, db, user_id="bob", tools=[launch])
    attempts = [lambda: his.continue_run(paused.run_id, approve=True),
                lambda: his.regenerate(session.session_id, paused.run_id),
                lambda: his.choose_variant(paused.run_id),
                lambda: his.fork_session(session.session_id, paused.run_id),
                lambda: his.get_run_output(paused.run_id, session.session_id),
                lambda: his.get_session(session.session_id)]
    for attempt in attempts:
        with pytest.raises(SessionAccessError) as refused:
            attempt()
        assert nothing_of(session, str(refused.value)), str(refused.value)
    assert hers.get_run_output(paused.run_id).status.value == "paused"  # nothing changed


def test_a_panel_opened_as_another_user_shows_nothing_of_the_active_sessions_owner(nb, workdir):
    nb.run("%agent user alice")
    nb.run("%%agent --new hers\nmy secret plan")
    with TinyDb(workdir / "nbsessions.json") as db:
        (session,) = db.list_sessions()
    nb.run("%config AgentMagics.user = 'bob'")  # the active session stays alice's
    panel = nb.run("%agent panel").result.result
    assert panel.agent.user_id == "bob"
    assert panel.selected != session.session_id and session.session_id not in panel.sessions.shown_ids
    assert nothing_of(session, panel.status.value), panel.status.value
