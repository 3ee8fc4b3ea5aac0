"""The keywords of ``run`` / ``arun`` / ``preview_context`` and ``continue_run`` / ``acontinue_run`` are declared
once (``RunOptions``, ``ContextOptions``, ``ContinueOptions``): every method shows each of them, refuses a misspelt
one at call time and passes the rest on."""

from __future__ import annotations

import asyncio
import inspect

import pytest
from conftest import RecordingModel
from IPython.core.completer import provisionalcompleter

from nbsessions import Agent, Team
from nbsessions.db import InMemoryDb
from nbsessions.run_options import ContextOptions, ContinueOptions, RunOptions

CONTEXT_KEYWORDS = ["user_id", "session_state", "add_history_to_context", "num_history_runs", "num_history_messages",
                    "max_history_tokens", "instructions", "model", "cell_id", "add_session_state_to_context",
                    "metadata"]
RUN_KEYWORDS = ["stream", "stream_events", "yield_run_output", *CONTEXT_KEYWORDS, "session_id", "debug_mode",
                "execution_count",
                "tags", "parent_run_id"]
CONTINUE_KEYWORDS = ["stream", "stream_events", "yield_run_output", "run_id", "requirements", "session_id",
                     "approve", "user_input", "results", "model"]


def keywords(method) -> dict[str, inspect.Parameter]:
    return {name: p for name, p in inspect.signature(method).parameters.items()
            if p.kind is inspect.Parameter.KEYWORD_ONLY}


@pytest.mark.parametrize("method", [Agent.run, Agent.arun, Team.run, Team.arun])
def test_run_and_arun_show_every_run_option_by_its_agno_name_with_default_none(method):
    shown = keywords(method)
    assert list(shown) == RUN_KEYWORDS
    assert list(RunOptions.__annotations__) == RUN_KEYWORDS[3:]
    assert all(shown[name].default is None for name in RunOptions.__annotations__)
    assert shown["session_id"].annotation == "str | None" and shown["model"].annotation == "Model | None"
    assert not [p for p in inspect.signature(method).parameters.values() if p.kind is inspect.Parameter.VAR_KEYWORD]


def test_preview_context_takes_exactly_the_options_that_decide_a_runs_context():
    parameters = inspect.signature(Agent.preview_context).parameters
    assert list(parameters) == ["self", "input", "session_id", *CONTEXT_KEYWORDS]
    assert list(ContextOptions.__annotations__) == CONTEXT_KEYWORDS
    assert all(parameters[name].default is None for name in ["session_id", *CONTEXT_KEYWORDS])


@pytest.mark.parametrize("method", [Agent.continue_run, Agent.acontinue_run])
def test_continue_run_and_its_async_twin_show_every_answer_keyword(method):
    shown = keywords(method)
    assert list(shown) == CONTINUE_KEYWORDS
    assert list(ContinueOptions.__annotations__) == CONTINUE_KEYWORDS[3:]
    assert all(shown[name].default is None for name in ContinueOptions.__annotations__)


@pytest.mark.parametrize("call", [
    lambda agent: agent.run("hi", sesion_id="s"),
    lambda agent: agent.arun("hi", sesion_id="s"),
    lambda agent: agent.arun("hi", stream=True, sesion_id="s"),
    lambda agent: agent.continue_run("r", sesion_id="s"),
    lambda agent: agent.acontinue_run("r", sesion_id="s"),
    lambda agent: agent.acontinue_run("r", stream=True, sesion_id="s"),
    lambda agent: agent.preview_context("hi", sesion_id="s"),
], ids=["run", "arun", "arun-stream", "continue_run", "acontinue_run", "acontinue_run-stream", "preview"])
def test_a_misspelt_keyword_raises_type_error_when_called_and_writes_nothing(call):
    db = InMemoryDb()
    agent = Agent(model=RecordingModel(), db=db)
    with pytest.raises(TypeError, match=r"^Agent\.\w+\(\) got an unexpected keyword argument 'sesion_id'$"):
        call(agent)  # arun raises here, not when its coroutine is awaited
    assert db.list_sessions() == [] and agent.model.requests == []


def test_every_option_given_to_arun_reaches_the_stored_run():
    db = InMemoryDb()
    model = RecordingModel(id="other")
    agent = Agent(model=RecordingModel(), db=db, instructions="agent's own")
    parent = Agent(model=RecordingModel(), db=db).run("parent", session_id="s1", user_id="u1")
    run = asyncio.run(agent.arun("hi", session_id="s1", user_id="u1", session_state={"k": 1}, instructions="ours",
                                 model=model, cell_id="c1", execution_count=7, tags=["t"],
                                 parent_run_id=parent.run_id))
    stored = db.get_run(run.run_id)
    assert (stored.session_id, stored.user_id, stored.model, stored.cell_id, stored.execution_count, stored.tags,
            stored.parent_run_id) == ("s1", "u1", "other", "c1", 7, ["t"], parent.run_id)
    assert model.prompts == [["ours", "hi"]] and agent.model.requests == []
    assert db.get_session("s1").session_state == {"k": 1}


def test_ipython_completes_and_shows_the_run_options_of_an_agent(nb):
    nb.run("from nbsessions import Agent\nagent = Agent()")
    with provisionalcompleter():
        completions = [c.text for c in nb.shell.Completer.completions("agent.arun('x', num_hist", 24)]
    assert "num_history_runs=" in completions and "num_history_messages=" in completions
    shown = nb.shell.object_inspect("agent.run")["definition"]
    assert "max_history_tokens: 'int | None' = None" in shown and "**options" not in shown
