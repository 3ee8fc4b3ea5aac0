"""The panel's State tab keeps the user's unsaved text when the stored state or the session changes meanwhile."""

from __future__ import annotations

import pytest
from conftest import RecordingModel

from nbsessions import Agent, TinyDb
from nbsessions.panel import SessionPanel


@pytest.fixture
def agent(tmp_path):
    with TinyDb(tmp_path / "s.nbsessions.json") as db:
        yield Agent(model=RecordingModel(), db=db)


@pytest.fixture
def panel(agent):
    session = agent.create_session("s", session_state={"topic": "ml", "n": 1})
    panel = SessionPanel(agent)
    panel.select(session.session_id)
    yield panel
    panel.close()


EDIT = '{"topic": "stats", "n": 1}'


def test_a_run_landing_keeps_the_unsaved_edit(agent, panel):
    panel.state.text.value = EDIT  # typed, not saved
    agent.run("a question", session_id=panel.selected)  # the panel redraws: History shows the run
    assert "a question" in panel.history.markup
    assert panel.state.text.value == EDIT  # before: replaced by the stored state
    assert panel.state.message.value == ""  # the stored state did not change: nothing to say


def test_a_changed_stored_state_is_announced_and_save_writes_only_the_users_keys(agent, panel):
    panel.state.text.value = EDIT
    agent.update_session_state({"theirs": 2}, panel.selected)  # heard by the panel, as a run's tool would be
    assert panel.state.text.value == EDIT
    assert panel.state.message.value.startswith("the stored state changed")
    assert panel.state.reload.layout.display is None  # offered
    panel.state.save.click()
    assert agent.get_session_state(panel.selected) == {"topic": "stats", "n": 1, "theirs": 2}
    assert '"theirs": 2' in panel.state.text.value and panel.state.message.value == ""
    assert panel.state.reload.layout.display == "none"


def test_reload_drops_the_edit_and_shows_the_stored_state(agent, panel):
    panel.state.text.value = EDIT
    agent.update_session_state({"n": 5}, panel.selected)
    panel.state.reload.click()
    assert '"topic": "ml"' in panel.state.text.value and '"n": 5' in panel.state.text.value
    assert panel.state.message.value == "" and not panel.state.edited
    agent.update_session_state({"n": 6}, panel.selected)  # no edit now: the editor follows the store again
    assert '"n": 6' in panel.state.text.value

