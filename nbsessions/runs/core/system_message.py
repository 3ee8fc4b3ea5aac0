"""The system message a run sends, assembled from an agent's Agno-named options in Agno's order and format.

Agno's ``get_system_message`` (agno/agent/_messages.py) puts ``description`` first, then ``<your_role>``, the
instructions (a list becomes ``- `` items), ``<additional_information>`` (markdown, current time, name), then
``<expected_output>`` and ``additional_context``, and the session state last; a given ``system_message``
replaces all of it. Kept apart from the Agent so the text can be read and tested without a model or a store.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from nbsessions.records.errors import InvalidInputError
from nbsessions.runs.core.context import fill_from_state

Instructions = str | list[str] | None
MARKDOWN_LINE = "Use markdown to format your answers."


@dataclass(frozen=True)
class SystemPrompt:
    """The options that shape the system message besides the instructions (Agno's names and defaults)."""

    description: str | None = None
    role: str | None = None
    expected_output: str | None = None
    additional_context: str | None = None
    markdown: bool = False
    add_datetime_to_context: bool = False
    datetime_format: str | None = None
    timezone_identifier: str | None = None
    add_name_to_context: bool = False
    use_instruction_tags: bool = False
    system_message: str | None = None

    def __post_init__(self) -> None:
        for name in ("description", "role", "expected_output", "additional_context", "datetime_format",
                     "system_message"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise InvalidInputError(f"{name} must be text, not {type(value).__name__}")
        if self.timezone_identifier is not None:
            _zone(self.timezone_identifier)


def _zone(identifier: str) -> tzinfo:
    try:
        return ZoneInfo(identifier)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidInputError(f"unknown timezone_identifier {identifier!r}: use an IANA name such as "
                                "'Europe/Paris'") from exc


def check_instructions(instructions: Any) -> None:
    """Text or a list of texts, as Agno takes them (callables are not supported here)."""
    if instructions is None or isinstance(instructions, str):
        return
    if not isinstance(instructions, list) or not all(isinstance(i, str) for i in instructions):
        raise InvalidInputError("instructions must be text or a list of texts")


def render_instructions(instructions: list[str]) -> str:
    """Agno's rendering: one instruction as written; several as ``- `` items unless one spans lines."""
    if len(instructions) == 1:
        return instructions[0]
    if not any("\n" in i.strip() for i in instructions):
        return "\n".join(f"- {i.strip()}" for i in instructions)
    return "\n\n".join(i if "\n" in i.strip() else f"- {i.strip()}" for i in instructions)


def _now(prompt: SystemPrompt) -> str:
    zone = _zone(prompt.timezone_identifier) if prompt.timezone_identifier else None
    moment = datetime.now(zone)
    return moment.strftime(prompt.datetime_format) if prompt.datetime_format else str(moment)


def _additional_information(prompt: SystemPrompt, name: str | None) -> list[str]:
    lines = [MARKDOWN_LINE] if prompt.markdown else []
    if prompt.add_datetime_to_context:
        lines.append(f"The current time is {_now(prompt)}.")
    if prompt.add_name_to_context and name is not None:
        lines.append(f"Your name is: {name}.")
    return lines


def build_system_message(prompt: SystemPrompt, instructions: Instructions, state: Mapping[str, Any], *,
                         name: str | None = None, add_session_state: bool = False,
                         variables: Mapping[str, Any] | None = None) -> str | None:
    """The system message text, or None when there is nothing to say; ``{key}`` is filled from ``variables``
    (default: ``state``) where Agno fills it (everything before ``expected_output``, and a given
    ``system_message``)."""
    values = state if variables is None else variables
    if prompt.system_message is not None:
        return fill_from_state(prompt.system_message, values)
    text = f"{prompt.description}\n" if prompt.description is not None else ""
    if prompt.role is not None:
        text += f"\n<your_role>\n{prompt.role}\n</your_role>\n\n"
    listed = [instructions] if isinstance(instructions, str) else list(instructions or [])
    if listed:
        rendered = render_instructions(listed)
        text += f"<instructions>\n{rendered}\n</instructions>\n\n" if prompt.use_instruction_tags \
            else rendered + "\n\n"
    information = _additional_information(prompt, name)
    if information:
        text += "<additional_information>" + "".join(f"\n- {line}" for line in information)
        text += "\n</additional_information>\n\n"
    text = fill_from_state(text, values)
    if prompt.expected_output is not None:
        text += f"<expected_output>\n{prompt.expected_output.strip()}\n</expected_output>\n\n"
    if prompt.additional_context is not None:
        text += f"{prompt.additional_context}\n"
    if add_session_state:
        text += f"\n<session_state>\n{json.dumps(dict(state), ensure_ascii=False, sort_keys=True)}\n" \
                "</session_state>\n\n"
    return text.strip() or None
