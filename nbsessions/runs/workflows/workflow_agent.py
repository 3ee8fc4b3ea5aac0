"""Workflow agents (Agno's ``WorkflowAgent``): per input, answer from the workflow's earlier runs or run it.

The agent sees the session's earlier workflow runs (inputs and outputs) in its instructions and has one tool,
``run_workflow(query)``. Whichever it chooses, its answer is stored as a run of the same workflow session, with
the steps it ran (if any) and the agent's own run nested under it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from nbsessions.db.base import BaseDb
from nbsessions.llm.base import Model
from nbsessions.records.schema import Message, RunOutput, RunStatus
from nbsessions.runs.agent import Agent
from nbsessions.runs.core.tools import make_tool
from nbsessions.runs.workflows.steps import WorkflowError

DEFAULT_INSTRUCTIONS = """You are a workflow orchestration agent. Help the user by either:
1. answering directly from the workflow history below, when the question is about earlier results (follow-ups,
   comparisons, details of what was already produced), or
2. running the workflow by calling the run_workflow tool ONCE, for anything new.
Do not call the tool more than once. Keep your answers concise.

{workflow_context}"""


class WorkflowAgent(Agent):
    """``Workflow(steps=[...], agent=WorkflowAgent(model=..., instructions=...))``."""

    def __init__(self, model: Model, instructions: str | None = None, add_workflow_history: bool = True,
                 num_history_runs: int = 5) -> None:
        if instructions and "{workflow_context}" not in instructions:
            instructions = f"{instructions}\n\n{{workflow_context}}"
        super().__init__(model=model, instructions=instructions or DEFAULT_INSTRUCTIONS)
        self.add_workflow_history = add_workflow_history
        self.num_history_runs = num_history_runs  # the workflow's earlier runs it sees, in its instructions


def workflow_context(history: list[dict[str, str]]) -> str:
    if not history:
        return "Workflow history: none yet (this is the first run)."
    lines = [f"[run {i}]\nInput: {h['input']}\nOutput: {h['output']}" for i, h in enumerate(history, 1)]
    return "Workflow history:\n" + "\n\n".join(lines)


class AgentCall:
    """The workflow agent's run, made by ``Workflow.run`` (``run()``) or ``Workflow.arun`` (``await arun()``)."""

    def __init__(self, agent: Agent, prompt: str, options: dict[str, Any]) -> None:
        self.agent, self.prompt, self.options = agent, prompt, options

    def run(self) -> RunOutput:
        return self.agent.run(self.prompt, **self.options)

    async def arun(self) -> RunOutput:
        return await self.agent.arun(self.prompt, **self.options)


def agent_call(agent: WorkflowAgent, db: BaseDb, history: list[dict[str, str]], run: RunOutput,
               run_steps: Callable[[str], Any]) -> AgentCall:
    """The agent's run on ``run.input``, bound to the workflow's ``db`` and seeing its ``history`` (earlier
    inputs and outputs), with a ``run_workflow`` tool that runs the steps (once) on its query."""
    ran: list[str] = []

    def run_workflow(query: str) -> str:
        """Run the workflow on a query and return its result.

        query: what the workflow should work on, clear and concise
        """
        if not ran:
            ran.append(run_steps(query))
        return ran[0]

    async def arun_workflow(query: str) -> str:
        if not ran:
            ran.append(await run_steps(query))
        return ran[0]

    tool = make_tool(run_workflow)
    if inspect.iscoroutinefunction(run_steps):
        tool.async_function = arun_workflow
    bound = agent.with_db(db)
    bound.tools = {tool.name: tool}
    instructions = (agent.instructions or "").replace("{workflow_context}", workflow_context(history))
    return AgentCall(bound, run.input, {"session_id": run.session_id, "user_id": run.user_id,
                                        "parent_run_id": run.run_id, "instructions": _escape_braces(instructions)})


def answer_with(run: RunOutput, child: RunOutput) -> str:
    """The workflow run takes the agent's answer (and its tokens); failed steps make it a failed run."""
    run.metrics.add_usage_of(child.metrics)
    if run.status == RunStatus.error:  # the steps failed inside the tool: the run says so, as without an agent
        raise WorkflowError(run.error or "the workflow failed", run)
    run.content = child.content
    run.status = RunStatus.completed if child.status == RunStatus.completed else child.status
    run.messages = [Message(role="user", content=run.input), Message(role="assistant", content=run.content)]
    return run.content


def _escape_braces(text: str) -> str:
    """The history may hold braces (JSON, code); the agent fills ``{key}`` from session state, so escape them."""
    return text.replace("{", "{{").replace("}", "}}")
