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
from nbsessions.validate import loads

SaveState = Callable[[dict[str, Any], set[str]], None]


def parse_state(text: str) -> dict[str, Any]:
    """The edited state, or ``ValueError`` with a message a user can act on (line and column)."""
    try:
        value = loads(text or "{}")
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    if not isinstance(value, dict):
        raise ValueError("the session state must be a JSON object, e.g. {\"topic\": \"ml\"}")
    return value


def dump_state(state: dict[str, Any]) -> str:
    return json.dumps(state, indent=2, ensure_ascii=False)


class StateEditor(VBox):
    """``on_save(changed, removed)`` receives only the keys the user changed or removed, so a key another
    kernel wrote meanwhile survives the save.

    While the user has unsaved text, a redraw (a run landing, another kernel's write) never replaces it: the
    editor says "the stored state changed" and offers Reload, as History does for a paused card.
    """

    def __init__(self, on_save: SaveState) -> None:
        self._on_save = on_save
        self._loaded: dict[str, Any] = {}  # the state the user's edit started from: Save diffs against it
        self._shown = ""  # the text last put in the editor, to tell the user's edits apart
        self._stored: dict[str, Any] | None = None  # the newer stored state, while an edit keeps it off screen
        self._saving: tuple[dict[str, Any], set[str]] | None = None
        self.text = Textarea(rows=12, layout=Layout(width="auto"))  # 100% plus its margins scrolled sideways
        self.save = Button(description="Save state", icon="save")
        self.reload = Button(description="Reload", icon="refresh", tooltip="drop the unsaved edit, show the stored "
                             "state", layout=Layout(display="none"))
        self.message = Label(style=LabelStyle(text_color=theme.ERROR_LABEL))
        self.save.on_click(self._save)
        self.reload.on_click(self._reload)
        super().__init__([self.text, HBox([self.save, self.reload, self.message])])
        self.clear()

    @property
    def edited(self) -> bool:
        """Whether the editor holds text the user typed and has not saved."""
        return not self.text.disabled and self.text.value != self._shown

    def show(self, state: dict[str, Any]) -> None:
        stored = json.loads(json.dumps(state))
        if self.edited and not self._saved_in(stored):
            if stored != self._loaded:
                self._stored = stored
                self.message.value = ("the stored state changed since you began editing: Save writes only the "
                                      "keys you changed; Reload shows the stored state")
                self.reload.layout.display = None
            return
        self._put(stored)

    def clear(self) -> None:
        self._put({})
        self.text.value = self._shown = ""
        self.text.disabled = self.save.disabled = True

    def _put(self, state: dict[str, Any]) -> None:
        self._loaded, self._stored = state, None
        self.text.value = self._shown = dump_state(state)
        self.text.disabled = self.save.disabled = False
        self.message.value = ""
        self.reload.layout.display = "none"

    def _saved_in(self, stored: dict[str, Any]) -> bool:
        """Whether ``stored`` holds the save being made now (then the editor shows it, the edit is done)."""
        if self._saving is None:
            return False
        changed, removed = self._saving
        return all(k in stored and stored[k] == v for k, v in changed.items()) and not removed & set(stored)

    def _reload(self, _button: Button | None = None) -> None:
        self._put(self._stored if self._stored is not None else self._loaded)

    def _save(self, _button: Button | None = None) -> None:
        try:
            edited = parse_state(self.text.value)
        except ValueError as exc:
            self.message.value = str(exc)
            return
        self.message.value = ""
        changed = {k: v for k, v in edited.items() if k not in self._loaded or self._loaded[k] != v}
        removed = set(self._loaded) - set(edited)
        self._saving = (changed, removed)
        try:
            self._on_save(changed, removed)
        finally:
            self._saving = None
