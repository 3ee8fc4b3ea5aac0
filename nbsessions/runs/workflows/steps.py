"""Workflow steps in Agno's shape: ``Step(name=, agent=|team=|executor=)``, what a step receives (``StepInput``)
and what it may return (``StepOutput``, or any plain value).

Kept apart from ``workflow.py`` so the run loop and the step contract can each be read on their own.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from nbsessions.records.errors import NbSessionsError
from nbsessions.records.schema import RunOutput, StepOutput
from nbsessions.runs.agent import Agent
from nbsessions.runs.core.tools import RunContext

StepFunction = Callable[..., Any]


class WorkflowError(NbSessionsError):
    """A step failed; the workflow run was stored with ``status=error`` and is attached as ``.run``."""

    def __init__(self, message: str, run: RunOutput) -> None:
        super().__init__(message)
        self.run = run


@dataclass
class StepInput:
    """What a function step receives. Changes to ``session_state`` persist with the run."""

    input: str  # the workflow run's input
    previous_step_content: Any = None  # None for the first step, as in Agno
    previous_step_outputs: dict[str, StepOutput] = field(default_factory=dict)  # by step name, in order
    session_state: dict[str, Any] = field(default_factory=dict)
    additional_data: dict[str, Any] | None = None  # ``workflow.run(..., additional_data={...})``
    history: list[dict[str, str]] = field(default_factory=list)  # earlier runs: {"input", "output"}
    history_of: Callable[[int | None], list[tuple[str, str]]] | None = field(default=None, repr=False)

    def get_input_as_string(self) -> str:
        return self.input

    def get_last_step_content(self) -> Any:
        """The newest step's content (a block's: its last inner step's); None for the first step (Agno's)."""
        if not self.previous_step_outputs:
            return None
        return deepest(list(self.previous_step_outputs.values())[-1])

    def get_all_previous_content(self) -> str:
        """Every earlier step's content under its name, as Agno joins them."""
        return "\n\n".join(f"=== {name} ===\n{out.content}" for name, out in self.previous_step_outputs.items()
                           if out.content)

    def get_workflow_history(self, num_runs: int | None = None) -> list[tuple[str, str]]:
        """The session's earlier completed workflow runs as (input, output), oldest first; all when None."""
        return self.history_of(num_runs) if self.history_of is not None else []

    def get_workflow_history_context(self, num_runs: int | None = None) -> str | None:
        """The same as the text Agno puts before a step's input (``<workflow_history_context>``)."""
        return history_context(self.get_workflow_history(num_runs))

    def get_step_output(self, step_name: str) -> StepOutput | None:
        """A step's output by name, looked for inside blocks (Parallel, Condition, ...) too, as Agno does."""
        found = self.previous_step_outputs.get(step_name)
        for output in self.previous_step_outputs.values():
            found = found or _find(output, step_name)
        return found

    def get_step_content(self, step_name: str) -> Any:
        """Agno's: a Parallel block's as ``{inner step name: content}``, another block's its last inner step's."""
        output = self.get_step_output(step_name)
        if output is None:
            return None
        if output.step_type == "Parallel" and output.steps:
            joined = {inner.step_name: str(inner.content) for branch in output.steps
                      for inner in (branch.steps or [branch]) if inner.step_name and inner.content}
            return joined or str(output.content)
        return deepest(output)

    @property
    def previous_output(self) -> str:
        """The previous step's content as text; the workflow's input for the first step."""
        if self.previous_step_content is None:
            return self.input
        return content_text(self.previous_step_content)

    @property
    def outputs(self) -> dict[str, str]:
        """The steps' contents so far as text, by step name."""
        return {name: content_text(out.content) for name, out in self.previous_step_outputs.items()}


def _find(output: StepOutput, step_name: str) -> StepOutput | None:
    for inner in output.steps or []:
        if inner.step_name == step_name:
            return inner
        if (found := _find(inner, step_name)) is not None:
            return found
    return None


def deepest(output: StepOutput) -> Any:
    """A block's output stands for its last inner step's (Agno's ``_get_deepest_step_content``)."""
    while output.steps:
        output = output.steps[-1]
    return output.content


