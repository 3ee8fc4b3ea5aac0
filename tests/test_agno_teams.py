"""Agno's team cookbook programs (03_teams/01_quickstart), ported by changing imports, model and db only:
respond_directly, determine_input_for_members, team and member history, member responses, team events."""

from __future__ import annotations

import asyncio
import json

import pytest

from nbsessions import Agent, FunctionModel, OpenAIChat, TinyDb
from nbsessions.llm.base import ToolCall
from nbsessions.records.events import TeamRunEvent
from nbsessions.runs.team import Team, TeamMode


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


# -- 02_modes/broadcast/01_basic.py -----------------------------------------------------------------------------


def test_a_broadcast_team_sends_one_task_to_every_member_and_composes(model, openai_server, tmp_path, capsys):
    optimist = Agent(name="Optimist", role="Focus on opportunities and positive outcomes.", model=model())
    pessimist = Agent(name="Pessimist", role="Focus on risks and potential downsides.", model=model())
    realist = Agent(name="Realist", role="Give a balanced, practical analysis.", model=model())
    team = Team(name="Multi-Perspective Team", model=model(), mode=TeamMode.broadcast,
                members=[optimist, pessimist, realist], show_members_responses=True, markdown=True,
                instructions=["Synthesize the three perspectives into a balanced report."],
                db=TinyDb(db_file=str(tmp_path / "team.json")))
    broadcast = {"tool_calls": [{"name": "delegate_task_to_members",
                                 "arguments": json.dumps({"task": "Should we launch in Europe?"})}]}
    openai_server.script(broadcast, "Great upside.", "Costly risks.", "Worth a pilot.", "Balanced: run a pilot.")
    team.print_response("Should our startup expand to Europe next year?")
    leader_tools = [t["function"]["name"] for t in openai_server.requests[0]["tools"]]
    assert leader_tools == ["delegate_task_to_members"]  # one tool, not one per member
    member_tasks = [r["messages"][-1]["content"] for r in openai_server.requests[1:4]]
    assert member_tasks == ["Should we launch in Europe?"] * 3
    told = openai_server.requests[4]["messages"][-1]["content"]
    assert told == "Optimist: Great upside.\n\nPessimist: Costly risks.\n\nRealist: Worth a pilot."
    team_run, *members = team.get_session().runs
    assert team_run.content == "Balanced: run a pilot."
    assert [(m.agent_name, m.parent_run_id) for m in members] == [
        ("Optimist", team_run.run_id), ("Pessimist", team_run.run_id), ("Realist", team_run.run_id)]
    out = capsys.readouterr().out
    assert "Optimist: Great upside." in out and "Realist: Worth a pilot." in out


def test_under_arun_a_broadcast_team_s_members_answer_at_once(db):
    """Each member waits until all three have been asked: run one after another, the first would wait forever."""
    asked: list[str] = []
    everyone = asyncio.Event()

    def member_model(name: str):
        async def answer(messages):
            asked.append(name)
            if len(asked) == 3:
                everyone.set()
            await asyncio.wait_for(everyone.wait(), timeout=20)  # a guard against a hang, not a wait
            return f"{name} agrees"
        return FunctionModel(answer)

    def leader(messages):
        if messages[-1].role != "tool":
            return ToolCall("c1", "delegate_task_to_members", json.dumps({"task": "vote"}))
        return f"summary of: {messages[-1].content}"

    members = [Agent(name=n, model=member_model(n)) for n in ("Ann", "Bob", "Cy")]
    team = Team(members=members, model=FunctionModel(leader), db=db, delegate_to_all_members=True)
    run = asyncio.run(team.arun("decide"))
    assert team.mode == "broadcast" and sorted(asked) == ["Ann", "Bob", "Cy"]
    assert run.content == "summary of: Ann: Ann agrees\n\nBob: Bob agrees\n\nCy: Cy agrees"
    assert len(team.member_runs(run.run_id)) == 3


def test_agno_s_tasks_mode_is_refused_by_name():
    with pytest.raises(ValueError, match="'tasks'.*not supported"):
        Team(members=[Agent(name="a")], mode="tasks")
