"""Continuing a paused run: the human's answers, however given, checked and turned into tool results.

Answers come on ``RunRequirement`` objects (Agno's way: ``confirm()``, ``provide_user_input(...)``... — possibly
made in another process and passed back as objects or dicts) or through nbsessions' ``approve=`` /
``user_input=`` / ``results=`` shortcuts. Both land on the stored requirements, and every requirement must be
answered before any tool runs.
"""

from __future__ import annotations

import json
from typing import Any

from nbsessions.llm.base import ToolCall
from nbsessions.records.errors import InvalidInputError
from nbsessions.records.requirement import RunRequirement, ToolExecution, input_schema
from nbsessions.runs.core.tools import Tool

REJECTED = "Function call was rejected by the user"
"""What the model is told of a rejected call without a note (Agno's ``reject_tool_call``)."""


def paused_run_reference(run_response: Any, run_id: str | None,
                         requirements: list[Any] | None) -> tuple[str, list[Any]]:
    """(run id, answered requirements) from either of Agno's call shapes, or nbsessions' ``continue_run(run_id)``."""
    if isinstance(run_response, str):
        run_id, run_response = run_response, None
    if run_response is not None and not hasattr(run_response, "run_id"):
        raise InvalidInputError(f"continue_run takes the paused RunOutput or its run id, not "
                                f"{type(run_response).__name__}")
    if run_response is not None:
        run_id = run_id or run_response.run_id
        if requirements is None:
            requirements = run_response.requirements
    if not run_id:
        raise ValueError("continue_run needs the paused run: continue_run(run_response) or "
                         "continue_run(run_id=..., requirements=[...])")
    return run_id, list(requirements or [])


def parse_arguments(text: str | None) -> dict[str, Any]:
    parsed = json.loads(text or "{}")
    if not isinstance(parsed, dict):
        raise ValueError("tool arguments must be a JSON object")
    return parsed


def requirement_for(call: ToolCall, tool: Tool) -> RunRequirement:
    """What a call to a pausing tool waits for: one kind only (external > user input > confirmation)."""
    try:
        arguments = parse_arguments(call.arguments)
    except ValueError:
        arguments = {}
    execution = ToolExecution(tool_call_id=call.id, tool_name=call.name, tool_args=arguments)
    if tool.external_execution:
        execution.external_execution_required = True
    elif tool.requires_user_input:
        execution.requires_user_input = True
        execution.user_input_schema = input_schema(tool.parameters, arguments)
        execution.user_input_fields = list(tool.user_input_fields) or None
    else:
        execution.requires_confirmation = True
    return RunRequirement(execution)


def merge_answers(stored: list[RunRequirement], given: list[Any]) -> None:
    """Copy the answers of ``given`` (objects or their dicts) onto the stored requirements, matched by id.

    Only answers travel: the tool, its arguments and what it asks for stay as stored.
    """
    by_id = {r.id: r for r in stored}
    for item in given:
        answer = item if isinstance(item, RunRequirement) else RunRequirement.from_dict(item)
        target = by_id.get(answer.id)
        if target is None:
            raise ValueError(f"requirement {answer.id} is not one this run waits for")
        if target is answer or target.resolved:
            continue
        tool, source = target.tool_execution, answer.tool_execution
        target.confirmation = answer.confirmation if answer.confirmation is not None else source.confirmed
        tool.confirmed = target.confirmation
        target.confirmation_note = tool.confirmation_note = answer.confirmation_note or source.confirmation_note
        values = {f.name: f.value for f in answer.user_input_schema or source.user_input_schema or []}
        for input_field in target.user_input_schema or []:
            if values.get(input_field.name) is not None:
                input_field.value = values[input_field.name]
        tool.answered = source.answered
        result = answer.external_execution_result if answer.external_execution_result is not None else source.result
        if result is not None and tool.external_execution_required:
            target.external_execution_result = tool.result = result


def apply_shortcuts(pending: list[RunRequirement], approve: bool | None, user_input: dict[str, Any],
                    results: dict[str, Any]) -> None:
    """nbsessions' keywords as answers: ``approve`` for every confirmation, ``user_input`` the fields of the one
    asking tool (or ``{tool_call_id: fields}`` when several ask), ``results`` by tool call id."""
    asking = [r.tool_call_id for r in pending if r.kind == "user_input"]
    for r in pending:
        if r.kind == "external_execution" and r.tool_call_id in results and r.needs_external_execution:
            r.set_external_execution_result(results[r.tool_call_id])
        elif r.kind == "confirmation" and approve is not None and r.needs_confirmation:
            r.confirm() if approve else r.reject()
        elif r.kind == "user_input" and user_input and r.needs_user_input:
            if r.tool_call_id in user_input:
                fields = user_input[r.tool_call_id]
            elif len(asking) > 1 and not set(asking) & set(user_input):
                raise ValueError(f"{len(asking)} tools wait for input: pass user_input={{tool_call_id: {{...}}}}")
            else:
                fields = {k: v for k, v in user_input.items() if k not in asking}
            r.provide_user_input({k: v for k, v in fields.items() if k in r.field_names})


def check_answered(pending: list[RunRequirement], run_id: str) -> None:
    """Raise naming the first unanswered requirement (and how to answer it); nothing has run yet."""
    for r in pending:
        if r.needs_external_execution:
            raise ValueError(f"run {run_id[:8]} waits for the result of {r.tool_name} ({r.tool_call_id}): call "
                             f"requirement.set_external_execution_result(...) or pass "
                             f"results={{{r.tool_call_id!r}: ...}}")
        if r.needs_confirmation:
            raise ValueError(f"{r.tool_name} waits for approval: call requirement.confirm() or reject(), "
                             "or pass approve=True or approve=False")
        if r.needs_user_input:
            missing = [f.name for f in r.user_input_schema or [] if f.value is None]
            raise ValueError(f"{r.tool_name} needs user input for: {', '.join(missing)} "
                             "(requirement.provide_user_input({...}) or user_input={...})")


def call_for(requirement: RunRequirement) -> str | dict[str, Any]:
    """The tool's text result (external or rejected), or the arguments to call it with."""
    tool = requirement.tool_execution
    if requirement.kind == "external_execution":
        return tool.result or ""
    if requirement.kind == "confirmation":
        if tool.confirmed:
            return dict(tool.tool_args)
        return tool.confirmation_note or REJECTED  # Agno's tool result for a rejected call
    return {**tool.tool_args, **{f.name: f.value for f in requirement.user_input_schema or []}}
