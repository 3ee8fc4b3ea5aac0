"""Agno's workflow cookbook programs, ported by changing imports, model and db only: print_response, streamed
workflow and step events, step history, retries and skips, additional_data, step metrics."""

from __future__ import annotations

import pytest

from nbsessions import Agent, OpenAIChat, TinyDb
from nbsessions.records.events import RunEvent
from nbsessions.records.workflow_events import WorkflowRunEvent
from nbsessions.runs.workflows.workflow import Step, StepInput, StepOutput, Workflow, WorkflowError


@pytest.fixture
def model(openai_server):
    return lambda id="gpt-4o": OpenAIChat(id=id, base_url=openai_server.base_url, api_key="test-key")


def research_and_write(model, db=None):
    researcher = Agent(name="Researcher", model=model(), instructions="Research the topic")
    writer = Agent(name="Writer", model=model(), instructions="Write a short post")
    return Workflow(name="Content Creation", db=db, telemetry=False,  # as the cookbook passes it
                    steps=[Step(name="Research", agent=researcher), Step(name="Write", agent=writer)])


# -- cookbook 01_basic_workflows/01_sequence_of_steps: print_response, stream=True ------------------------------


def test_workflow_print_response_prints_each_step_and_the_footer(model, openai_server, capsys):
    workflow = research_and_write(model)
    workflow.print_response(input="AI trends in 2024", markdown=True)
    out = capsys.readouterr().out
    assert out.startswith("Message: AI trends in 2024\n")
    assert "Step 1: Research\necho: AI trends in 2024\n" in out
    assert "Step 2: Write\necho: echo: AI trends in 2024\n" in out
    assert out.rstrip().endswith("steps · " + out.rstrip().rsplit(" · ", 1)[-1]) and "Content Creation · 2 steps" in out


def test_workflow_print_response_streams_the_steps_replies(model, openai_server, capsys):
    workflow = research_and_write(model)
    workflow.print_response(input="AI trends in 2024", stream=True)
    out = capsys.readouterr().out
    assert "Step 1: Research\necho: AI trends in 2024" in out
    assert "Step 2: Write\necho: echo: AI trends in 2024" in out and "Content Creation · 2 steps" in out


def test_run_stream_events_yields_workflow_step_and_agent_events_in_order(model, openai_server):
    workflow = research_and_write(model)
    events = list(workflow.run(input="AI trends", stream=True, stream_events=True))
    kinds = [e.event for e in events]
    assert kinds[0] == WorkflowRunEvent.workflow_started.value and kinds[-1] == "WorkflowCompleted"
    steps = [(e.event, e.step_name) for e in events if e.event in ("StepStarted", "StepCompleted")]
    assert steps == [("StepStarted", "Research"), ("StepCompleted", "Research"), ("StepStarted", "Write"),
                     ("StepCompleted", "Write")]
    research = kinds[kinds.index("StepStarted"):kinds.index("StepCompleted")]
    assert research[1] == RunEvent.run_started.value and RunEvent.run_content.value in research
    assert RunEvent.run_completed.value in research  # the agent's own milestones, forwarded
    done = events[-1]
    assert done.content == "echo: echo: AI trends" and [r.step_name for r in done.step_results] == ["Research",
                                                                                                  "Write"]
    assert {e.run_id for e in events if e.event.startswith(("Workflow", "Step"))} == {done.run_id}


def test_run_stream_without_events_yields_the_replies_between_start_and_completion(model, openai_server):
    workflow = research_and_write(model)
    events = list(workflow.run(input="AI trends", stream=True))
    kinds = {e.event for e in events}
    assert kinds == {"WorkflowStarted", "RunContent", "WorkflowCompleted"}
    assert workflow.get_last_run_output().content == "echo: echo: AI trends"


def test_a_failing_stream_reports_the_error_then_raises(model, openai_server):
    def broken(step_input: StepInput) -> StepOutput:
        raise ValueError("no data")

    workflow = Workflow(name="Broken", steps=[Step(name="fetch", executor=broken, max_retries=0)])
    seen = []
    with pytest.raises(WorkflowError, match="no data"):
        for event in workflow.run(input="go", stream=True, stream_events=True):
            seen.append(event.event)
    assert seen[0] == "WorkflowStarted" and seen[-1] == "WorkflowError"
    assert workflow.get_last_run_output().status.value == "error"


# -- cookbook 06_advanced_concepts/history: step_history.py, history_in_function.py ------------------------------


