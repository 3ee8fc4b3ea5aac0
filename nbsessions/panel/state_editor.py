"""The State tab: the session state as readable JSON, editable in place.

Nothing is written unless the text parses to a JSON object; a typo shows an inline error and leaves both the
store and the user's text as they were, so no edit is lost.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from ipywidgets import Button, HBox, Label, Layout, Textarea, VBox
from ipywidgets.widgets.widget_string import LabelStyle

from nbsessions import theme

SaveState = Callable[[dict[str, Any], set[str]], None]


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON; use null or a string")


def parse_state(text: str) -> dict[str, Any]:
    """The edited state, or ``ValueError`` with a message a user can act on (line and column)."""
    try:
        value = json.loads(text or "{}", parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    if not isinstance(value, dict):
        raise ValueError("the session state must be a JSON object, e.g. {\"topic\": \"ml\"}")
    return value


def dump_state(state: dict[str, Any]) -> str:
    return json.dumps(state, indent=2, ensure_ascii=False)


class StateEditor(VBox):
    """``on_save(changed, removed)`` receives only the keys the user changed or removed, so a key another
    kernel wrote meanwhile survives the save."""

    def __init__(self, on_save: SaveState) -> None:
        self._on_save = on_save
        self._loaded: dict[str, Any] = {}
        self.text = Textarea(rows=12, layout=Layout(width="100%"))
        self.save = Button(description="Save state", icon="save")
        self.message = Label(style=LabelStyle(text_color=theme.ERROR))
        self.save.on_click(self._save)
        super().__init__([self.text, HBox([self.save, self.message])])
        self.clear()

    def show(self, state: dict[str, Any]) -> None:
        self._loaded = json.loads(json.dumps(state))
        self.text.value = dump_state(state)
        self.text.disabled = self.save.disabled = False
        self.message.value = ""

    def clear(self) -> None:
        self._loaded = {}
        self.text.value = ""
        self.text.disabled = self.save.disabled = True
        self.message.value = ""

    def _save(self, _button: Button | None = None) -> None:
        try:
            edited = parse_state(self.text.value)
        except ValueError as exc:
            self.message.value = str(exc)
            return
        self.message.value = ""
        changed = {k: v for k, v in edited.items() if k not in self._loaded or self._loaded[k] != v}
        removed = set(self._loaded) - set(edited)
        self._on_save(changed, removed)