def agent_message(output: StepOutput) -> Any:
    """What an agent step after ``output`` is given: a Parallel block's branches joined under their names, another
    block's last inner step's content (Agno's ``_get_deepest_content_from_step_output``)."""
    if not output.steps:
        return output.content
    if output.step_type != "Parallel":
        return agent_message(output.steps[-1])
    parts = [f"=== {inner.step_name or f'Step {i}'} ===\n{content}" for i, inner in enumerate(output.steps, 1)
             if (content := agent_message(inner))]
    return "\n\n".join(parts) if parts else output.content


def history_context(history: list[tuple[str, str]]) -> str | None:
    """Agno's ``get_workflow_history_context`` text for earlier runs, None when there are none."""
    if not history:
        return None
    parts = ["<workflow_history_context>"]
    for i, (given, output) in enumerate(history, 1):
        parts.append(f"[Workflow Run-{i}]")
        if given:
            parts.append(f"User input: {given}")
        if output:
            parts.append(f"Workflow output: {output}")
        parts.append("")
    return "\n".join([*parts, "</workflow_history_context>", ""])


def content_text(content: Any) -> str:
    """How a step's content is stored and handed to an agent: text as is, other values as JSON when they can be."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    try:
        return json.dumps(content, ensure_ascii=False)
    except (TypeError, ValueError):
        return str(content)


@dataclass
class Step:
    """One step: an agent, a team or a function (``executor``), under a name shown in the run's steps.

    As in Agno, a failing step is tried again up to ``max_retries`` times, then fails the run — or, with
    ``skip_on_failure``, is recorded as failed and the workflow goes on. ``add_workflow_history`` (None: the
    workflow's ``add_workflow_history_to_steps``) puts the newest ``num_history_runs`` runs before an agent
    step's input.
    """

    name: str | None = None
    agent: Agent | None = None
    team: Agent | None = None
    executor: StepFunction | None = None
    description: str | None = None
    max_retries: int = 3
    skip_on_failure: bool = False
    add_workflow_history: bool | None = None
    num_history_runs: int = 3

    def __post_init__(self) -> None:
        if not isinstance(self.max_retries, int) or self.max_retries < 0:
            raise ValueError(f"Step {self.name or ''!s}: max_retries must be 0 or more")
        given = [x for x in (self.agent, self.team, self.executor) if x is not None]
        if len(given) != 1:
            raise ValueError(f"Step {self.name or ''!s} needs exactly one of agent=, team= or executor=")
        if self.executor is not None and not callable(self.executor):
            raise TypeError(f"a step's executor must be a function, not {type(self.executor).__name__}")

    @property
    def target(self) -> Agent | StepFunction:
        return self.agent or self.team or self.executor  # type: ignore[return-value]

    @property
    def kind(self) -> str:
        target = self.target
        return target.kind if isinstance(target, Agent) else "function"


def as_step(item: Step | Agent | StepFunction, index: int) -> Step:
    """Agents, teams and functions may be listed directly, as in Agno; they get a name from what they are."""
    if isinstance(item, Step):
        if item.name is None:
            item.name = _default_name(item.target, index)
        return item
    if isinstance(item, Agent):
        return Step(name=_default_name(item, index), agent=item)
    if callable(item):
        return Step(name=_default_name(item, index), executor=item)
    raise TypeError(f"a step must be a Step, an Agent, a Team or a function, not {type(item).__name__}")


def _default_name(target: Any, index: int) -> str:
    if isinstance(target, Agent):
        return target.name or f"{target.kind}_{index + 1}"
    return getattr(target, "__name__", None) or f"step_{index + 1}"


def function_options(fn: StepFunction, step_input: StepInput, context: RunContext) -> dict[str, Any]:
    """What else a function step asks for by name, besides its ``StepInput``: ``run_context``, ``session_state``."""
    try:
        parameters = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return {}
    options: dict[str, Any] = {}
    if "run_context" in parameters:
        options["run_context"] = context
    if "session_state" in parameters:
        options["session_state"] = step_input.session_state
    return options


def as_step_output(result: Any) -> StepOutput:
    """A function step's return value: its own ``StepOutput``, or any value as the content of a successful one."""
    return result if isinstance(result, StepOutput) else StepOutput(content=result)
