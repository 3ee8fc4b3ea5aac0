"""History's places on the page: slots that keep their widgets for as long as History lives, so a redraw sends
new values, not new views.

Why: the browser redraws a box's children from the first one that changed, and each view it drops leaves its
layout's view behind until that layout is closed (``widget_tree``). Newest first, a new run on top would make
the browser redraw every run below it on every run, and keep the old views. So slots are only ever added at the
end of their box and never move: CSS ``order`` shows them newest first, and an entry that goes takes the newest
that comes, in the same slot. The order is a class of the stylesheet (``styles.place_class``: the number of the
slot's first run, counted from a base that moves only when the page's runs leave the stylesheet's range), not a
``Layout`` of each slot's own: the slots share History's looks, and a build makes no layout per run.

A plain run's slot (``RunSlot``) refills its HTML and its Sent view in place. Any other entry — a paused run, the
variants of a prompt, a team or workflow run with folds — goes into an ``EntrySlot``, which holds widgets made
for what it shows and closes them, looks and all, when that changes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from ipywidgets import HTML, Layout, VBox, Widget

from nbsessions.panel.sent_view import OnToggle, Sent, SentView
from nbsessions.panel.styles import PLACES, place_class, set_hidden
from nbsessions.panel.widget_tree import SharedLooks, close_tree


class RunSlot:
    """One plain run: an HTML widget and a Sent view, both refilled in place (``fill``). They sit in the slots'
    box side by side, with History's shared looks: a plain run costs no box and no layout. The Sent view shows
    the slots' shared ``blank`` until first unfolded. A free slot is hidden by class (``styles.HIDDEN``)."""

    def __init__(self, looks: SharedLooks, on_toggle: OnToggle, number: int, markup: str, sent: Sent | None,
                 run_id: str, unfolded: bool) -> None:
        self.key: tuple | None = None
        self.number, self.ident, self.place = number, "", ""
        self.html = HTML(markup, layout=looks.spaced, style=looks.style)
        self.sent = SentView(run_id, sent, unfolded=unfolded, layout=looks.spaced, body=looks.html,
                             blank=looks.blank, on_toggle=on_toggle)

    @property
    def widgets(self) -> tuple[Widget, ...]:
        return (self.html, self.sent)

    def fill(self, key: tuple, number: int, markup: str, sent: Sent | None, run_id: str, unfolded: bool) -> None:
        self.key, self.number = key, number
        with self.html.hold_sync():
            self.html.value = markup
            set_hidden(self.html, False)
        self.sent.show(run_id, sent, unfolded=unfolded)

    def empty(self) -> None:
        self.key = None
        with self.html.hold_sync():
            self.html.value = ""
            set_hidden(self.html, True)
        self.sent.show("", None)

    @property
    def shown(self) -> tuple[Widget, ...]:
        return (self.html,) if self.sent.hidden else (self.html, self.sent)


class EntrySlot(VBox):
    """One entry drawn with widgets of its own: replaced (and the old ones closed) when the entry changes. The
    box itself lives as long as History, so it takes History's shared ``layout``; a free one is hidden by class."""

    def __init__(self, number: int, widgets: tuple[Widget, ...], layout: Layout) -> None:
        self.key: tuple | None = None
        self.number, self.ident, self.place = number, "", ""
        super().__init__(widgets, layout=layout)

    @property
    def widgets(self) -> tuple[Widget, ...]:
        return (self,)

    def fill(self, key: tuple, number: int, widgets: tuple[Widget, ...]) -> None:
        self._replace(widgets)
        self.key, self.number = key, number
        set_hidden(self, False)

    def empty(self) -> None:
        self.key = None
        set_hidden(self, True)
        self._replace(())

    def _replace(self, widgets: tuple[Widget, ...]) -> None:
        old = [w for w in self.children if w not in widgets]
        self.children = widgets
        for widget in old:
            close_tree(widget)

    @property
    def shown(self) -> tuple[Widget, ...]:
        return tuple(self.children)


Slot = RunSlot | EntrySlot


def put(slot: Slot, place: str) -> None:
    """Give the slot's widgets the class that orders them (``styles.place_class``), replacing the one they had."""
    if slot.place != place:
        for widget in slot.widgets:
            widget._dom_classes = (*(c for c in widget._dom_classes if c != slot.place), place)
        slot.place = place


class Placement(NamedTuple):
    """One entry of a page: ``key`` says everything it shows, ``ident`` which run it is (its first run's id),
    ``fill(slot)`` draws it in a slot of its kind and ``make()`` in a new one (given its values from the start:
    cheaper than filling it after)."""

    key: tuple
    number: int
    ident: str
    kind: type
    fill: Callable[[Any], None]
    make: Callable[[], Slot]


class Slots(VBox):
    """The page's slots, in one flex column ordered by CSS ``order`` (see the module docstring).

    ``place(entries)`` takes the page's entries, newest first. An entry whose key is on the page keeps its slot
    untouched; any other takes the freed slot of its kind that showed the same run (a run that changed), else
    another freed one, oldest first, else a new one at the end.
    """

    def __init__(self) -> None:
        self.all: list[Slot] = []
        self.base = 0  # the run number that ``place_class(0)`` stands for
        super().__init__([])

    def place(self, entries: list[Placement]) -> None:
        wanted = {entry.key for entry in entries}
        free = [slot for slot in self.all if slot.key not in wanted]
        placed = {slot.key for slot in self.all} & wanted
        added: list[Slot] = []
        for entry in entries:
            if entry.key in placed:
                continue
            kinds = [s for s in free if type(s) is entry.kind]
            slot = next((s for s in kinds if s.ident == entry.ident), kinds[0] if kinds else None)
            if slot is None:
                slot = entry.make()
                added.append(slot)
            else:
                free.remove(slot)
                entry.fill(slot)
            slot.key, slot.ident = entry.key, entry.ident
        for slot in free:
            if slot.key is not None:
                slot.empty()
        numbers = [entry.number for entry in entries]
        if numbers and not (self.base <= min(numbers) and max(numbers) < self.base + PLACES):
            self.base = min(numbers)  # the page moved out of range: every slot in use is put again
        self.all += added
        for slot in self.all:
            if slot.key is not None:
                put(slot, place_class(slot.number - self.base))
        if added:
            self.children = (*self.children, *(w for slot in added for w in slot.widgets))

    @property
    def shown(self) -> list[Slot]:
        """The slots in use, as the page shows them: newest first."""
        return sorted((s for s in self.all if s.key is not None), key=lambda s: -s.number)

    def close(self) -> None:
        for widget in self.children:
            close_tree(widget)
        super().close()
