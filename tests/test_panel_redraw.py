"""What the panel's redraws ask of the browser, checked on the kernel side: no view of a live widget is ever
dropped, nothing closed leaves its looks open, and a long session's runs do not add widgets.

The browser keeps a box's views up to the first child that changed and redraws the rest; a view it drops keeps
its layout's view (and its DOM) alive for as long as that layout is open. So for every box of the panel, before
and after each redraw, the children after the common prefix must all be closed widgets; and a closed widget's
layout and style must be closed too, unless a live widget still uses them. ``test_browser_long_session.py``
measures the same thing in Chromium.
"""

from __future__ import annotations

import json

from conftest import RecordingModel
from ipywidgets import Box, Widget
from ipywidgets.widgets import widget as widget_module

from nbsessions import Agent, FunctionModel, RunOutput, RunStatus
from nbsessions.llm.base import ToolCall
from nbsessions.panel import SessionPanel
from nbsessions.panel.run_tree import RUNS_PER_PAGE
from nbsessions.panel.styles import PLACES
from nbsessions.panel.widget_tree import descendants
from nbsessions.runs.core.tools import tool


def boxes(panel: SessionPanel) -> dict[Box, tuple[Widget, ...]]:
    return {w: tuple(w.children) for w in [panel, *descendants(panel)] if isinstance(w, Box)}


def looks(widget: Widget) -> list[Widget]:
    return [w for w in (getattr(widget, "layout", None), getattr(widget, "style", None)) if isinstance(w, Widget)]


class Watch:
    """Snapshots of the panel's boxes; ``check()`` after each redraw."""

    def __init__(self, panel: SessionPanel) -> None:
        self.panel = panel
        self.before = boxes(panel)
        self.seen: set[Widget] = set(self.before)
        self.dropped: list[str] = []

    def check(self) -> None:
        after = boxes(self.panel)
        for box, old in self.before.items():
            if box.comm is None:
                continue
            new = after.get(box, ())
            pairs = zip(old, new, strict=False)
            common = next((i for i, (a, b) in enumerate(pairs) if a is not b), min(len(old), len(new)))
            self.dropped += [f"{type(w).__name__} in {type(box).__name__}" for w in old[common:]
                             if w.comm is not None]
        self.seen |= {w for w in [self.panel, *descendants(self.panel)]}
        self.before = after

    def open_looks_of_closed(self) -> list[str]:
        live = {id(look) for w in [self.panel, *descendants(self.panel)] if w.comm is not None for look in looks(w)}
        return [f"{type(look).__name__} of a closed {type(w).__name__}" for w in self.seen if w.comm is None
                for look in looks(w) if look.comm is not None and id(look) not in live]


def test_runs_arriving_past_a_full_page_keep_every_live_view_and_add_no_widgets(db):
    agent = Agent(model=RecordingModel("a reply"), db=db)
    first = agent.run("run 1")
    panel = SessionPanel(agent)
    panel.select(first.session_id)
    watch = Watch(panel)
    counts = []
    for i in range(2, RUNS_PER_PAGE + 12):
        agent.run(f"run {i}", session_id=first.session_id, cell_id="cell-a" if i % 7 == 0 else None)
        watch.check()
        counts.append(len(widget_module._instances))
    assert watch.dropped == []
    assert watch.open_looks_of_closed() == []
    assert counts[-1] == counts[RUNS_PER_PAGE]  # the page is full: later runs refill it, with no new widget
    shown = panel.history.entries
    assert len(shown) == RUNS_PER_PAGE and f"run {RUNS_PER_PAGE + 11}" in shown[0][0].value  # newest on top
    assert "superseded" in panel.history.markup  # the re-run cell's older runs were redrawn in their slots
    panel.close()
    assert [w for w in watch.seen for w in (w, *looks(w)) if w.comm is not None] == []


def shown_by_place(panel: SessionPanel) -> list[int]:
    """The numbers of the slots in use, in the order the stylesheet's place classes put them (highest first)."""
    placed = []
    for slot in panel.history.slots.all:
        if slot.key is None:
            continue
        places = {c for w in slot.widgets for c in w._dom_classes if c.startswith("nbsessions-at-")}
        assert len(places) == 1, places  # every widget of a slot in one place, one place each
        place = int(places.pop().rsplit("-", 1)[1])
        assert 0 <= place < PLACES
        placed.append((place, slot.number))
    assert len({place for place, _n in placed}) == len(placed)
    return [number for _place, number in sorted(placed, reverse=True)]


def test_slots_show_newest_first_by_their_place_class_however_far_the_page_moves(db):
    agent = Agent(model=RecordingModel(), db=db)
    sid = agent.create_session("long").session_id
    runs = [RunOutput(session_id=sid, input=f"q{i}", content=f"a{i}") for i in range(1, 131)]
    runs[-30].superseded_by, runs[-29].variant_of = runs[-29].run_id, runs[-30].run_id  # #101 and #102: a group
    for run in runs:
        db.upsert_run(run)
    panel = SessionPanel(agent)
    panel.select(sid)
    assert shown_by_place(panel) == [n for n in range(130, 80, -1) if n != 102]  # the group goes in #101's slot
    assert {type(slot).__name__ for slot in panel.history.slots.all} == {"RunSlot", "EntrySlot"}
    panel.history.older.click()
    panel.history.older.click()  # the oldest page: runs #1 to #30, far below the first page's places
    assert shown_by_place(panel) == list(range(30, 0, -1))
    for i in range(131, 131 + PLACES):  # live runs push the page up past every place the classes have
        agent.run(f"q{i}", session_id=sid)
        if i % 40 == 0:
            panel.history.newer.click()
            panel.history.newer.click()
            assert shown_by_place(panel) == list(range(i, i - RUNS_PER_PAGE, -1))
    assert shown_by_place(panel) == list(range(130 + PLACES, 130 + PLACES - RUNS_PER_PAGE, -1))
    panel.close()


def test_switching_sessions_paused_runs_and_variants_drop_no_live_view(db):
    @tool(requires_confirmation=True)
    def publish(title: str) -> str:
        """Publish a title."""
        return "published " + title

    def model(messages, tools):
        if messages[-1].content == "publish it":
            return [ToolCall("call_1", "publish", json.dumps({"title": "Q3"}))]
        return "done: " + str(messages[-1].content)

    agent = Agent(model=FunctionModel(model), db=db, tools=[publish])
    first = agent.run("hello")
    other = agent.run("elsewhere", session_id=agent.create_session("other").session_id)
    panel = SessionPanel(agent)
    panel.select(first.session_id)
    watch = Watch(panel)
    paused = agent.run("publish it", session_id=first.session_id)
    assert paused.status == RunStatus.paused
    watch.check()
    card, = panel.history.paused
    card.approve.click()
    watch.check()
    assert panel.history.paused == [] and "published Q3" in panel.history.markup
    panel.history.regenerate_from.value = first.run_id
    panel.history.regenerate.click()
    watch.check()
    assert len(panel.history.variant_groups) == 1
    for session_id in (other.session_id, first.session_id, other.session_id):
        panel.select(session_id)
        watch.check()
    assert watch.dropped == []
    assert watch.open_looks_of_closed() == []
    panel.close()
    assert [w for w in watch.seen for w in (w, *looks(w)) if w.comm is not None] == []