def test_step_add_workflow_history_sends_agnos_history_context(model, openai_server, tmp_path):
    writer = Agent(name="Writer", model=model())
    workflow = Workflow(name="Stories", db=TinyDb(db_file=str(tmp_path / "w.json")),
                        steps=[Step(name="write", agent=writer, add_workflow_history=True, num_history_runs=1)])
    workflow.run(input="A story about Max")
    workflow.run(input="A story about Bella")
    workflow.run(input="Now one about both")
    prompt = openai_server.last.body["messages"][-1]["content"]
    assert prompt.startswith("<workflow_history_context>\n[Workflow Run-1]\nUser input: A story about Bella\n"
                             "Workflow output: echo: <workflow_history_context>")  # the echo repeats its prompt
    assert prompt.endswith("\n\n</workflow_history_context>\nNow one about both")
    assert "[Workflow Run-2]" not in prompt  # num_history_runs=1: only the newest run


def test_function_steps_read_history_and_the_last_step_content(model, openai_server):
    seen = []

    def analyze_content_strategy(step_input: StepInput) -> StepOutput:
        research_data = step_input.get_last_step_content() or ""
        history_data = step_input.get_workflow_history(num_runs=5)
        seen.append((research_data, history_data, step_input.get_workflow_history_context(num_runs=1)))
        return StepOutput(content=f"{len(history_data)} previous pieces")

    researcher = Agent(name="Researcher", model=model())
    workflow = Workflow(name="Strategy", steps=[Step(name="research", agent=researcher),
                                                Step(name="analyze", executor=analyze_content_strategy)])
    workflow.run(input="AI in healthcare")
    second = workflow.run(input="ML in healthcare")
    assert second.content == "1 previous pieces"
    assert seen[0][:2] == ("echo: AI in healthcare", [])
    assert seen[1][:2] == ("echo: ML in healthcare", [("AI in healthcare", "0 previous pieces")])
    assert seen[1][2].startswith("<workflow_history_context>\n[Workflow Run-1]\nUser input: AI in healthcare")


# -- cookbook 01_basic_workflows/02_step_with_function/step_with_additional_data.py ------------------------------


def test_additional_data_reaches_function_steps(model, openai_server):
    def custom_content_planning_function(step_input: StepInput) -> StepOutput:
        additional_data = step_input.additional_data or {}
        priority = additional_data.get("priority", "normal")
        return StepOutput(content=f"{step_input.input}: {priority} for {additional_data.get('user_email')}")

    workflow = Workflow(name="Planning", steps=[Step(name="plan", executor=custom_content_planning_function)])
    run = workflow.run(input="AI trends", additional_data={"user_email": "kaustubh@agno.com", "priority": "high"})
    assert run.content == "AI trends: high for kaustubh@agno.com"


# -- docs: Workflows > error handling (max_retries, skip_on_failure); step_results metrics -----------------------


def test_a_failing_step_is_retried_then_skipped_or_fails_the_run(model, openai_server):
    attempts = []

    def flaky(step_input: StepInput) -> StepOutput:
        attempts.append(1)
        if len(attempts) < 3:
            raise ConnectionError("try again")
        return StepOutput(content="fetched")

    assert Workflow(steps=[Step(name="fetch", executor=flaky)]).run(input="go").content == "fetched"
    assert len(attempts) == 3  # Agno's default max_retries=3: tried until it worked

    def always_failing(step_input: StepInput) -> StepOutput:
        raise ValueError("source down")

    def report(step_input: StepInput) -> StepOutput:
        return StepOutput(content=f"after: {step_input.previous_step_content}")

    skipping = Workflow(steps=[Step(name="fetch", executor=always_failing, max_retries=1, skip_on_failure=True),
                               Step(name="report", executor=report)])
    run = skipping.run(input="go")
    assert run.status.value == "completed" and run.content == "after: Step fetch failed but skipped"
    fetched = run.step_results[0]
    assert (fetched.success, fetched.error) == (False, "source down") and run.steps[0].attempts == 2
    with pytest.raises(WorkflowError, match="source down"):
        Workflow(steps=[Step(name="fetch", executor=always_failing, max_retries=0)]).run(input="go")


def test_step_results_carry_each_agent_steps_metrics(model, openai_server):
    workflow = research_and_write(model)
    run = workflow.run(input="AI trends")
    research, write = run.step_results
    assert research.metrics.output_tokens > 0 and write.metrics.input_tokens > 0
    assert run.metrics.output_tokens == research.metrics.output_tokens + write.metrics.output_tokens
    assert run.workflow_id == workflow.agent_id


def test_arun_stream_yields_the_same_events_for_async_code(model, openai_server):
    import asyncio

    workflow = research_and_write(model)

    async def main():
        return [e.event async for e in workflow.arun(input="AI trends", stream=True, stream_events=True)]

    kinds = asyncio.run(main())
    assert kinds[0] == "WorkflowStarted" and kinds[-1] == "WorkflowCompleted" and kinds.count("StepCompleted") == 2
    assert asyncio.run(workflow.arun(input="again")).content == "echo: echo: again"
