"""Agno's workflow blocks beyond ``Step``: ``Parallel``, ``Condition``, ``Loop``, ``Router`` and ``Steps``.

Only what they are (their steps, checked at construction, and their settings); ``block_runner.py`` runs them.
Each holds steps as a workflow does — ``Step``s, agents, teams, functions, or other blocks — so they nest.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from nbsessions.runs.workflows.steps import Step, as_step

Node = Any  # a Step or a block


def _label(block: object, name: str | None) -> str:
    return f"{type(block).__name__} {name!r}" if name else type(block).__name__


class _Block:
    """What the blocks share: a name, a description, their inner steps prepared as a workflow's are."""

    kind = "block"
    name: str | None
    description: str | None
    steps: list[Node]

    def _set(self, name: str | None, description: str | None, steps: Any, what: str) -> None:
        if not isinstance(steps, (list, tuple)) or not steps:
            raise ValueError(f"{_label(self, name)}: {what} needs at least one step")
        self.name, self.description = name, description
        self.steps = [prepare(item, i) for i, item in enumerate(steps)]

    def inner(self) -> list[list[Node]]:
        """Every list of steps the block holds (a Condition's ``else_steps`` and a Router's choices too)."""
        return [self.steps]

    def rebound(self, bind: Callable[[Step], Step]) -> _Block:
        """A copy whose agent and team steps, at any depth, went through ``bind`` (the workflow's store)."""
        copy = object.__new__(type(self))
        copy.__dict__.update(self.__dict__)
        copy._rebind(bind)
        return copy

    def _rebind(self, bind: Callable[[Step], Step]) -> None:
        self.steps = [bound(step, bind) for step in self.steps]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, steps={[getattr(s, 'name', s) for s in self.steps]})"


class Parallel(_Block):
    """``Parallel(step_a, step_b, name=...)``: the steps run at once (threads under ``run``, tasks under ``arun``);
    the next step gets their outputs joined as Agno joins them. A failing branch is recorded as failed; the others
    and the workflow go on, as in Agno."""

    kind = "parallel"

    def __init__(self, *steps: Any, name: str | None = None, description: str | None = None) -> None:
        if steps and isinstance(steps[0], str):  # Agno's Parallel("name", step_a, step_b)
            name, steps = name or steps[0], steps[1:]
        self._set(name, description, list(steps), "Parallel(...)")


class Steps(_Block):
    """``Steps(name=, steps=[...])``: a named sequence, run in order like the workflow's own steps."""

    kind = "steps"

    def __init__(self, name: str | None = None, description: str | None = None,
                 steps: list[Any] | None = None) -> None:
        self._set(name, description, steps, "steps=")


class Condition(_Block):
    """``Condition(evaluator=, steps=[...], else_steps=[...])``: ``steps`` run when the evaluator — a bool, or a
    function (``def`` or ``async def``) of the ``StepInput`` returning a bool — says so; else ``else_steps``, if
    any. An evaluator that raises fails the run."""

    kind = "condition"

    def __init__(self, steps: list[Any] | None = None, evaluator: bool | Callable[..., Any] = True,
                 else_steps: list[Any] | None = None, name: str | None = None,
                 description: str | None = None) -> None:
        if not isinstance(evaluator, bool) and not callable(evaluator):
            raise TypeError(f"{_label(self, name)}: evaluator must be a bool or a function of the StepInput, "
                            f"not {type(evaluator).__name__} (CEL expressions are not supported)")
        self._set(name, description, steps, "steps=")
        self.evaluator = evaluator
        self.else_steps = [prepare(item, i) for i, item in enumerate(else_steps or [])]

    def inner(self) -> list[list[Node]]:
        return [self.steps, self.else_steps]

    def _rebind(self, bind: Callable[[Step], Step]) -> None:
        super()._rebind(bind)
        self.else_steps = [bound(step, bind) for step in self.else_steps]


class Loop(_Block):
    """``Loop(steps=[...], end_condition=fn, max_iterations=3)``: the steps again and again, until
    ``end_condition`` (a function of that iteration's list of ``StepOutput``) returns True or ``max_iterations``
    are done. Each iteration starts from the loop's input, or from the last one's output with
    ``forward_iteration_output``."""

    kind = "loop"

    def __init__(self, steps: list[Any] | None = None, name: str | None = None, description: str | None = None,
                 max_iterations: int = 3, end_condition: Callable[..., Any] | None = None,
                 forward_iteration_output: bool = False) -> None:
        if isinstance(max_iterations, bool) or not isinstance(max_iterations, int) or max_iterations < 1:
            raise ValueError(f"{_label(self, name)}: max_iterations must be 1 or more, not {max_iterations!r}")
        if end_condition is not None and not callable(end_condition):
            raise TypeError(f"{_label(self, name)}: end_condition must be a function of the iteration's outputs, "
                            f"not {type(end_condition).__name__} (CEL expressions are not supported)")
        self._set(name, description, steps, "steps=")
        self.max_iterations, self.end_condition = max_iterations, end_condition
        self.forward_iteration_output = forward_iteration_output


class Router(_Block):
    """``Router(selector=fn, choices=[...])``: the selector (``def`` or ``async def``) gets the ``StepInput`` (and
    ``step_choices`` if it asks) and returns the step(s) to run — steps, blocks or their names — in order."""

    kind = "router"

    def __init__(self, choices: list[Any] | None = None, selector: Callable[..., Any] | None = None,
                 name: str | None = None, description: str | None = None) -> None:  # Agno's order
        if not callable(selector):
            raise TypeError(f"{_label(self, name)}: selector must be a function of the StepInput returning the "
                            f"step(s) to run (CEL expressions are not supported)")
        self._set(name, description, choices, "choices=")
        self.selector = selector

    @property
    def choices(self) -> list[Node]:
        return self.steps


BLOCKS = (Parallel, Condition, Loop, Router, Steps)


def prepare(item: Any, index: int) -> Node:
    """A workflow's or a block's step as given: blocks as they are (named after their kind when unnamed),
    anything else as ``as_step`` makes it."""
    if isinstance(item, _Block):
        if item.name is None:
            item.name = type(item).__name__
        return item
    return as_step(item, index)


def bound(node: Node, bind: Callable[[Step], Step]) -> Node:
    return node.rebound(bind) if isinstance(node, _Block) else bind(node)


def leaves(nodes: list[Node]) -> Iterator[Step]:
    """Every ``Step`` under ``nodes``, at any depth, in order."""
    for node in nodes:
        if isinstance(node, _Block):
            for group in node.inner():
                yield from leaves(group)
        else:
            yield node


def is_block(node: Node) -> bool:
    return isinstance(node, _Block)
