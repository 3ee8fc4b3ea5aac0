"""The History tab: a session's transcript, 50 top-level runs per page, newest page and newest run first.

A plain run is drawn as HTML (``run_html``) with its folded Sent view (``SentView``) under it, in a slot that
History keeps and refills (``history_slots``: what keeps a long session's redraws cheap in the browser). A team's
member runs and a workflow's step runs are folded under their run (``nested_html``'s ``Fold``), never entries of
their own. Two kinds of run get widgets of their own, in transcript order: a paused run (``PausedRun``: Approve /
Reject, fields, results) and the variants of one prompt (``VariantGroup``: side by side, "Keep this one"). Every
entry is left alone while what it shows is unchanged, so a live redraw touches only what changed, and a cell
running elsewhere does not wipe what the user is typing into a paused run's fields. Which Sent views and folds of
nested runs the user unfolded is remembered (by run id), so one stays unfolded when its run is drawn anew.
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Callable

from ipywidgets import HTML, Button, Dropdown, HBox, Label, Layout, VBox, Widget

from nbsessions.panel import formatting as fmt
from nbsessions.panel.history_slots import EntrySlot, Placement, RunSlot, Slots
from nbsessions.panel.nested_html import Fold, Folding, tree_markup, tree_piece, tree_widget
from nbsessions.panel.paused_run import OnContinue, PausedRun
from nbsessions.panel.run_html import clip, render_summary
from nbsessions.panel.run_tree import RUNS_PER_PAGE, Nested, tree_key
from nbsessions.panel.sent_view import SentView, sent_parts, sent_view
from nbsessions.panel.styles import set_hidden
from nbsessions.panel.variants_view import Member, VariantGroup
from nbsessions.panel.widget_tree import SharedLooks, close_tree, descendants
from nbsessions.records.schema import RunOutput, RunStatus, Session

NO_RUNS = "<p><i>No runs yet: run a <code>%%agent</code> cell to start this session.</i></p>"
Entry = tuple[Widget, ...]  # what one plain run, paused run or variant group shows, in order
Block = tuple[str, list[Member]]  # ("runs" | "paused" | "variants", members in transcript order)


def is_waiting(run: RunOutput) -> bool:
    """An agent run paused with something still to answer (a paused run without requirements only gets its
    badge; team and workflow runs are continued by their own runner, not by the panel's agent)."""
    return (run.kind == "agent" and run.status == RunStatus.paused
            and any(not r.resolved for r in run.requirements))


def can_regenerate(run: RunOutput) -> bool:
    """Regenerating replays an agent run's context up to its own prompt, so it needs that prompt in its messages;
    a team or workflow run is more than one model call, which the panel's agent cannot replay."""
    return (run.kind == "agent" and bool(run.input)
            and any(m.role == "user" and not m.from_history for m in run.messages))


def plan_blocks(runs: list[RunOutput], first: int) -> list[Block]:
    """Split a page into blocks; variants of one prompt gather where the first of them appears on the page."""
    slots = Counter(r.variant_of or r.run_id for r in runs)
    blocks: list[Block] = []
    groups: dict[str, Block] = {}
    for number, run in enumerate(runs, start=first):
        slot = run.variant_of or run.run_id
        if slots[slot] > 1 or run.variant_of:
            if slot not in groups:
                groups[slot] = ("variants", [])
                blocks.append(groups[slot])
            groups[slot][1].append((number, run))
        elif is_waiting(run):
            blocks.append(("paused", [(number, run)]))
        elif blocks and blocks[-1][0] == "runs":
            blocks[-1][1].append((number, run))
        else:
            blocks.append(("runs", [(number, run)]))
    return blocks


class HistoryView(VBox):
    """Shows one page. Callbacks to the panel: ``on_page(page)`` (0 = newest), ``on_continue(card, approve)``,
    ``on_keep(run_id)`` and ``on_regenerate(run_id)``."""

    def __init__(self, on_page: Callable[[int], None], on_continue: OnContinue, on_keep: Callable[[str], None],
                 on_regenerate: Callable[[str], None]) -> None:
        self.page = 0
        self.total = 0
        self._on_continue, self._on_keep, self._on_regenerate = on_continue, on_keep, on_regenerate
        self._unfolded: set[str] = set()  # what the user unfolded: run ids (Sent views) and ``Fold`` keys
        self._looks = SharedLooks()  # for the slots' widgets only: they live as long as History
        self._folding = Folding(self._unfolded, self._toggled)
        self._nested: Nested = {}  # runs nested under the page's runs (team members, workflow steps)
        self._labels: dict[str, str] = {}  # run id -> "#N" on this page: how Sent views name history's runs
        self.summary = self._looks.html("")
        self._note = self._looks.html("")  # "no runs yet" and other messages in place of runs
        self.slots = Slots()
        self.body = VBox([self.summary, self._note, self.slots],
                         layout=Layout(max_height="600px", overflow="auto", display="block"))
        self.body.add_class("nbsessions-history")
        self.newer = Button(description="◀ newer", layout=Layout(width="90px"))
        self.older = Button(description="older ▶", layout=Layout(width="90px"))
        self.page_info = Label()
        self.regenerate_from = Dropdown(layout=Layout(width="300px"))
        self.regenerate = Button(description="Regenerate", icon="refresh", layout=Layout(width="120px"),
                                 tooltip="ask the chosen run's prompt again, with the same context, as a variant")
        self.newer.on_click(lambda _b: on_page(self.page - 1))
        self.older.on_click(lambda _b: on_page(self.page + 1))
        self.regenerate.on_click(lambda _b: self.regenerate_from.value and
                                 self._on_regenerate(self.regenerate_from.value))
        super().__init__([HBox([self.newer, self.page_info, self.older, self.regenerate_from, self.regenerate],
                               layout=Layout(flex_flow="row wrap", align_items="center")), self.body])
        self.clear("Select a session to see its history.")

    # -- drawing -------------------------------------------------------------------------------
    def show(self, session: Session, runs: list[RunOutput], page: int, total: int,
             nested: Nested | None = None) -> None:
        """``runs``: the page's top-level runs, oldest first; ``nested``: the runs folded under them, by parent."""
        first = total - page * RUNS_PER_PAGE - len(runs) + 1
        self.page, self.total, self._nested = page, total, nested or {}
        _show(self.summary, render_summary(session))
        _show(self._note, "" if runs else NO_RUNS)
        self._labels = {run.run_id: f"#{number}" for number, run in enumerate(runs, start=first)}
        entries = []
        for kind, members in reversed(plan_blocks(runs, first)):  # newest first: no scrolling to the latest
            groups = [[m] for m in reversed(members)] if kind == "runs" else [members]  # a plain run each
            for group in groups:
                key = (kind, *(tree_key(run, number, self._nested) for number, run in group))
                entries.append(self._entry(key, kind, group))
        self.slots.place(entries)
        self.page_info.value = fmt.page_label(first, len(runs), total, "runs")
        self.newer.disabled = page == 0
        self.older.disabled = first <= 1
        self._offer_regenerate(runs, first)

    def clear(self, message: str) -> None:
        self.page, self.total, self._nested = 0, 0, {}
        _show(self.summary, "")
        _show(self._note, f"<p><i>{html.escape(message)}</i></p>")
        self.slots.place([])
        self.page_info.value = ""
        self.newer.disabled = self.older.disabled = True
        self._offer_regenerate([], 0)

    @property
    def entries(self) -> list[Entry]:
        """What each entry on the page shows, in display order (newest first): a plain run's HTML and Sent view,
        a paused run's card, a variant group, or a run with folds (and its Sent view)."""
        return [slot.shown for slot in self.slots.shown]

    @property
    def markup(self) -> str:
        """All the HTML on the page, in order: what a reader of the transcript sees, for tests and exports."""
        notes = "".join(w.value for w in (self.summary, self._note))
        return notes + "".join(tree_markup(widget) for entry in self.entries for widget in entry)

    @property
    def shown_widgets(self) -> list[Widget]:
        """Every widget of the page's entries, in display order."""
        return [w for entry in self.entries for top in entry for w in (top, *descendants(top))]

    @property
    def paused(self) -> list[PausedRun]:
        """The paused-run cards on the page, newest first (also those inside a variant group)."""
        return [w for w in self.shown_widgets if isinstance(w, PausedRun)]

    @property
    def variant_groups(self) -> list[VariantGroup]:
        return [w for entry in self.entries for w in entry if isinstance(w, VariantGroup)]

    @property
    def sent_views(self) -> list[SentView]:
        """The Sent views on the page, in display order (newest run first)."""
        return [w for w in self.shown_widgets if isinstance(w, SentView)]

    @property
    def folds(self) -> list[Fold]:
        """The folds of nested runs on the page (member runs, step runs), in display order."""
        return [w for w in self.shown_widgets if isinstance(w, Fold)]

    def close(self) -> None:
        self.slots.close()
        for widget in (self._note, self.summary):
            close_tree(widget)
        self._looks.close()
        super().close()

    # -- pieces --------------------------------------------------------------------------------
    def _entry(self, key: tuple, kind: str, members: list[Member]) -> Placement:
        """How ``Slots.place`` puts one entry on the page: in a slot it refills, or in a new one."""
        number, run = members[0]
        if kind == "runs" and not self._nested.get(run.run_id):
            def parts() -> tuple:
                markup = str(tree_piece(run, number, self._nested, self._folding))
                return number, markup, sent_parts(run, self._labels), run.run_id, run.run_id in self._unfolded

            return Placement(key, number, run.run_id, RunSlot, lambda slot: slot.fill(key, *parts()),
                             lambda: RunSlot(self._looks, self._toggled, *parts()))
        return Placement(key, number, run.run_id, EntrySlot,
                         lambda slot: slot.fill(key, number, self._make(kind, members)),
                         lambda: EntrySlot(number, self._make(kind, members), self._looks.layout))

    def _make(self, kind: str, members: list[Member]) -> Entry:
        number, run = members[0]
        if kind == "runs":
            sent = self._sent(run)
            return (tree_widget(run, number, self._nested, self._folding), *([sent] if sent else []))
        if kind == "paused":
            return (PausedRun(run, number, self._on_continue, sent=self._sent(run)),)
        return (VariantGroup(members, self._variant_body, self._on_keep, self._on_regenerate, sent=self._sent(run)),)

    def _sent(self, run: RunOutput) -> SentView | None:
        """The run's Sent view, unfolded when the user left it so (by run id)."""
        return sent_view(run, self._labels, unfolded=run.run_id in self._unfolded, on_toggle=self._toggled)

    def _toggled(self, run_id: str, unfolded: bool) -> None:
        (self._unfolded.add if unfolded else self._unfolded.discard)(run_id)

    def _variant_body(self, number: int, run: RunOutput) -> Widget:
        if is_waiting(run):
            return PausedRun(run, number, self._on_continue, prompt=False)
        return tree_widget(run, number, self._nested, self._folding, prompt=False)

    def _offer_regenerate(self, runs: list[RunOutput], first: int) -> None:
        """Runs of the page that can be asked again, newest first. The newest is the default, and stays so as
        runs arrive; a run the user picked stays picked while the page shows it."""
        options = [(f"#{first + i} · {clip(run.input, 40)}", run.run_id)
                   for i, run in reversed(list(enumerate(runs))) if can_regenerate(run)]
        if list(self.regenerate_from.options) != options:
            current, options_before = self.regenerate_from.value, self.regenerate_from.options
            picked = current is not None and options_before and current != options_before[0][1]
            self.regenerate_from.options = options
            ids = [run_id for _label, run_id in options]
            self.regenerate_from.value = current if picked and current in ids else (ids[0] if ids else None)
        self.regenerate_from.disabled = self.regenerate.disabled = not options


def _show(widget: HTML, markup: str) -> None:
    """Fill a long-lived HTML widget, hidden while it has nothing to say."""
    with widget.hold_sync():
        widget.value = markup
        set_hidden(widget, not markup)
