"""Continue and regenerate reach the model that made the run, not whatever model the caller's Agent holds.

The panel is built on the notebook's Agent (offline unless told otherwise); a paused run from a real endpoint
must go on at that endpoint, and a regenerated answer must come from the same model, unless one is named.
"""

from __future__ import annotations

from nbsessions import Agent, OfflineModel, RunStatus
from nbsessions.llm.openai import OpenAIChat, OpenAIResponses
from nbsessions.panel import SessionPanel
from nbsessions.runs.core.tools import tool


@tool(requires_confirmation=True)
def delete_rows(table: str) -> str:
    """Delete every row of a table."""
    return f"deleted {table}"


def test_the_panel_approves_a_paused_run_on_the_model_that_made_it(db, openai_server):
    openai_server.script({"content": "", "tool_calls": [{"name": "delete_rows", "arguments": '{"table": "t"}'}]},
                         "Done: t is empty.")
    model = OpenAIChat("served-model", base_url=openai_server.base_url, api_key="sk-test-not-stored")
    paused = Agent(model=model, db=db, tools=[delete_rows]).run("clear t")
    assert paused.status == RunStatus.paused and paused.model_origin == {
        "api": "chat", "base_url": openai_server.base_url}
    panel_agent = Agent(db=db, tools=[delete_rows])  # like the notebook's: the offline model
    assert isinstance(panel_agent.model, OfflineModel)
    panel = SessionPanel(panel_agent)
    panel.select(paused.session_id)
    card, = panel.history.paused
    card.approve.click()
    done = db.get_run(paused.run_id)
    assert done.status == RunStatus.completed and done.content.endswith("Done: t is empty.")
    assert done.model == "served-model" and len(openai_server.requests) == 2  # the continuation hit the server
    assert openai_server.requests[1]["model"] == "served-model"
    assert "sk-test" not in repr(done.to_dict())  # the record holds where, never the key


def test_regenerate_asks_the_runs_model_unless_one_is_named(db, openai_server):
    openai_server.script("first answer", "second answer")
    model = OpenAIResponses("resp-model", base_url=openai_server.base_url, api_key="k")
    first = Agent(model=model, db=db).run("name a colour")
    other = Agent(db=db)  # offline
    again = other.regenerate(run_id=first.run_id)
    assert again.content == "second answer" and again.model == "resp-model"
    assert openai_server.last.path.endswith("/responses") and len(openai_server.requests) == 2
    named = other.regenerate(run_id=first.run_id, model=OfflineModel())
    assert named.model == "offline" and len(openai_server.requests) == 2  # a named model is used as named


def test_the_agents_own_model_is_reused_when_it_is_the_runs_model(db, openai_server):
    model = OpenAIChat("same", base_url=openai_server.base_url, api_key="k")
    agent = Agent(model=model, db=db)
    run = agent.run("hi")
    assert agent.model_of(run) is model
    assert Agent(db=db).model_of(run) is not model and Agent(db=db).model_of(run).id == "same"
