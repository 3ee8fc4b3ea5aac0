"""``SessionPanel``: browse, switch and inspect a notebook's sessions without typing commands.

It reads and writes only through the ``Agent`` (and its store), so it works — and is tested — without a kernel.
The selected session is always the active one: clicking a session makes the next ``%%agent`` cell continue it,
and ``%agent use`` in a cell moves the selection here, through the Agent's listeners. Team and workflow runs in
the same store show too, member runs and steps folded under them (``follow`` keeps them live). In History, a
paused agent run is answered (``continue_run``) and an agent run's prompt regenerated or one of its variants kept
(``regenerate``, ``choose_variant``); each is one synchronous Agent call, announced on the status line while the
model answers.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ipywidgets import HTML, Button, HBox, Label, Layout, Tab, VBox
from ipywidgets.widgets.widget_string import LabelStyle

from nbsessions.db.base import BaseDb
from nbsessions.db.urls import is_postgres_url, mask_url
from nbsessions.panel.actions import ActionBar
from nbsessions.panel.history_view import HistoryView
from nbsessions.panel.metrics_view import MetricsView
from nbsessions.panel.paused_run import PausedRun
from nbsessions.panel.run_tree import RUNS_PER_PAGE, read_page
from nbsessions.panel.session_list import ALL_USERS, SessionList
from nbsessions.panel.state_editor import StateEditor
from nbsessions.panel.styles import with_stylesheet
from nbsessions.panel.widget_tree import close_with_looks, descendants
from nbsessions.records import theme
from nbsessions.records.errors import NbSessionsError
from nbsessions.records.redact import redact
from nbsessions.records.schema import Metrics, RunOutput, RunStatus
from nbsessions.runs.agent import Agent

_ERROR_COLOUR = theme.ERROR_LABEL


class SessionPanel(VBox):
    """The session list, actions and History / State / Metrics tabs of one store, kept live.

    Pass the ``agent`` the notebook uses (the magic does), or just a ``db`` to browse a store. Call ``close()``
    when done: it also stops listening to the agent.
    """

    def __init__(self, agent: Agent | None = None, *, db: BaseDb | None = None, page_size: int = 10) -> None:
        if agent is None:
            agent = Agent(db=db)
        elif db is not None and db is not agent.db:
            raise ValueError("pass either an agent or a db (or the agent's own db), not two different stores")
        self.agent = agent
        self.selected: str | None = None
        self._lock = threading.RLock()  # listener calls may come from a thread running the agent
        self._acting = False
        self._closed = False
        self._followed: list[tuple[Any, Callable[[str, str], None]]] = [(agent, self._on_event)]
        self.refresh_button = Button(description="Refresh", icon="refresh",
                                     tooltip="pick up what other kernels wrote to this store")
        self.status = Label(style=LabelStyle())
        self.sessions = SessionList(agent, self.select, self._list_changed, page_size)
        self.actions = ActionBar(on_new=self._new, on_rename=self._rename, on_fork=self._fork,
                                 on_delete=self._delete)
        self.history = HistoryView(self._turn_history, self._continue, self._keep, self._regenerate)
        self.state = StateEditor(self._save_state)
        self.metrics = MetricsView()
        self.tabs = Tab([self.history, self.state, self.metrics], titles=("History", "State", "Metrics"))
        self.tabs.observe(self._tab_shown, "selected_index")
        self.refresh_button.on_click(lambda _b: self.refresh())
        shown = (mask_url(agent.db.path) if is_postgres_url(agent.db.path) else Path(agent.db.path).name
                 ) if agent.db.path else "in memory"
        where = Label(f"store: {shown}", tooltip=str(agent.db.path or ""), style=LabelStyle(text_color=theme.DIM))
        super().__init__([HBox([HTML(with_stylesheet("<b>Sessions</b>")), where, self.refresh_button],
                               layout=Layout(align_items="center")),
                          self.sessions, self.actions, self.status, self.tabs])
        self.add_class("nbsessions-panel")
        self.refresh()
        agent.add_listener(self._on_event, other_kernels=True)  # other kernels' writes too (PostgreSQL)

    # -- public --------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Re-read everything from the store, including the active session another kernel may have set."""
        with self._lock:
            try:
                self._set_selected(self.agent.active_session_id)
            except NbSessionsError as exc:  # the store is unreachable: say so, keep showing what we have
                self._say(str(exc), error=True)
                return
            if self.status.style.text_color == _ERROR_COLOUR:
                self._say(None)  # an error shown is over unless the redraw meets it (or another) again
            self._redraw()

    def select(self, session_id: str) -> None:
        """Show ``session_id`` and make it the active session for the next ``%%agent`` cell."""
        def action() -> str:
            self.agent.set_active_session(session_id)
            self._set_selected(session_id)
            return f"“{self.agent.get_session(session_id).label}” is the active session"
        self._act(action)

    def follow(self, runner: Any) -> None:
        """Also redraw when ``runner`` — a ``Team`` or ``Workflow`` on this panel's store — runs. Every run in the
        store is shown anyway; following makes a runner's runs appear as they start and end, without a Refresh."""
        if runner.db is not self.agent.db:
            raise ValueError("the panel can only follow a team or workflow that writes to the panel's own store")
        listener = _weak_listener(self)  # a workflow cannot drop a listener: never let it keep the panel alive
        runner.add_listener(listener)
        self._followed.append((runner, listener))

    def close(self) -> None:
        """Stop following the agent (and any followed runner) and close every widget of the panel."""
        if not hasattr(self, "_lock"):  # called by Widget.__del__ after a refused __init__
            super().close()
            return
        with self._lock:
            self._closed = True
            for runner, listener in self._followed:
                if hasattr(runner, "remove_listener"):
                    runner.remove_listener(listener)
            self._followed.clear()
        for widget in reversed(descendants(self)):
            close_with_looks(widget)
        super().close()
        self.layout.close()

    # -- drawing -------------------------------------------------------------------------------
    def _set_selected(self, session_id: str | None) -> None:
        if session_id != self.selected:
            self.history.page = 0
        self.selected = session_id

    def _redraw(self, detail: bool = True) -> bool:
        """Redraw from the store; a store error (a database down) goes to the status line, never out of a widget
        callback, where it would be lost (JupyterLab shows nothing and the click seems to freeze). False then."""
        try:
            self._draw(detail)
        except NbSessionsError as exc:
            self._say(str(exc), error=True)
            return False
        return True

    def _draw(self, detail: bool) -> None:
        totals: dict[str, tuple[int, Metrics]] = {}

        def cached_totals(session_id: str) -> tuple[int, Metrics]:
            if session_id not in totals:
                totals[session_id] = self.agent.get_session_totals(session_id)
            return totals[session_id]

        self.sessions.refresh(self.selected, cached_totals)
        if detail:
            self._show_detail(cached_totals)

    def _show_detail(self, totals: Callable[[str], tuple[int, Metrics]]) -> None:
        session = None
        if self.selected is not None:
            try:
                session = self.agent.get_session(self.selected)
            except NbSessionsError as exc:  # deleted by another kernel, or another user's session
                self._say(str(exc), error=True)
                self.selected = None
        if session is None:
            self.history.clear("Select a session to see its history, state and metrics.")
            self.state.clear()
            self.metrics.clear()
            self.actions.show(None, [], 0, 0)
            return
        count, metrics = totals(session.session_id)

        def read(last: int) -> list[RunOutput]:
            return self.agent.get_runs(session.session_id, last=last)

        runs, nested = read_page(read, count, self.history.page)
        if not runs and self.history.page > 0:  # the page vanished (runs deleted elsewhere)
            self.history.page = 0
            runs, nested = read_page(read, count, 0)
        first = count - self.history.page * RUNS_PER_PAGE - len(runs) + 1
        self.history.show(session, runs, self.history.page, count, nested)
        self.metrics.show(count, metrics, runs, first)
        self.state.show(session.session_state)
        self.actions.show(session, runs, first, count)

    def _say(self, message: str | None, *, error: bool = False) -> None:
        self.status.value = redact(message or "")  # a name or an error may quote a key
        self.status.style.text_color = _ERROR_COLOUR if error else None

    # -- events --------------------------------------------------------------------------------
    def _tab_shown(self, change: dict) -> None:
        """The Metrics tab draws its table and chart only while shown (see ``MetricsView``)."""
        with self._lock:
            self.metrics.shown = change["new"] == 2

    def _on_event(self, event: str, session_id: str) -> None:
        """Agent listener: a cell ran, a session changed, or ``%agent use`` switched the active session."""
        try:
            with self._lock:
                if self._acting or self._closed:  # our own write: the action redraws once it is done
                    return
                self._say(None)  # what the last click did is stale once a cell or another kernel acts
                if event == "active":
                    self._set_selected(session_id or None)
                elif event == "deleted" and session_id == self.selected:
                    self._set_selected(None)
                self._redraw(detail=event in ("active", "deleted") or session_id == self.selected)
        except Exception as exc:  # a listener must never break the run that notified it
            self._say(f"the panel could not update: {exc}", error=True)

    def _act(self, action: Callable[[], str | None], report: Label | None = None, busy: str | None = None) -> None:
        """Run one user action, then redraw once; errors are shown, not raised into the widget machinery.

        ``busy`` goes to the status line first: a model call takes a moment, and the front end shows it meanwhile.
        """
        with self._lock:
            if busy:
                self._say(busy)
            self._acting = True
            message, error = None, None
            try:
                message = action()
            except (NbSessionsError, ValueError) as exc:
                error = str(exc)
            finally:
                self._acting = False
            if not self._redraw() and not error:
                return  # the store error is on the status line
            if error and report is not None:
                report.value = error
            self._say(error or message, error=bool(error))

    def _list_changed(self) -> None:
        with self._lock:
            self._redraw(detail=False)

    def _turn_history(self, page: int) -> None:
        with self._lock:
            self.history.page = max(0, page)
            self._redraw(detail=True)

    # -- actions -------------------------------------------------------------------------------
    def _new(self, name: str = "") -> None:
        def action() -> str:
            user = self.sessions.user_filter.value
            session = self.agent.create_session(name.strip() or None,
                                                user_id=None if user == ALL_USERS else user[1])
            self.actions.name.value = ""
            self.agent.set_active_session(session.session_id)
            self._set_selected(session.session_id)
            self.sessions.page = 0
            return f"new session {session.label} is active"
        self._act(action)

    def _rename(self, name: str) -> None:
        def action() -> str:
            if self.selected is None:
                raise ValueError("select a session to rename")
            session = self.agent.set_session_name(self.selected, session_name=name)
            self.actions.name.value = ""
            return f"renamed to “{session.label}”"
        self._act(action)

    def _fork(self, run_id: str | None) -> None:
        def action() -> str:
            if self.selected is None:
                raise ValueError("select a session to fork")
            fork = self.agent.fork_session(self.selected, run_id)
            self.agent.set_active_session(fork.session_id)
            self._set_selected(fork.session_id)
            return f"forked into “{fork.label}”, now active"
        self._act(action)

    def _delete(self, session_id: str) -> None:
        def action() -> str:
            label = self.agent.get_session(session_id).label
            self.agent.delete_session(session_id)
            if self.selected == session_id:
                self._set_selected(None)
            return f"deleted “{label}”"
        self._act(action)

    def _save_state(self, changed: dict[str, Any], removed: set[str]) -> None:
        """Merge the changed keys and delete the removed ones in one write, so no other writer's key is lost."""
        def action() -> str:
            if self.selected is None:
                raise ValueError("select a session first")
            self.agent.update_session_state(changed, self.selected, remove=removed)  # tells other listeners
            return "state saved"
        self._act(action, report=self.state.message)

    def _continue(self, card: PausedRun, approve: bool | None) -> None:
        """Answer a paused run; a missing answer is reported on its card, and then nothing runs."""
        try:
            user_input, results = card.answers()
        except ValueError as exc:
            card.message.value = str(exc)
            self._say(str(exc), error=True)
            return

        def action() -> str:
            run = self.agent.continue_run(card.run_id, approve=approve, user_input=user_input, results=results)
            return f"run #{card.number} continued: {_outcome(run)}"
        self._act(action, report=card.message, busy=f"continuing run #{card.number}: the model is answering…")

    def _keep(self, run_id: str) -> None:
        def action() -> str:
            self.agent.choose_variant(run_id)
            return "this variant is now the one kept in history; the others stay stored, marked superseded"
        self._act(action)

    def _regenerate(self, run_id: str) -> None:
        def action() -> str:
            run = self.agent.regenerate(run_id=run_id)
            self.history.page = 0  # the new variant is the session's newest run
            return f"new variant: {_outcome(run)}"
        self._act(action, busy="regenerating: the model is answering…")


def _outcome(run: RunOutput) -> str:
    if run.status == RunStatus.paused:
        return "paused again, waiting for you below"
    return run.status.value + (f": {run.error}" if run.error else "")


def _weak_listener(panel: SessionPanel) -> Callable[[str, str], None]:
    ref = weakref.ref(panel)

    def listener(event: str, session_id: str) -> None:
        target = ref()
        if target is not None:
            target._on_event(event, session_id)
    return listener
