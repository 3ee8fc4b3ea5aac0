"""What a paused run waits for, in Agno's shape: ``RunRequirement`` objects a human answers one by one.

A tool marked ``requires_confirmation``, ``requires_user_input`` or ``external_execution`` pauses its run; the
run's ``requirements`` say which call waits for what. The human answers on the objects (``confirm()``,
``reject(note)``, ``provide_user_input({...})``, ``set_external_execution_result(...)``) and hands them to
``Agent.continue_run``. Every record survives a JSON round trip, so the answer may come from another process.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

KINDS = ("confirmation", "user_input", "external_execution")
_PY_TYPES: dict[str, type] = {"string": str, "integer": int, "number": float, "boolean": bool, "array": list,
                              "object": dict}
_TYPE_NAMES: dict[str, type] = {t.__name__: t for t in _PY_TYPES.values()}


@dataclass
class UserInputField:
    """One value a tool asks the human for (``value`` stays None until given)."""

    name: str
    field_type: type = str
    description: str | None = None
    value: Any = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "field_type": self.field_type.__name__, "description": self.description,
                "value": self.value}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UserInputField:
        return cls(name=data["name"], field_type=_TYPE_NAMES.get(data.get("field_type") or "", str),
                   description=data.get("description"), value=data.get("value"))


@dataclass
class ToolExecution:
    """One tool call of a run, as the model asked for it, with what the human decided about it."""

    tool_call_id: str | None = None
    tool_name: str | None = None
    tool_args: dict[str, Any] | None = field(default_factory=dict)
    tool_call_error: bool | None = None
    result: str | None = None
    requires_confirmation: bool | None = None
    confirmed: bool | None = None
    confirmation_note: str | None = None
    requires_user_input: bool | None = None
    user_input_schema: list[UserInputField] | None = None
    answered: bool | None = None
    external_execution_required: bool | None = None
    user_input_fields: list[str] | None = None  # the fields the tool asks the human for (None: every argument)

    def to_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["tool_args"] = json.loads(json.dumps(self.tool_args)) if self.tool_args is not None else None
        data["user_input_schema"] = [f.to_dict() for f in self.user_input_schema] \
            if self.user_input_schema is not None else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ToolExecution:
        names = cls.__dataclass_fields__
        kwargs = {k: v for k, v in data.items() if k in names}
        schema = kwargs.get("user_input_schema")
        kwargs["user_input_schema"] = [UserInputField.from_dict(f) for f in schema] if schema is not None else None
        kwargs["tool_args"] = dict(kwargs.get("tool_args") or {})
        return cls(**kwargs)


class RunRequirement:
    """One paused tool call and the human's answer to it (Agno's ``agno.run.requirement.RunRequirement``)."""

    def __init__(self, tool_execution: ToolExecution, id: str | None = None, created_at: float | None = None):
        self.id = id or tool_execution.tool_call_id
        self.tool_execution = tool_execution
        self.user_input_schema = tool_execution.user_input_schema
        self.created_at = created_at if created_at is not None else time.time()
        self.confirmation: bool | None = None
        self.confirmation_note: str | None = None
        self.external_execution_result: str | None = None
        self.outcome: str | None = None  # what the model was told once the call was answered (kept for display)

    def __repr__(self) -> str:
        state = "resolved" if self.is_resolved() else f"needs {self.kind}"
        return f"RunRequirement({self.tool_execution.tool_name}, {state})"

    @property
    def tool_name(self) -> str:
        return self.tool_execution.tool_name

    @property
    def tool_call_id(self) -> str:
        return self.tool_execution.tool_call_id

    @property
    def field_names(self) -> list[str]:
        """The names of the fields the human is asked for: the tool's ``user_input_fields``, else every field."""
        names = [f.name for f in self.user_input_schema or []]
        asked = self.tool_execution.user_input_fields
        return [n for n in names if n in asked] if asked else names

    # -- what it waits for -------------------------------------------------------------------------
    @property
    def kind(self) -> str:
        """"confirmation", "user_input" or "external_execution" (Agno's ``pause_type``)."""
        tool = self.tool_execution
        if tool.external_execution_required:
            return "external_execution"
        return "user_input" if tool.requires_user_input else "confirmation"

    pause_type = kind

    @property
    def needs_confirmation(self) -> bool:
        tool = self.tool_execution
        return bool(tool.requires_confirmation) and self.confirmation is None and tool.confirmed is None

    @property
    def needs_user_input(self) -> bool:
        """While a field has no value (the model's arguments prefill the fields it was asked for)."""
        tool = self.tool_execution
        if not tool.requires_user_input or tool.answered:
            return False
        return any(f.value is None for f in self.user_input_schema or [])

    @property
    def needs_external_execution(self) -> bool:
        tool = self.tool_execution
        return bool(tool.external_execution_required) and self.external_execution_result is None \
            and tool.result is None

    def is_resolved(self) -> bool:
        """Answered (or already applied to the run): nothing more to give before ``continue_run``."""
        return self.outcome is not None or not (
            self.needs_confirmation or self.needs_user_input or self.needs_external_execution)

    @property
    def resolved(self) -> bool:
        """Applied: the tool call's result is already in the run's messages."""
        return self.outcome is not None

    # -- answering ---------------------------------------------------------------------------------
    def confirm(self) -> None:
        if not self.needs_confirmation:
            raise ValueError("This requirement does not require confirmation")
        self.confirmation = self.tool_execution.confirmed = True

    def reject(self, note: str | None = None) -> None:
        if not self.needs_confirmation:
            raise ValueError("This requirement does not require confirmation")
        self.confirmation = self.tool_execution.confirmed = False
        self.confirmation_note = self.tool_execution.confirmation_note = note

    def provide_user_input(self, values: dict[str, Any]) -> None:
        """Fill fields by name; the requirement is answered once every field has a value."""
        if not self.needs_user_input:
            raise ValueError("This requirement does not require user input")
        unknown = sorted(set(values) - {f.name for f in self.user_input_schema or []})
        if unknown:
            raise ValueError(f"{self.tool_execution.tool_name} asks for no field named {', '.join(unknown)}")
        for input_field in self.user_input_schema or []:
            if input_field.name in values:
                input_field.value = values[input_field.name]
        if all(f.value is not None for f in self.user_input_schema or []):
            self.tool_execution.answered = True

    def set_external_execution_result(self, result: Any) -> None:
        if not self.needs_external_execution:
            raise ValueError("This requirement does not require external execution")
        text = result if isinstance(result, str) else json.dumps(result, default=repr)
        self.external_execution_result = self.tool_execution.result = text

    # -- storage -----------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "created_at": self.created_at, "confirmation": self.confirmation,
                "confirmation_note": self.confirmation_note,
                "external_execution_result": self.external_execution_result, "outcome": self.outcome,
                "tool_execution": self.tool_execution.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunRequirement:
        """Also reads an Agno-style dict, where answers may sit only at the top level."""
        if "tool_execution" not in data:
            raise ValueError(f"a run requirement needs its tool_execution: got keys {sorted(data)}")
        tool = ToolExecution.from_dict(data["tool_execution"])
        requirement = cls(tool, id=data.get("id"), created_at=data.get("created_at"))
        requirement.confirmation = data.get("confirmation")
        requirement.confirmation_note = data.get("confirmation_note")
        requirement.external_execution_result = data.get("external_execution_result")
        requirement.outcome = data.get("outcome")
        if requirement.confirmation is not None and tool.confirmed is None:
            tool.confirmed = requirement.confirmation
        if requirement.external_execution_result is not None and tool.result is None:
            tool.result = requirement.external_execution_result
        return requirement


