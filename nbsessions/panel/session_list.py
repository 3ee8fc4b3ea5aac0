"""The session list: a notebook's sessions, newest first, filtered by user and text (names, ids, users, and words
in prompts and replies: ``search``), paged.

Names and user ids are shown in text-only widgets (Button, Label), so nothing a user or a model typed can
become markup here; the one HTML cell per row holds numbers and dates only.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from itertools import zip_longest

from ipywidgets import HTML, Button, ButtonStyle, Checkbox, Dropdown, GridBox, HBox, Label, Layout, Text, VBox
from ipywidgets.widgets.widget_string import HTMLStyle, LabelStyle

from nbsessions.agent import Agent
from nbsessions.listing import group_experiments
from nbsessions.panel import formatting as fmt
from nbsessions.panel.search import ContentIndex
from nbsessions.render import format_cost
from nbsessions.schema import Metrics, Session

ALL_USERS = ("all",)  # Dropdown value for "no user filter"; user filters are ("user", user_id)
STAT_COLUMNS = (("runs", "50px"), ("last update", "130px"), ("tokens", "80px"), ("cost", "80px"), ("id", "70px"))
Totals = Callable[[str], "tuple[int, Metrics]"]


def stats_html(values: tuple[str, ...], bold: bool = False) -> str:
    """The numeric columns as one HTML widget (fewer widgets, a faster panel); only numbers and dates go in."""
    weight = "font-weight:bold;" if bold else ""
    cells = "".join(f'<span style="display:inline-block;width:{width};{weight}">{html.escape(value)}</span>'
                    for value, (_name, width) in zip(values, STAT_COLUMNS, strict=True))
    return f'<div style="white-space:nowrap">{cells}</div>'


class _Row:
    """One reusable row: widgets are made once and refilled, so refreshing a page creates nothing."""

    def __init__(self, on_click: Callable[[str], None], styles: tuple[ButtonStyle, LabelStyle, HTMLStyle]) -> None:
        self.layout = Layout(display="none", width="auto")  # shared by the row's cells: one switch hides it
        self.name = Button(layout=self.layout, style=styles[0])
        self.name.add_class("nbsessions-session")
        self.user = Label(layout=self.layout, style=styles[1])
        self.stats = HTML(layout=self.layout, style=styles[2])
        self.session_id: str | None = None
        self.name.on_click(lambda _button: self.session_id and on_click(self.session_id))

    @property
    def widgets(self) -> list:
        return [self.name, self.user, self.stats]

    def show(self, session: Session | None, totals: tuple[int, Metrics] | None, selected: str | None) -> None:
        if session is None or totals is None:
            self.session_id = None
            self.layout.display = "none"
            return
        runs, metrics = totals
        self.session_id = session.session_id
        self.name.description = ("↳ " if session.experiment else "") + session.label  # under its source
        self.name.tooltip = f"{session.label} · {session.session_id}"
        self.name.button_style = "info" if session.session_id == selected else ""
        self.user.value = session.user_id or "–"
        total = fmt.tokens(metrics.total_tokens, metrics.tokens_estimated)
        self.stats.value = stats_html((str(runs), fmt.when(session.updated_at), total,
                                       format_cost(metrics.cost), session.session_id[:8]))
        self.layout.display = None


class SessionList(VBox):
    """Lists sessions through the Agent; ``on_select(session_id)`` when a name is clicked, ``on_change()``
    when a filter or the page changed and the list should be redrawn."""

    def __init__(self, agent: Agent, on_select: Callable[[str], None], on_change: Callable[[], None],
                 page_size: int = 10) -> None:
        self._agent = agent
        self._on_change = on_change
        self._syncing = False
        self.page = 0
        self.hidden_experiments = 0
        self.page_size = page_size
        self.user_filter = Dropdown(options=[("all users", ALL_USERS)], value=ALL_USERS, description="User",
                                    layout=Layout(width="220px"))
        self.text_filter = Text(placeholder="filter by name, id, user or words said",
                                layout=Layout(width="260px"))
        self.content = ContentIndex(agent)
        self.show_experiments = Checkbox(False, description="experiments", indent=False, layout=Layout(width="auto"),
                                         tooltip="also list the sessions compare and batch made, under their source")
        styles = (ButtonStyle(), LabelStyle(), HTMLStyle())  # shared by every row: fewer widgets to build
        self.rows = [_Row(on_select, styles) for _ in range(page_size)]
        bold = LabelStyle(font_weight="bold")
        header = [Label("session", style=bold), Label("user", style=bold),
                  HTML(stats_html(tuple(name for name, _w in STAT_COLUMNS), bold=True))]
        self.grid = GridBox(
            [*header, *(w for row in self.rows for w in row.widgets)],
            layout=Layout(grid_template_columns="minmax(150px, 3fr) minmax(70px, 1fr) max-content",
                          grid_gap="2px 10px", align_items="center"))
        self.prev_page = Button(description="◀ newer", layout=Layout(width="90px"))
        self.next_page = Button(description="older ▶", layout=Layout(width="90px"))
        self.page_info = Label()
        self.prev_page.on_click(lambda _b: self._turn(-1))
        self.next_page.on_click(lambda _b: self._turn(+1))
        self.user_filter.observe(self._filter_changed, names="value")
        self.text_filter.observe(self._filter_changed, names="value")
        self.show_experiments.observe(self._filter_changed, names="value")
        super().__init__([HBox([self.user_filter, self.text_filter, self.show_experiments]), self.grid,
                          HBox([self.prev_page, self.page_info, self.next_page])])

    def _filter_changed(self, _change: dict) -> None:
        if not self._syncing:
            self.page = 0
            self._on_change()

    def _turn(self, step: int) -> None:
        self.page = max(0, self.page + step)
        self._on_change()

    def _matches(self, session: Session) -> bool:
        user = self.user_filter.value
        if user != ALL_USERS and session.user_id != user[1]:
            return False
        needle = self.text_filter.value.strip().lower()
        return not needle or any(needle in (text or "").lower()
                                 for text in (session.session_name, session.session_id, session.user_id)
                                 ) or self.content.matches(session, needle)

    def _sync_users(self, sessions: list[Session]) -> None:
        """Offer every user seen in the store, keeping the current choice even if it has no sessions now."""
        users = sorted({s.user_id for s in sessions if s.user_id is not None})
        current = self.user_filter.value
        if current != ALL_USERS and current[1] not in users:
            users = sorted([*users, current[1]])
        options = [("all users", ALL_USERS), *((u, ("user", u)) for u in users)]
        if list(self.user_filter.options) == options:
            return
        self._syncing = True
        try:
            self.user_filter.options = options
            self.user_filter.value = current
        finally:
            self._syncing = False

    def refresh(self, selected: str | None, totals: Totals) -> None:
        """Redraw the current page; ``totals(session_id)`` gives (run count, summed metrics) per row."""
        sessions = self._agent.get_sessions()
        self._sync_users(sessions)
        self.content.forget({s.session_id for s in sessions})
        shown, self.hidden_experiments = group_experiments([s for s in sessions if self._matches(s)],
                                                           include=self.show_experiments.value)
        pages = max(1, -(-len(shown) // self.page_size))
        self.page = min(self.page, pages - 1)
        start = self.page * self.page_size
        page = shown[start:start + self.page_size]
        for row, session in zip_longest(self.rows, page):
            row.show(session, totals(session.session_id) if session else None, selected)
        hidden = f" · {self.hidden_experiments} experiment sessions hidden" if self.hidden_experiments else ""
        self.page_info.value = fmt.page_label(start + 1, len(page), len(shown), "sessions") + hidden
        self.prev_page.disabled = self.page == 0
        self.next_page.disabled = self.page >= pages - 1

    @property
    def shown_ids(self) -> list[str]:
        """Session ids in the order the rows show them (what a user sees, top to bottom)."""
        return [row.session_id for row in self.rows if row.session_id]
