"""Agno's team cookbook programs (03_teams/01_quickstart), ported by changing imports, model and db only:
respond_directly, determine_input_for_members, team and member history, member responses, team events."""

from __future__ import annotations

import json

import pytest

from nbsessions import Agent, OpenAIChat, TinyDb
from nbsessions.events import TeamRunEvent
from nbsessions.team import Team, TeamMode


@pytest.fixture
def model(openai_server):
    return lambda id="gpt-5-mini": OpenAIChat(id=id, base_url=openai_server.base_url, api_key="test-key")


def ask(member: str, task: str) -> dict:
    return {"tool_calls": [{"name": f"ask_{member}", "arguments": json.dumps({"task": task})}]}


def languages(model, tmp_path, **options):
    german_agent = Agent(name="German Agent", role="You answer German questions.", model=model(), **options)
    spanish_agent = Agent(name="Spanish Agent", role="You answer Spanish questions.", model=model(), **options)
    return german_agent, spanish_agent


# -- 05_team_history.py -----------------------------------------------------------------------------------------


def test_respond_directly_with_input_and_team_history_for_members(model, openai_server, tmp_path, capsys):
    german_agent, spanish_agent = languages(model, tmp_path)
    team = Team(name="Multi Lingual Q and A Team", model=model(), members=[german_agent, spanish_agent],
                instructions=["You MUST delegate the task to the appropriate member based on the language."],
                db=TinyDb(db_file=str(tmp_path / "team.json")), respond_directly=True,
                determine_input_for_members=False, add_team_history_to_members=True)
    session_id = "conversation_1"
    openai_server.script(ask("german_agent", "greet"), "Hallo John!")
    team.print_response("Hallo, wie heißt du? Meine Name ist John.", stream=True, session_id=session_id)
    assert "Hallo John!" in capsys.readouterr().out
    first = team.get_last_run_output(session_id)
    assert first.content == "Hallo John!" and len(openai_server.requests) == 2  # the leader is not asked again
    openai_server.script(ask("spanish_agent", "story"), "Había una vez John.")
    team.print_response("Cuéntame una historia de 2 oraciones usando mi nombre real.", stream=True,
                        session_id=session_id)
    member_prompt = openai_server.last.body["messages"][-1]["content"]
    assert member_prompt == ("<team_history_context>\n[run-1]\ninput: Hallo, wie heißt du? Meine Name ist John.\n"
                             "response: Hallo John!\n\n</team_history_context>\n\n\n"
                             "Cuéntame una historia de 2 oraciones usando mi nombre real.")
    assert team.get_last_run_output(session_id).content == "Había una vez John."


# -- 06_history_of_members.py -----------------------------------------------------------------------------------


def test_members_with_history_see_their_own_earlier_runs_in_the_team(model, openai_server, tmp_path):
    german_agent, spanish_agent = languages(model, tmp_path, add_history_to_context=True)
    team = Team(name="Multi Lingual Q and A Team", model=model(), members=[german_agent, spanish_agent],
                db=TinyDb(db_file=str(tmp_path / "team.json")), determine_input_for_members=False,
                mode=TeamMode.route)
    session_id = "conversation_2"
    openai_server.script(ask("german_agent", "x"), "Ich bin ein Agent, John.", "Ich bin ein Agent, John.")
    team.print_response("Hallo, wie heißt du? Mein Name ist John.", stream=True, session_id=session_id)
    openai_server.script(ask("spanish_agent", "x"), "Hola Juan.", "Hola Juan.")
    team.print_response("Hola, ¿cómo se llama? Mi nombre es Juan.", stream=True, session_id=session_id)
    openai_server.script(ask("german_agent", "x"), "John war da.", "John war da.")
    team.print_response("Erzähl mir eine Geschichte mit meinem Namen.", stream=True, session_id=session_id)
    german_request = openai_server.requests[-2]["messages"]
    sent = [(m["role"], m["content"]) for m in german_request if m["role"] != "system"]
    assert sent == [("user", "Hallo, wie heißt du? Mein Name ist John."), ("assistant", "Ich bin ein Agent, John."),
                    ("user", "Erzähl mir eine Geschichte mit meinem Namen.")]  # its own runs, not Spanish's


# -- member responses, team ids, session runs, events, Team(members=[]) -----------------------------------------


def test_member_runs_are_in_the_team_session_and_stored_on_request(model, openai_server, tmp_path, capsys):
    researcher = Agent(name="Researcher", model=model())
    team = Team(members=[researcher], model=model(), id="research-team", show_members_responses=True,
                db=TinyDb(db_file=str(tmp_path / "t.json")))
    openai_server.script(ask("researcher", "find facts"), "Facts found.", "The researcher found facts.")
    team.print_response("Find some facts")
    assert "Researcher: Facts found." in capsys.readouterr().out
    team_run, member_run = team.get_session().runs
    assert (team_run.team_id, member_run.parent_run_id) == ("research-team", team_run.run_id)
    assert member_run.agent_id == researcher.agent_id and team_run.agent_id is None
    assert team.get_last_run_output().member_responses == []  # store_member_responses=False, as Agno


def test_team_streams_team_events_and_forwards_members_events(model, openai_server):
    researcher = Agent(name="Researcher", model=model())
    team = Team(members=[researcher], model=model())
    openai_server.script(ask("researcher", "find facts"), "Facts found.", "The researcher found facts.")
    events = list(team.run("Find some facts", stream=True, stream_events=True))
    team_kinds = [e.event for e in events if e.run_id == events[0].run_id]
    assert team_kinds[0] == TeamRunEvent.run_started and team_kinds[-1] == TeamRunEvent.run_completed.value
    assert TeamRunEvent.run_content.value == "TeamRunContent"
    assert "TeamToolCallStarted" in team_kinds and "TeamRunContent" in team_kinds
    member = [e for e in events if e.run_id != events[0].run_id]
    assert [e.event for e in member][0] == "RunStarted" and member[0].agent_name == "Researcher"
    assert "".join(e.content for e in member if e.event == "RunContent") == "Facts found."
    assert member[0].parent_run_id == events[0].run_id
    plain = list(team.run("Again", stream=True))  # without stream_events: only the team's reply
    assert {e.event for e in plain} == {"TeamRunContent"}


def test_a_team_without_members_answers_alone(model, openai_server):
    team = Team(members=[], model=model())
    assert team.run("Hello").content == "echo: Hello"
    assert "tools" not in openai_server.last.body


def test_async_team_streams_forward_members_events_too(model, openai_server):
    import asyncio

    researcher = Agent(name="Researcher", model=model())
    team = Team(members=[researcher], model=model())
    openai_server.script(ask("researcher", "find facts"), "Facts found.", "The researcher found facts.")

    async def main():
        return [e async for e in team.arun("Find some facts", stream=True, stream_events=True)]

    events = asyncio.run(main())
    assert events[0].event == "TeamRunStarted" and events[-1].event == "TeamRunCompleted"
    assert "".join(e.content for e in events if e.event == "RunContent" and e.agent_name == "Researcher") \
        == "Facts found."
