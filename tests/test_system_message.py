"""Agno's system-message options, ``tool_call_limit``, ``metadata``, ``debug_mode`` and ``print_response``:
each is asserted from what the model received (conftest's RecordingModel) or what was stored and printed."""

from __future__ import annotations

import asyncio
import logging
import re

import pytest
from conftest import RecordingModel

from nbsessions import Agent, FunctionModel, ModelError, RunStatus, Team
from nbsessions.llm.base import ToolCall
from nbsessions.records.errors import InvalidInputError
from nbsessions.runs.core.execution import LIMIT_REACHED


def system_sent(agent: Agent, prompt: str = "Hi", **options) -> str | None:
    agent.run(prompt, **options)
    first = agent.model.requests[-1][0]
    return first.content if first.role == "system" else None


def test_each_option_lands_where_agnos_get_system_message_puts_it():
    agent = Agent(model=RecordingModel(), description="You are a news reporter.", role="reporter",
                  instructions=["Be brief.", "Cite sources."], expected_output="  A headline.  ",
                  additional_context="Today is a holiday.", markdown=True, name="Ann", add_name_to_context=True)
    assert system_sent(agent) == (
        "You are a news reporter.\n\n<your_role>\nreporter\n</your_role>\n\n- Be brief.\n- Cite sources.\n\n"
        "<additional_information>\n- Use markdown to format your answers.\n- Your name is: Ann.\n"
        "</additional_information>\n\n<expected_output>\nA headline.\n</expected_output>\n\nToday is a holiday.")


def test_a_single_instruction_is_sent_as_written_and_tags_wrap_it_when_asked():
    assert system_sent(Agent(model=RecordingModel(), instructions="Speak plainly.")) == "Speak plainly."
    tagged = Agent(model=RecordingModel(), instructions="Speak plainly.", use_instruction_tags=True)
    assert system_sent(tagged) == "<instructions>\nSpeak plainly.\n</instructions>"
    assert system_sent(Agent(model=RecordingModel())) is None  # nothing to say: no system message at all


def test_the_datetime_is_added_in_the_given_format_and_zone():
    agent = Agent(model=RecordingModel(), add_datetime_to_context=True, datetime_format="%Y-%m-%d",
                  timezone_identifier="UTC")
    assert re.fullmatch(r"<additional_information>\n- The current time is \d{4}-\d\d-\d\d\.\n"
                        r"</additional_information>", system_sent(agent))
    with pytest.raises(InvalidInputError, match="unknown timezone_identifier 'Mars/Base'"):
        Agent(timezone_identifier="Mars/Base")


def test_system_message_replaces_the_built_one_and_is_filled_from_session_state():
    agent = Agent(model=RecordingModel(), system_message="You help with {topic}.", description="ignored",
                  markdown=True, session_state={"topic": "ml"})
    assert system_sent(agent) == "You help with ml."


def test_state_fills_the_description_and_instructions_but_not_the_expected_output():
    agent = Agent(model=RecordingModel(), description="Topic: {topic}", expected_output="{topic} as is",
                  session_state={"topic": "ml"}, add_session_state_to_context=True)
    assert system_sent(agent) == ('Topic: ml\n<expected_output>\n{topic} as is\n</expected_output>\n\n\n'
                                  '<session_state>\n{"topic": "ml"}\n</session_state>')


def test_a_runs_own_instructions_replace_the_agents_inside_the_same_frame():
    agent = Agent(model=RecordingModel(), description="D.", instructions="Agent's.")
    assert system_sent(agent, instructions="Run's.") == "D.\nRun's."  # Agno's: the description ends in one newline


def test_the_context_inspector_and_the_preview_show_the_built_system_message():
    agent = Agent(model=RecordingModel(), description="D.", markdown=True)
    run = agent.run("Hi")
    sent = agent.model.requests[-1][0].content
    assert [m.content for m in agent.get_run_context(run.run_id).messages] == [sent, "Hi"]
    assert agent.preview_context("Next").messages[0].content == sent


def test_a_team_builds_its_leaders_system_message_the_same_way():
    leader = RecordingModel(id="leader", reply="done")
    team = Team(members=[Agent(model=RecordingModel(), name="helper")], model=leader, description="A team.",
                expected_output="One line.")
    team.run("Go")
    system = leader.requests[-1][0].content
    assert system.startswith("A team.\nYou lead a team.") and system.endswith("<expected_output>\nOne line.\n"
                                                                               "</expected_output>")


def test_options_nbsessions_cannot_honour_are_refused_by_name_and_typos_by_python():
    with pytest.raises(TypeError, match=r"^Agent\(knowledge=...\) is Agno's, but nbsessions does not support it"):
        Agent(knowledge=object())
    with pytest.raises(TypeError, match="unexpected keyword argument 'instructons'"):
        Agent(instructons="x")
    with pytest.raises(InvalidInputError, match="instructions must be text or a list of texts"):
        Agent(instructions=["ok", 3])


# -- tool_call_limit ---------------------------------------------------------------------------------------
def always_calls(messages, tools):
    """A model that asks for another tool call whatever it is told."""
    return ToolCall(f"c{len(messages)}", "lookup", '{"q": "x"}')


def test_calls_over_the_limit_get_agnos_refusal_and_a_model_that_keeps_calling_is_stopped():
    ran: list[str] = []

    def lookup(q: str) -> str:
        """Look something up."""
        ran.append(q)
        return "found"

    agent = Agent(model=FunctionModel(always_calls), tools=[lookup], tool_call_limit=2)
    with pytest.raises(ModelError, match=r"kept calling tools after tool_call_limit=2 was reached") as caught:
        agent.run("Go")
    assert ran == ["x", "x"]
    stored = agent.get_run_output(caught.value.run.run_id)
    assert stored.status == RunStatus.error and "tool_call_limit=2" in stored.error
    tool_results = [m.content for m in stored.messages if m.role == "tool"]
    assert tool_results == ["found", "found", LIMIT_REACHED.format(name="lookup")]


