"""Agno's workflow blocks — Parallel, Condition, Loop, Router, Steps — in cookbook programs ported by changing
imports, model and db only (cookbook/04_workflows/...): what each step is given, what is stored, the events."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest
from conftest import RecordingModel

from nbsessions import Agent, FunctionModel, InMemoryDb, OpenAIChat
from nbsessions.llm.base import ToolCall
from nbsessions.workflow import Condition, Loop, Parallel, Router, Step, StepInput, StepOutput, Steps, Workflow


@pytest.fixture
def model(openai_server):
    return lambda id="gpt-4o": OpenAIChat(id=id, base_url=openai_server.base_url, api_key="test-key")


def named(run):
    return [(s.name, s.kind, s.status.value) for s in run.steps]


# -- cookbook 04_parallel_execution/parallel_basic.py ----------------------------------------------------------


def parallel_basic(model, db=None):
    researcher = Agent(name="Researcher", model=model())
    writer = Agent(name="Writer", model=model())
    reviewer = Agent(name="Reviewer", model=model())
    research_hn_step = Step(name="Research HackerNews", agent=researcher)
    research_web_step = Step(name="Research Web", agent=researcher)
    write_step = Step(name="Write Article", agent=writer)
    review_step = Step(name="Review Article", agent=reviewer)
    return Workflow(name="Content Creation Pipeline", db=db, steps=[
        Parallel(research_hn_step, research_web_step, name="Research Phase"), write_step, review_step])


JOINED = "=== Research HackerNews ===\necho: AI news\n\n=== Research Web ===\necho: AI news"


def test_parallel_basic_gives_the_writer_both_branches_and_stores_each_as_a_step(model, openai_server):
    workflow = parallel_basic(model)
    run = workflow.run("AI news")
    assert run.status.value == "completed" and run.content == f"echo: echo: {JOINED}"
    assert named(run) == [("Research Phase", "parallel", "completed"), ("Research HackerNews", "agent", "completed"),
                          ("Research Web", "agent", "completed"), ("Write Article", "agent", "completed"),
                          ("Review Article", "agent", "completed")]
    assert run.steps[0].output.startswith("## Parallel Execution Results\n\n### ✅ SUCCESS: Research HackerNews\n")
    nested = {r.run_id: r for r in workflow.db.list_runs(run.session_id) if r.parent_run_id == run.run_id}
    assert {nested[s.run_id].content for s in run.steps[1:3]} == {"echo: AI news"}  # each branch its own run
    assert run.metrics.output_tokens == sum(nested[s.run_id].metrics.output_tokens for s in run.steps[1:])


def test_parallel_streams_block_events_around_its_branches_and_arun_gives_the_same_run(model, openai_server):
    workflow = parallel_basic(model)
    events = list(workflow.run("AI news", stream=True, stream_events=True))
    kinds = [e.event for e in events if e.event.startswith(("Parallel", "Step"))]
    assert kinds[0] == "ParallelExecutionStarted" and kinds[5] == "ParallelExecutionCompleted"
    assert sorted(kinds[1:5]) == ["StepCompleted", "StepCompleted", "StepStarted", "StepStarted"]
    started = next(e for e in events if e.event == "ParallelExecutionStarted")
    branches = [e for e in events if e.event == "StepCompleted" and e.parent_step_id == started.step_id]
    assert sorted(e.step_name for e in branches) == ["Research HackerNews", "Research Web"]
    assert started.parallel_step_count == 2 and branches[0].nested_depth == 1
    done = next(e for e in events if e.event == "ParallelExecutionCompleted")
    assert [r.step_name for r in done.step_results] == ["Research HackerNews", "Research Web"]
    assert events[-1].content == f"echo: echo: {JOINED}"
    again = asyncio.run(workflow.arun("AI news"))
    assert again.content == events[-1].content and named(again) == named(workflow.get_last_run_output())


def test_parallel_branches_run_at_once_in_threads_and_as_tasks():
    barrier = threading.Barrier(2, timeout=10)  # passes only when both branches wait at the same time

    def left(step_input: StepInput) -> str:
        barrier.wait()
        return "left"

    def right(step_input: StepInput) -> str:
        barrier.wait()
        return "right"

    run = Workflow(steps=[Parallel(left, right, name="both"), lambda s: s.get_step_content("both")]).run("go")
    assert run.content == '{"left": "left", "right": "right"}'

    arrived: list[asyncio.Event] = []

    async def meet(step_input: StepInput) -> str:
        mine, other = (arrived[0], arrived[1]) if not arrived[0].is_set() else (arrived[1], arrived[0])
        mine.set()
        await asyncio.wait_for(other.wait(), 10)  # a sequential run would wait here forever
        return "met"

    async def main():
        arrived.extend([asyncio.Event(), asyncio.Event()])
        return await Workflow(steps=[Parallel(meet, Step(name="meet2", executor=meet))]).arun("go")

    assert asyncio.run(main()).steps[0].output.count("✅ SUCCESS") == 2


def test_state_changes_from_parallel_branches_and_their_agents_are_all_kept(db, frequent_thread_switches):
    def writer(i):
        def write(step_input: StepInput, session_state) -> str:
            for n in range(50):
                session_state[f"k{i}_{n}"] = n
                session_state.setdefault("log", []).append((i, n))
            return f"w{i}"
        write.__name__ = f"write{i}"
        return write

    def marker(i):  # an agent that sets its own key with the agentic-state tool, then answers
        def reply(messages, tools):
            if any(m.role == "tool" for m in messages):
                return "ok"
            return ToolCall("c1", "update_session_state", json.dumps({"session_state_updates": {f"agent{i}": i}}))
        return Agent(name=f"marker{i}", model=FunctionModel(reply, id=f"marker{i}"), enable_agentic_state=True)

    markers = [Step(name=f"agent{i}", agent=marker(i)) for i in range(2)]
    for round_ in range(40):
        branches = [writer(i) for i in range(4)] + markers
        workflow = Workflow(db=db, steps=[Parallel(*branches, name="writers")])
        sid = f"s{round_}"
        assert workflow.run("go", session_id=sid).status.value == "completed"
        state = workflow.get_session_state(session_id=sid)
        assert all(state[f"k{i}_{n}"] == n for i in range(4) for n in range(50)), round_
        assert (state["agent0"], state["agent1"]) == (0, 1), round_
        assert sorted(map(tuple, state["log"])) == sorted((i, n) for i in range(4) for n in range(50)), round_


def test_a_failing_branch_is_recorded_and_the_others_and_the_workflow_go_on():
    def broken(step_input: StepInput) -> str:
        raise ValueError("source down")

    def after(step_input: StepInput) -> str:
        return str(step_input.get_step_output("fetch").success)

    run = Workflow(steps=[Parallel(Step(name="fetch", executor=broken, max_retries=0), lambda s: "fine"),
                          after]).run("go")
    assert run.status.value == "completed" and run.content == "False"  # as Agno: the branch failed, not the run
    assert named(run)[:2] == [("Parallel", "parallel", "error"), ("fetch", "function", "error")]
    joined = run.steps[0].output
    assert "### ❌ FAILURE: fetch\nStep fetch failed: source down\n\n### ✅ SUCCESS: <lambda>\nfine" in joined
    assert run.steps[0].error == "fetch: source down"


# -- cookbook 02_conditional_execution/condition_with_else.py --------------------------------------------------


def is_technical_issue(step_input: StepInput) -> bool:
    text = (step_input.input or "").lower()
    tech_keywords = ["error", "bug", "crash", "not working", "broken", "install", "update", "timeout"]
    return any(kw in text for kw in tech_keywords)


def test_condition_with_else_runs_one_branch_and_follow_up_sees_its_last_step():
    models = {name: RecordingModel(id=name) for name in ("diag", "eng", "general", "followup")}
    diagnose_step = Step(name="Diagnose", agent=Agent(name="Diagnostic Agent", model=models["diag"]))
    engineer_step = Step(name="Engineer", agent=Agent(name="Engineering Agent", model=models["eng"]))
    general_step = Step(name="GeneralSupport", agent=Agent(name="General Support Agent", model=models["general"]))
    followup_step = Step(name="FollowUp", agent=Agent(name="Follow-Up Agent", model=models["followup"]))
    workflow = Workflow(name="Customer Support Router", steps=[
        Condition(name="TechnicalTriage", evaluator=is_technical_issue, steps=[diagnose_step, engineer_step],
                  else_steps=[general_step]),
        followup_step])
    tech = workflow.run("My app keeps crashing with a timeout error")
    assert [s.name for s in tech.steps] == ["TechnicalTriage", "Diagnose", "Engineer", "FollowUp"]
    assert models["eng"].prompts[-1][-1] == "echo My app keeps crashing with a timeout error"
    assert tech.steps[0].output == "Condition TechnicalTriage completed with 2 results (if branch)"
    assert tech.content == "echo echo echo My app keeps crashing with a timeout error"
    general = asyncio.run(workflow.arun("How do I change my shipping address?"))
    assert [s.name for s in general.steps] == ["TechnicalTriage", "GeneralSupport", "FollowUp"]
    assert models["followup"].prompts[-1][-1] == "echo How do I change my shipping address?"
    assert not models["diag"].requests[1:]  # the if-branch ran once, for the technical query only
    events = [e for e in workflow.run("a bug", stream=True, stream_events=True) if e.event.startswith("Condition")]
    assert [(e.event, e.condition_result) for e in events] == [("ConditionExecutionStarted", True),
                                                               ("ConditionExecutionCompleted", True)]
    assert (events[1].branch, events[1].executed_steps) == ("if", 2)
    assert [r.step_name for r in events[1].step_results] == ["Diagnose", "Engineer"]


# -- cookbook 04_parallel_execution/parallel_with_condition.py (a Condition in a Parallel, and around one) -------


def test_conditions_inside_and_around_parallel_blocks():
    def should_conduct_research(step_input: StepInput) -> bool:
        return "ai" in (step_input.input or step_input.previous_step_content or "").lower()

    async def is_tech_related(step_input: StepInput) -> bool:  # an async evaluator, under arun
        return "machine learning" in step_input.input.lower()

    def step(name):
        return Step(name=name, agent=Agent(name=name, model=RecordingModel(id=name)))

    workflow = Workflow(name="Conditional Research Workflow", steps=[
        Condition(name="ResearchCondition", evaluator=should_conduct_research, steps=[
            Parallel(step("ResearchHackerNews"), Condition(evaluator=is_tech_related, steps=[step("ResearchWeb")]),
                     name="ComprehensiveResearch"),
            step("ResearchExa")]),
        step("WriteContent")])
    run = asyncio.run(workflow.arun("Latest AI developments in machine learning"))
    assert [s.name for s in run.steps] == ["ResearchCondition", "ComprehensiveResearch", "ResearchHackerNews",
                                           "Condition", "ResearchWeb", "ResearchExa", "WriteContent"]
    exa = next(s for s in run.steps if s.name == "ResearchExa")
    assert exa.input == ("=== ResearchHackerNews ===\necho Latest AI developments in machine learning\n\n"
                         "=== Condition ===\necho Latest AI developments in machine learning")  # as Agno names it
    sync = workflow.run("AI and machine learning")  # the async evaluator fails its branch, not the run
    condition = next(s for s in sync.steps if s.name == "Condition")
    assert condition.status.value == "error" and "run the workflow with arun" in condition.error
    skipped = workflow.run("gardening")
    assert [s.name for s in skipped.steps] == ["ResearchCondition", "WriteContent"]
    assert skipped.steps[0].output == "Condition ResearchCondition not met - skipped 2 steps"


# -- cookbook 06_advanced_concepts/session_state/state_in_condition.py ------------------------------------------


def test_condition_evaluators_read_session_state_through_run_context():
    from nbsessions import RunContext

    def check_user_has_context(step_input: StepInput, run_context: RunContext) -> bool:
        return run_context.session_state.get("has_been_greeted", False)

    def mark_user_as_greeted(step_input: StepInput, run_context: RunContext) -> StepOutput:
        run_context.session_state["has_been_greeted"] = True
        run_context.session_state["greeting_count"] = run_context.session_state.get("greeting_count", 0) + 1
        return StepOutput(content="greeted")

    workflow = Workflow(db=InMemoryDb(), session_id="s", steps=[
        Condition(name="Check", evaluator=check_user_has_context, steps=[lambda s: "welcome back"],
                  else_steps=[Step(name="greet", executor=mark_user_as_greeted)])])
    assert workflow.run("hi").content == "greeted"
    assert workflow.run("hi again").content == "welcome back"
    assert workflow.get_session_state() == {"has_been_greeted": True, "greeting_count": 1}


# -- cookbook 03_loop_execution/loop_basic.py (streamed through the OpenAI-compatible server) -------------------


def research_evaluator(outputs: list[StepOutput]) -> bool:
    if not outputs:
        return False
    for output in outputs:  # noqa: SIM110 - the cookbook's code as written
        if output.content and len(output.content) > 200:
            return True
    return False


def test_loop_basic_repeats_until_the_end_condition_and_streams_each_iteration(model, openai_server):
    research_agent = Agent(name="Research Agent", model=model())
    content_agent = Agent(name="Content Agent", model=model())
    workflow = Workflow(name="Research and Content Workflow", steps=[
        Loop(name="Research Loop", steps=[Step(name="Research HackerNews", agent=research_agent),
                                          Step(name="Research Web", agent=research_agent)],
             end_condition=research_evaluator, max_iterations=3),
        Step(name="Create Content", agent=content_agent)])
    short = "AI trends"
    events = list(workflow.run(short, stream=True, stream_events=True))
    loop = [(e.event, getattr(e, "iteration", None)) for e in events if e.event.startswith("Loop")]
    assert loop == [("LoopExecutionStarted", None), ("LoopIterationStarted", 1), ("LoopIterationCompleted", 1),
                    ("LoopIterationStarted", 2), ("LoopIterationCompleted", 2), ("LoopIterationStarted", 3),
                    ("LoopIterationCompleted", 3), ("LoopExecutionCompleted", None)]  # short replies: 3 rounds
    done = next(e for e in events if e.event == "LoopExecutionCompleted")
    assert done.total_iterations == 3 and [len(r) for r in done.all_results] == [2, 2, 2]
    run = workflow.get_last_run_output()
    assert [s.name for s in run.steps].count("Research Web") == 3 and run.steps[-1].name == "Create Content"
    assert run.steps[0].output == "Loop Research Loop completed 3 iterations with 6 total steps"
    assert run.content == "echo: echo: echo: AI trends"  # each iteration starts from the loop's input
    long = asyncio.run(workflow.arun("x" * 250))  # substantial research: the end condition stops the first round
    assert [s.name for s in long.steps] == ["Research Loop", "Research HackerNews", "Research Web", "Create Content"]


def test_loop_forward_iteration_output_and_an_async_end_condition_under_arun():
    async def enough(outputs: list[StepOutput]) -> bool:
        return outputs[-1].content.count("+") >= 3

    workflow = Workflow(steps=[Loop(steps=[lambda s: (s.previous_step_content or s.input) + "+"],
                                    end_condition=enough, max_iterations=10, forward_iteration_output=True)])
    run = asyncio.run(workflow.arun("go"))
    assert run.content == "go+++" and run.steps[0].output == "Loop Loop completed 3 iterations with 3 total steps"


# -- cookbook 05_conditional_branching/router_with_loop.py and step_choices_parameter.py ------------------------


def test_router_with_loop_picks_the_loop_or_the_simple_step():
    hackernews = RecordingModel(lambda m: "hn " * 120, id="hn")  # over 300 characters: one loop round is enough
    web, publisher = RecordingModel(id="web"), RecordingModel(id="publish")
    research_hackernews = Step(name="research_hackernews", agent=Agent(name="HackerNews Researcher", model=hackernews))
    research_web = Step(name="research_web", agent=Agent(name="Web Researcher", model=web))
    publish_content = Step(name="publish_content", agent=Agent(name="Content Publisher", model=publisher))

    def research_quality_check(outputs: list[StepOutput]) -> bool:
        return any(output.content and len(output.content) > 300 for output in outputs)

    deep_tech_research_loop = Loop(name="Deep Tech Research Loop", steps=[research_hackernews],
                                   end_condition=research_quality_check, max_iterations=3)

    def research_strategy_router(step_input: StepInput) -> list[Step]:
        topic = (step_input.previous_step_content or step_input.input or "").lower()
        if "tech" in topic and len(topic.split()) > 3:
            return [deep_tech_research_loop]
        return [research_web]

    workflow = Workflow(name="Adaptive Research Workflow", db=InMemoryDb(), steps=[
        Router(name="research_strategy_router", selector=research_strategy_router,
               choices=[research_web, deep_tech_research_loop]),
        publish_content])
    deep = workflow.run("Latest developments in deep tech research trends")
    assert [s.name for s in deep.steps] == ["research_strategy_router", "Deep Tech Research Loop",
                                           "research_hackernews", "publish_content"]
    assert publisher.prompts[-1][-1] == "hn " * 120 and not web.requests
    events = list(workflow.run("cooking", stream=True, stream_events=True))
    started = next(e for e in events if e.event == "RouterExecutionStarted")
    assert started.selected_steps == ["research_web"] and publisher.prompts[-1][-1] == "echo cooking"
    hn_run = workflow.db.get_run(deep.steps[2].run_id)
    assert hn_run.parent_run_id == deep.run_id  # the loop's agent step stored in the workflow's store, nested


def test_a_router_selector_may_ask_for_step_choices_and_answer_with_names():
    def pick(step_input: StepInput, step_choices: list) -> str:
        return step_choices[1].name if "b" in step_input.input else "first"

    workflow = Workflow(steps=[Router(selector=pick, choices=[Step(name="first", executor=lambda s: "one"),
                                                              Step(name="second", executor=lambda s: "two")])])
    assert workflow.run("b").content == "two" and workflow.run("a").content == "one"


# -- cookbook 01_basic_workflows/01_sequence_of_steps/workflow_using_steps.py ----------------------------------


def test_workflow_using_steps_runs_the_sequence_and_prints_each_step(capsys):
    def agent(name):
        return Agent(name=name, model=RecordingModel(id=name))

    article_creation_sequence = Steps(name="article_creation", steps=[
        Step(name="research", agent=agent("Research Agent")), Step(name="writing", agent=agent("Writing Agent")),
        Step(name="editing", agent=agent("Editor Agent"))])
    article_workflow = Workflow(name="Article Creation Workflow", steps=[article_creation_sequence])
    article_workflow.print_response(input="Write an article about renewable energy", markdown=True)
    out = capsys.readouterr().out
    assert "Step 4: editing\necho echo echo Write an article about renewable energy\n" in out
    run = article_workflow.get_last_run_output()
    assert run.content == "echo echo echo Write an article about renewable energy"
    assert run.steps[0].output == "Steps article_creation completed with 3 results"
    events = list(article_workflow.run("solar", stream=True, stream_events=True))
    started, done = (next(e for e in events if e.event == f"StepsExecution{k}") for k in ("Started", "Completed"))
    assert (started.steps_count, done.executed_steps, started.step_id) == (3, 3, done.step_id)
    inner = [e.step_name for e in events if e.event == "StepCompleted" and e.parent_step_id == started.step_id]
    assert inner == ["research", "writing", "editing"]


# -- bad input and failures: one clear line, the run stored as error ----------------------------------------------


@pytest.mark.parametrize("build, message", [
    (lambda: Loop(steps=[str], max_iterations=0), "Loop: max_iterations must be 1 or more, not 0"),
    (lambda: Loop(steps=[]), "Loop: steps= needs at least one step"),
    (lambda: Parallel(name="p"), "Parallel 'p': Parallel(...) needs at least one step"),
    (lambda: Condition(evaluator="input.contains('x')", steps=[str]), "CEL expressions are not supported"),
    (lambda: Router(choices=[str]), "selector must be a function"),
    (lambda: Steps(name="s", steps=[42]), "a step must be a Step, an Agent, a Team or a function, not int"),
    (lambda: Condition(evaluator=True, steps=[str], requires_confirmation=True), "'requires_confirmation'"),
])
def test_bad_blocks_are_refused_with_one_line(build, message):
    with pytest.raises((ValueError, TypeError)) as refused:
        build()
    assert message in str(refused.value) and "\n" not in str(refused.value)


def test_an_evaluator_or_selector_that_raises_ends_the_run_in_error():
    from nbsessions import WorkflowError

    def evaluator(step_input: StepInput) -> bool:
        raise KeyError("topic")

    db = InMemoryDb()
    workflow = Workflow(db=db, steps=[lambda s: "first", Condition(name="check", evaluator=evaluator, steps=[str])])
    with pytest.raises(WorkflowError, match="topic") as failed:
        workflow.run("go")
    stored = db.get_run(failed.value.run.run_id)
    assert stored.status.value == "error" and named(stored)[1] == ("check", "condition", "error")
    def end_condition(outputs: list[StepOutput]) -> bool:
        raise RuntimeError("judge down")

    with pytest.raises(WorkflowError, match="judge down"):
        Workflow(steps=[Loop(steps=[lambda s: "once"], end_condition=end_condition)]).run("go")
    unknown = Workflow(steps=[Router(name="r", selector=lambda s: "nowhere", choices=[Step(name="a", executor=str)])])
    with pytest.raises(WorkflowError, match="the selector chose 'nowhere', which is not among its choices"):
        asyncio.run(unknown.arun("go"))


# -- where the inner steps show: the panel's History, %agent history, exports --------------------------------------


def test_inner_steps_show_in_the_panel_history_and_exports_like_any_steps(tmp_path):
    import nbformat

    from nbsessions import TinyDb
    from nbsessions.explore import export_session
    from nbsessions.magic.nested import history_view
    from nbsessions.panel import SessionPanel

    db = TinyDb(db_file=str(tmp_path / "w.json"))
    researcher = Agent(name="Researcher", model=RecordingModel(id="researcher"))
    workflow = Workflow(name="flow", db=db, steps=[
        Parallel(Step(name="hn", agent=researcher), Step(name="web", agent=researcher), name="research"),
        Condition(name="check", evaluator=True, steps=[lambda s: "checked"])])
    run = workflow.run("tea")
    text, _ = history_view(db.list_runs(run.session_id), "flow", 5)
    assert [line.split(" · ")[1] for line in map(str.strip, text.splitlines()) if line.startswith("step ")] == [
        "research", "hn", "web", "check", "<lambda>"]
    panel = SessionPanel(db=db)
    panel.select(run.session_id)
    step_folds = [f for f in panel.history.folds if f.key.startswith("run:")]
    assert sorted(f.key for f in step_folds) == sorted(f"run:{s.run_id}" for s in run.steps[1:3])
    panel.close()
    notebook = nbformat.reads(export_session(db, run.session_id, "ipynb"), as_version=4)
    shown = "".join(output.get("text", "") for cell in notebook.cells for output in cell.get("outputs", []))
    assert "step 2 · hn · agent · completed" in shown and "step 4 · check · condition · completed" in shown


def test_aprint_response_runs_the_blocks_with_arun_and_prints_each_step(capsys):
    async def evaluator(step_input: StepInput) -> bool:  # needs arun: print_response would fail this Condition
        return True

    def upper(step_input: StepInput) -> str:
        return step_input.input.upper()

    workflow = Workflow(name="Pipeline", steps=[Condition(name="gate", evaluator=evaluator, steps=[upper])])
    asyncio.run(workflow.aprint_response("shout"))
    out = capsys.readouterr().out
    assert out.startswith("Message: shout\n") and "Step 2: upper\nSHOUT\n" in out and "Pipeline · 2 steps" in out
    streamed = Workflow(name="Streamed", steps=[Condition(name="gate", evaluator=True, steps=[upper])])
    asyncio.run(streamed.aprint_response("again", stream=True))  # a streamed run's steps run in a worker thread
    out = capsys.readouterr().out
    assert "AGAIN" in out and "Streamed · 2 steps" in out


def test_a_workflow_cell_with_blocks_counts_the_steps_it_ran(nb):
    def shout(step_input: StepInput) -> str:
        return step_input.input.upper()

    flow = Workflow(name="fan", steps=[Parallel(shout, Step(name="again", executor=shout), name="both"),
                                       Step(name="last", executor=lambda s: s.get_step_content("both")["again"])])
    nb.shell.push({"flow": flow})
    assert nb.run("%agent register flow flow").result.success
    ran = nb.run("%%agent --workflow flow --new fan\nquiet")
    assert ran.result.success, ran.stderr
    final = ran.outputs[-1].data["text/plain"]
    assert "step 2 · shout · function · completed\n    QUIET" in final and "\n\nQUIET\n\n— workflow fan" in final
    assert " · 4 steps completed · " in final  # not "4/2": a block's inner steps are known only as it runs


def test_a_cancelled_parallel_keeps_its_branches_steps_in_the_stored_run():
    async def main():
        quick_done, never = asyncio.Event(), asyncio.Event()

        async def quick(step_input: StepInput) -> str:
            return "quick"

        async def mark(step_input: StepInput) -> str:  # runs once quick's record is completed
            quick_done.set()
            await never.wait()

        async def stuck(step_input: StepInput) -> str:
            await never.wait()

        db = InMemoryDb()
        workflow = Workflow(db=db, steps=[Parallel(Steps(name="first", steps=[quick, mark]), stuck, name="both")])
        task = asyncio.create_task(workflow.arun("go", session_id="s"))
        await quick_done.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return db.list_runs("s")[-1]

    stored = asyncio.run(main())
    assert stored.status.value == "cancelled"
    assert named(stored) == [("both", "parallel", "cancelled"), ("first", "steps", "cancelled"),
                             ("quick", "function", "completed"), ("mark", "function", "cancelled"),
                             ("stuck", "function", "cancelled")]


def test_streamed_print_response_numbers_blocks_and_inner_steps_as_they_are_stored(capsys):
    def a(step_input: StepInput) -> str:
        return "A"

    workflow = Workflow(name="w", steps=[Loop(steps=[a], max_iterations=2), Steps(name="tail", steps=[a])])
    workflow.print_response("go", stream=True)
    streamed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("Step ")]
    workflow.print_response("go")
    stored = [line for line in capsys.readouterr().out.splitlines() if line.startswith("Step ")]
    assert streamed == stored == ["Step 1: Loop", "Step 2: a", "Step 3: a", "Step 4: tail", "Step 5: a"]


def test_a_running_parallel_shows_each_branch_step_as_it_finishes():
    db, seen, shown = InMemoryDb(), threading.Event(), []

    def quick(step_input: StepInput) -> str:
        return "quick"

    def slow(step_input: StepInput) -> str:
        assert seen.wait(10), "the quick branch never showed in the stored run"
        return "slow"

    def listener(event: str, session_id: str) -> None:
        runs = db.list_runs(session_id)
        steps = [(s.name, s.status.value) for s in runs[-1].steps] if runs else []
        if steps[1:2] == [("quick", "completed")] and not seen.is_set():
            shown.append(steps)
            seen.set()

    workflow = Workflow(db=db, steps=[Parallel(quick, slow, name="both")])
    workflow.add_listener(listener)
    run = workflow.run("go")
    first, = shown  # as the panel reads it; the slow branch's record too once its thread has started
    assert first[:2] == [("both", "running"), ("quick", "completed")] and first[2:] in ([], [("slow", "running")])
    assert named(run) == [("both", "parallel", "completed"), ("quick", "function", "completed"),
                          ("slow", "function", "completed")]