def input_schema(parameters: dict[str, Any], arguments: dict[str, Any]) -> list[UserInputField]:
    """Every parameter of a user-input tool, as Agno lists them: those the model gave (the ``user_input_fields``
    were hidden from it) prefilled with its values, the rest empty for the human."""
    properties = parameters.get("properties") or {}
    return [UserInputField(name=name, field_type=_PY_TYPES.get(spec.get("type", ""), str),
                           description=spec.get("description"), value=arguments.get(name))
            for name, spec in properties.items()]


def linked_tools(tools: list[Any], requirements: list[RunRequirement]) -> list[ToolExecution]:
    """A run's tool calls as records, each waiting call the same object as in its requirement, so answering it
    on either counts (runs stored before ``RunOutput.tools`` get their waiting calls listed)."""
    waiting = {r.tool_call_id: r.tool_execution for r in requirements}
    linked = [waiting.get(t.tool_call_id, t) for t in (
        t if isinstance(t, ToolExecution) else ToolExecution.from_dict(t) for t in tools)]
    present = {id(t) for t in linked}
    return linked + [t for t in waiting.values() if id(t) not in present]


def stored_requirement(data: dict[str, Any]) -> RunRequirement:
    """A requirement as stored; also reads the plain dicts stored before requirements were objects
    (``tool_call_id``, ``tool_name``, ``arguments`` as JSON text, ``kind``, ``fields``, ``resolved``, ``outcome``)."""
    if "tool_execution" in data:
        return RunRequirement.from_dict(data)
    try:
        arguments = json.loads(data.get("arguments") or "{}")
    except ValueError:
        arguments = {}
    kind = data.get("kind") or "confirmation"
    tool = ToolExecution(tool_call_id=data["tool_call_id"], tool_name=data["tool_name"],
                         tool_args=arguments if isinstance(arguments, dict) else {},
                         requires_confirmation=True if kind == "confirmation" else None,
                         requires_user_input=True if kind == "user_input" else None,
                         external_execution_required=True if kind == "external_execution" else None,
                         user_input_schema=[UserInputField(name=f) for f in data.get("fields") or []]
                         if kind == "user_input" else None)
    requirement = RunRequirement(tool)
    if data.get("resolved"):
        requirement.outcome = data.get("outcome") or ""
    return requirement