def test_a_model_that_answers_after_the_refusal_completes_the_run():
    def two_calls_then_answer(messages, tools):
        if messages[-1].role == "tool" and messages[-1].content.startswith("Tool call limit reached"):
            return "answer without it"
        return [ToolCall(f"a{len(messages)}", "lookup", "{}"), ToolCall(f"b{len(messages)}", "lookup", "{}")]

    agent = Agent(model=FunctionModel(two_calls_then_answer), tools=[lambda: "found"], tool_call_limit=1)
    agent.tools["lookup"] = agent.tools.pop("<lambda>")
    run = agent.run("Go")
    assert run.status == RunStatus.completed and run.content == "answer without it"
    assert [m.content for m in run.messages if m.role == "tool"] == ["found", LIMIT_REACHED.format(name="lookup")]


# -- metadata and debug_mode -------------------------------------------------------------------------------
def test_metadata_is_stored_with_the_session_and_the_sessions_own_values_win():
    agent = Agent(model=RecordingModel(), metadata={"team": "ml", "owner": "ana"})
    agent.run("Hi")
    assert agent.get_session().metadata == {"team": "ml", "owner": "ana"}
    agent.db.update_session(agent.session_id, metadata_patch={"owner": "bo"})
    agent.run("Again")
    assert agent.get_session().metadata == {"team": "ml", "owner": "bo"}


def test_debug_mode_logs_the_messages_sent_and_the_reply_but_never_the_key(caplog, openai_server):
    from nbsessions import OpenAIChat

    key = "sk-test-never-logged-0123456789"
    agent = Agent(model=OpenAIChat(id="gpt-4o", base_url=openai_server.base_url, api_key=key),
                  instructions="Be terse.", debug_mode=True)
    with caplog.at_level(logging.DEBUG, logger="nbsessions.debug"):
        agent.run("Say hi")
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name == "nbsessions.debug")
    assert "system: Be terse." in logged and "user: Say hi" in logged and "completed: " in logged
    assert key not in logged and key not in caplog.text


def test_without_debug_mode_nothing_is_logged(caplog):
    with caplog.at_level(logging.DEBUG, logger="nbsessions.debug"):
        Agent(model=RecordingModel()).run("Quiet")
    assert [r for r in caplog.records if r.name == "nbsessions.debug"] == []


# -- print_response ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("stream", [False, True])
def test_print_response_prints_the_message_the_reply_and_a_footer_and_stores_the_run(capsys, stream):
    agent = Agent(model=RecordingModel(reply="It was \x1b[31mdark\x1b[0m."), markdown=True)
    assert agent.print_response("Share a 1 sentence horror story", stream=stream) is None
    out = capsys.readouterr().out
    assert out.startswith("Message: Share a 1 sentence horror story\n\nIt was [31mdark[0m.\n\n— echo · ~")
    assert "\x1b" not in out and out.rstrip().endswith("· cost n/a")
    run = agent.get_last_run_output()
    assert run.status == RunStatus.completed and run.content == "It was \x1b[31mdark\x1b[0m."
    assert agent.model.requests[-1][0].content == "Use markdown to format your answers." or \
        "Use markdown to format your answers." in agent.model.requests[-1][0].content


@pytest.mark.parametrize("stream", [False, True])
def test_aprint_response_prints_the_same_through_arun(capsys, stream):
    agent = Agent(model=RecordingModel(reply="Boo."))
    asyncio.run(agent.aprint_response("Scare me", stream=stream, show_message=False, session_id="s1"))
    out = capsys.readouterr().out
    assert out.startswith("Boo.\n\n— echo · ") and "Message:" not in out
    assert agent.get_last_run_output(session_id="s1").content == "Boo."


def test_print_response_passes_run_options_and_refuses_unknown_ones(capsys):
    agent = Agent(model=RecordingModel())
    agent.print_response("Hi", instructions="Be kind.", session_id="s2")
    assert agent.model.requests[-1][0].content == "Be kind." and agent.get_session("s2").session_id == "s2"
    with pytest.raises(TypeError, match="unexpected keyword argument 'images'"):
        agent.print_response("Hi", images=[])


def test_a_team_describes_a_member_by_its_role_or_its_listed_instructions():
    leader = RecordingModel(id="leader", reply="done")
    members = [Agent(name="critic", role="Finds flaws."), Agent(name="fan", instructions=["Praise.", "Be brief."])]
    team = Team(members=members, model=leader)
    assert team.tools["ask_critic"].description == "Hand a task to critic: Finds flaws."
    assert team.tools["ask_fan"].description == "Hand a task to fan: Praise."


def test_agent_context_in_a_notebook_shows_the_system_message_a_registered_agent_sent(nb, workdir):
    from notebook_shell import stored_runs

    critic = Agent(model=RecordingModel(id="critic"), description="You review essays.", markdown=True,
                   expected_output="Three bullet points.", name="critic")
    nb.shell.push({"critic": critic})
    assert nb.run("%agent register critic critic").result.success
    assert nb.run("%%agent --agent critic --new review\nMy essay").result.success
    sent = critic.model.requests[-1][0].content
    assert sent.startswith("You review essays.\n<additional_information>") and "Three bullet points." in sent
    run = stored_runs(workdir / "nbsessions.json")[-1]
    plain = nb.run(f"%agent context {run.run_id[:8]}").outputs[-1].data["text/plain"]
    assert sent in plain
