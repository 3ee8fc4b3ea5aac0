"""The action bar: New, Rename, Fork (from a chosen run) and Delete with a confirmation step.

It only collects what the user asked for and hands it to the panel, which does the writing; a destructive
click never acts alone — Delete first shows what would go, and only "Yes, delete" deletes.
"""

from __future__ import annotations

from collections.abc import Callable

from ipywidgets import Button, Dropdown, HBox, Label, Layout, Text, VBox

from nbsessions.panel import formatting as fmt
from nbsessions.records.schema import RunOutput, Session

WHOLE_SESSION = "__whole_session__"  # Fork option meaning "every run"; run ids are uuids, so never equal


class ActionBar(VBox):
    """Callbacks: ``on_new(name)``, ``on_rename(name)``, ``on_fork(run_id | None)``, ``on_delete(session_id)``.

    Delete names the session the user confirmed, not whatever is selected when "Yes" is clicked.
    """

    def __init__(self, *, on_new: Callable[[str], None], on_rename: Callable[[str], None],
                 on_fork: Callable[[str | None], None], on_delete: Callable[[str], None]) -> None:
        self._session: Session | None = None
        self._run_count = 0
        self._pending: str | None = None
        self.new = Button(description="New", icon="plus", tooltip="start a new session and make it active",
                          layout=Layout(width="80px"))
        self.name = Text(placeholder="name (New / Rename)", layout=Layout(width="150px"))
        self.rename = Button(description="Rename", icon="pencil", layout=Layout(width="100px"))
        self.fork_from = Dropdown(options=[("all runs", WHOLE_SESSION)], description="Fork from",
                                  layout=Layout(width="270px"), style={"description_width": "65px"})
        self.fork = Button(description="Fork", icon="code-fork", layout=Layout(width="80px"),
                           tooltip="copy the session up to the chosen run into a new, active session")
        self.delete = Button(description="Delete", icon="trash", button_style="danger", layout=Layout(width="90px"))
        self.confirm_text = Label()
        self.confirm = Button(description="Yes, delete", button_style="danger")
        self.cancel = Button(description="Cancel")
        self.confirm_box = HBox([self.confirm_text, self.confirm, self.cancel], layout=Layout(display="none"))
        self.new.on_click(lambda _b: on_new(self.name.value))
        self.rename.on_click(lambda _b: on_rename(self.name.value))
        self.fork.on_click(lambda _b: on_fork(None if self.fork_from.value == WHOLE_SESSION
                                              else self.fork_from.value))
        self.delete.on_click(lambda _b: self._ask())
        self.confirm.on_click(lambda _b: self._confirmed(on_delete))
        self.cancel.on_click(lambda _b: self._hide_confirm())
        super().__init__([HBox([self.new, self.name, self.rename, self.fork_from, self.fork, self.delete],
                               layout=Layout(flex_flow="row wrap")),
                          self.confirm_box])
        self.show(None, [], 0, 0)

    def show(self, session: Session | None, runs: list[RunOutput], first_number: int, run_count: int) -> None:
        """Enable what makes sense for the selection; fork points are the runs on the History page."""
        if session is None or self._pending != session.session_id:
            self._hide_confirm()
        self._session, self._run_count = session, run_count
        for widget in (self.rename, self.fork, self.delete, self.fork_from):  # the name box also serves New
            widget.disabled = session is None
        options = [("all runs", WHOLE_SESSION)]
        options += [(f"#{first_number + i} · {fmt.when_precise(r.created_at)} · {r.status.value}", r.run_id)
                    for i, r in reversed(list(enumerate(runs)))]
        if list(self.fork_from.options) != options:
            self.fork_from.options = options

    def _ask(self) -> None:
        if self._session is None:
            return
        self._pending = self._session.session_id
        runs = fmt.counted(self._run_count, "run")  # top-level runs, as History numbers them
        self.confirm_text.value = f"Delete session “{self._session.label}” and its {runs}? This cannot be undone."
        self.confirm_box.layout.display = None

    def _confirmed(self, on_delete: Callable[[str], None]) -> None:
        pending = self._pending
        self._hide_confirm()
        if pending is not None:
            on_delete(pending)

    def _hide_confirm(self) -> None:
        self._pending = None
        self.confirm_box.layout.display = "none"
        self.confirm_text.value = ""
