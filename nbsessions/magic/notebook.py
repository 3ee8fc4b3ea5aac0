"""The notebook's side of nbsessions: which database, which session, which model, which user.

``AgentMagics`` parses a cell and hands over to ``NotebookAgent``; the ``%agent`` subcommands use it too. Every
check that can fail (model name, session, state JSON, ``{fields}``) runs before anything is written, so a bad cell
leaves the database exactly as it was.

The traits that shape the Agent itself (history budget, summaries, agentic state) and the tools taken from the
notebook are applied by ``configure``, again whenever one of them changes.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, MutableMapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError

from nbsessions.db import open_store
from nbsessions.db.base import BaseDb
from nbsessions.llm.base import Model
from nbsessions.magic.cellopts import CellOptions, Prepared, Settings, parse_state
from nbsessions.magic.cellrun import CellInterrupted, show_run
from nbsessions.magic.modelchoice import OFFLINE_NOTICE as OFFLINE_NOTICE
from nbsessions.magic.modelchoice import ModelChoice
from nbsessions.magic.pauses import PausedNotices
from nbsessions.magic.registry import Registry
from nbsessions.magic.scope import DbLocation, configured_db, locate_db, login_user
from nbsessions.presentation.templating import TemplateError, fill_prompt
from nbsessions.records.errors import (
    InvalidInputError,
    NbSessionsError,
    SessionAccessError,
    SessionNotFoundError,
    StorageError,
)
from nbsessions.records.schema import RunOutput, RunStatus, Session
from nbsessions.records.validate import check_text
from nbsessions.runs.agent import Agent, RunStream
from nbsessions.runs.core.tools import make_tool, update_session_state
from nbsessions.runs.listing import match_session
from nbsessions.runs.summary import Summarizer

if TYPE_CHECKING:
    from nbsessions.panel.panel import SessionPanel  # ipywidgets is imported only when a panel is shown

log = logging.getLogger(__name__)

BACKGROUND_WAIT = 10.0
"""Seconds ``close`` and ``%agent summary`` wait for a summary being written in the background."""


def open_db(location: DbLocation) -> BaseDb:
    """The notebook's store: its TinyDB file, or a shared PostgreSQL database (imported only when used).

    On a shared database the notebook's settings (its active session) are kept per login and notebook.
    """
    scope = f"{login_user()}@{location.notebook or Path.cwd()}" if location.url else ""
    return open_store(location.target, meta_scope=scope)


class NotebookAgent(ModelChoice):
    """Holds the notebook's Agent (opened lazily, so ``%agent db PATH`` can come first) and its choices."""

    def __init__(self, settings: Settings, user_ns: MutableMapping[str, Any]) -> None:
        super().__init__()
        self.settings = settings
        self.user_ns = user_ns
        self.cell_id: str | None = None
        self.execution_count: int | None = None
        self._db_override: tuple[str, str] | None = None  # (path, why) from %agent db
        self._agent: Agent | None = None
        self._location: DbLocation | None = None
        self.tools: dict[str, Callable[..., Any]] = {}  # from %agent tools, by tool name
        self.panel: SessionPanel | None = None  # the panel %agent panel showed last
        self._unnamed: set[str] = set()  # sessions this kernel started without a name: named after a run
        self._paused_models: dict[str, Model] = {}  # run id -> the model a paused run was started with
        self._paused_runners: dict[str, Agent] = {}  # run id -> the registered agent that paused it
        self.paused_notices = PausedNotices(lambda run_id, sid: self.agent.get_run_output(run_id, session_id=sid),
                                            self.continue_in_place)
        self.registry = Registry()  # teams, workflows and agents from %agent register

    # -- database ---------------------------------------------------------------------------------
    @property
    def location(self) -> DbLocation:
        if self._location is None:
            path, why = configured_db(self._db_override, self.settings.db_url, self.settings.db_path)
            self._location = locate_db(path, reason=why, user_ns=self.user_ns)
        return self._location

    @property
    def agent(self) -> Agent:
        if self._agent is None:
            self._attach(self._open(self.location))
        return self._agent

    @staticmethod
    def _open(location: DbLocation) -> BaseDb:
        try:
            return open_db(location)
        except StorageError as exc:  # a PostgreSQL error names the (masked) URL itself
            raise UsageError(str(exc) if location.url else f"cannot open {location.label}: {exc}") from None
        except (NbSessionsError, OSError) as exc:
            raise UsageError(f"cannot open {location.label}: {exc}") from None

    def _attach(self, db: BaseDb) -> Agent:
        self._agent = Agent(db=db, add_history_to_context=True, num_history_runs=self.settings.history,
                            name="notebook")
        self._agent.add_listener(self.paused_notices.on_event)
        self.configure()
        return self._agent

    def configure(self) -> None:
        """Apply the settings that shape the Agent; called when it opens and when a setting changes."""
        agent = self._agent
        if agent is None:
            return
        settings = self.settings
        agent.user_id = self.user  # every subcommand and the panel act as the notebook's user, owner-checked
        agent.options["num_history_runs"] = settings.history
        agent.options["max_history_tokens"] = settings.history_tokens or None
        if settings.summaries <= 0 or (agent.summarizer is not None
                                       and agent.summarizer.every != settings.summaries):
            if agent.summarizer is not None:
                agent.summarizer.close()  # a refresh still queued must not call the model any more
            agent.summarizer = None
        if settings.summaries > 0 and agent.summarizer is None:
            agent.summarizer = Summarizer(agent.db, agent.model, settings.summaries)
        agent.options["add_session_summary_to_context"] = settings.summaries > 0
        functions = [*self.tools.values(), *([update_session_state] if settings.agentic_state else [])]
        agent.tools = {t.name: t for t in map(make_tool, functions)}

    def use_model(self, model: Model) -> None:
        """The notebook's model from now on: for cells without ``-m``, names and summaries."""
        self.agent.model = model
        if self.agent.summarizer is not None:
            self.agent.summarizer.model = model

    @contextlib.contextmanager
    def acting_as(self, user: str | None) -> Iterator[Agent]:
        """The Agent with ``user`` as its user for a while: sessions that compare and batch make are theirs."""
        agent = self.agent
        before, agent.user_id = agent.user_id, user
        try:
            yield agent
        finally:
            agent.user_id = before

    def variable(self, name: str, flag: str) -> Any:
        """A value from the user's namespace (``name`` or ``name.attr``), or a one-line ``UsageError``."""
        head, *path = name.split(".")
        if not head.isidentifier() or head not in self.user_ns:
            raise UsageError(f"{flag} {name}: no variable {head!r} in the notebook; define it first")
        value = self.user_ns[head]
        for attr in path:
            if not hasattr(value, attr):
                raise UsageError(f"{flag} {name}: {type(value).__name__} has no attribute {attr!r}")
            value = getattr(value, attr)
        return value

    def switch_db(self, path: str | None, why: str = "set with %agent db") -> DbLocation:
        """Use another file or ``postgresql://`` URL from now on (``None``: back to the configured/default one).

        The new store is opened first: when it cannot be, the previous database stays in use.
        """
        if not path:
            self.close()
            self._db_override = None
            return self.location
        location = locate_db(path, reason=why, user_ns=self.user_ns)
        db = self._open(location)
        self.close()
        self._db_override, self._location = (path, why), location
        self._attach(db)
        return location

    def close(self) -> None:
        """Close the panel, let a summary being written finish, then close the file."""
        self.close_panel()
        if self._agent is not None:
            if self._agent.summarizer is not None:
                with contextlib.suppress(TimeoutError):
                    self._agent.summarizer.wait(timeout=BACKGROUND_WAIT)
            self._agent.db.close()
        self._agent = None
        self._location = None

    def close_panel(self) -> None:
        """Close the panel shown before, so it stops listening to the Agent (listeners never pile up)."""
        panel, self.panel = self.panel, None
        if panel is not None and hasattr(panel, "close"):
            panel.close()

    # -- users and sessions -----------------------------------------------------------------------
    @property
    def user(self) -> str | None:
        if self.settings.user:
            return self.settings.user
        return login_user() if self.location.url else None  # a shared store never mixes users' sessions

    def sessions(self) -> list[Session]:
        return self.agent.get_sessions(user_id=self.user)

    def active_session(self) -> Session | None:
        """The session new cells continue, if it still exists and belongs to the current user."""
        sid = self.agent.active_session_id
        if not sid:
            return None
        try:
            return self.agent.get_session(sid, self.user)
        except (SessionAccessError, SessionNotFoundError):  # another user's, or deleted by another kernel
            return None

    def require_active(self) -> Session:
        session = self.active_session()
        if session is None:
            raise UsageError("no active session yet: run a %%agent cell, or %agent new NAME")
        return session

    def find_session(self, text: str, user: str | None = None, *, unique: bool = False) -> Session:
        """By exact id, exact name, or unique id prefix — the ways people refer to a session.

        Re-running a notebook makes sessions with the same name; the newest of them is meant, unless
        ``unique`` (for deleting) asks for an unambiguous reference.
        """
        text = text.strip()
        if not text:
            raise UsageError("name a session: its name or the start of its id (see %agent sessions)")
        sessions = self.agent.get_sessions(user_id=user if user is not None else self.user)  # newest first
        try:
            found = match_session(sessions, text, unique=unique)
        except SessionNotFoundError as exc:
            raise UsageError(str(exc)) from None
        if found is None:
            raise UsageError(f"no session {text!r} in {self.location.name}: see %agent sessions")
        return found

    def new_session(self, name: str | None = None, user: str | None = None) -> Session:
        """Create a session for this notebook and make it the active one."""
        notebook = self.location.notebook
        session = self.agent.create_session(name or None, user_id=user if user is not None else self.user,
                                            notebook=str(notebook) if notebook else None)
        self.agent.set_active_session(session.session_id)
        if not name:
            self._unnamed.add(session.session_id)
        elif session.session_name != name:
            print(f"the name {name!r} is taken by another of your sessions: this one is {session.session_name!r}")
        return session

    def name_new_session(self, run: RunOutput, model: Model | None = None) -> None:
        """Give a session this kernel started unnamed a generated name, once, after its first completed run.

        Titled by ``model``, the one that ran the cell (``-m`` included), else the notebook's. Called after the
        reply is shown. Best effort: a failure leaves the session unnamed and the cell fine.
        """
        if run.session_id not in self._unnamed:
            return
        self._unnamed.discard(run.session_id)
        try:
            with self.acting_as(run.user_id) as agent:  # a `-u` cell's session is named as its user
                if not agent.get_session(run.session_id).session_name:
                    agent.set_session_name(run.session_id, autogenerate=True, model=model)
        except KeyboardInterrupt:
            raise CellInterrupted(run, "interrupted while naming the session; the reply is stored") from None
        except Exception as exc:  # a name is a convenience: never fail a cell whose reply is stored
            log.info("session %s left unnamed: %s", run.session_id[:8], exc)

    # -- running a cell ---------------------------------------------------------------------------
    def prepare(self, opts: CellOptions, body: str, *, resolve_model: bool = True) -> Prepared:
        """Check everything a cell asks for and fill its ``{fields}``; writes nothing."""
        prompt = body.strip("\n").rstrip()
        if not prompt.strip():
            raise UsageError("the cell has no prompt: write it on the lines below %%agent")
        if opts.output is not None and not opts.output.isidentifier():
            raise UsageError(f"-o needs a variable name, not {opts.output!r}")
        name, source = self.model_choice(opts.model) if resolve_model else ("", "")
        model = self.model(name) if resolve_model else None
        state = parse_state(opts.state) if opts.state is not None else None
        user = opts.user or self.user
        session = None
        if opts.new is None:
            session = self.find_session(opts.session, user) if opts.session else self.active_session()
        if session is not None and user is not None and session.user_id != user:  # before its state is read
            raise UsageError("that session belongs to another user: add --new, or pick one of yours with -s")
        secrets = (model or self.agent.model).secrets()
        try:
            prompt = check_text(fill_prompt(prompt, self.user_ns, {**(session.session_state if session else {}),
                                                                   **(state or {})}, secrets=secrets), "the prompt")
        except (TemplateError, InvalidInputError) as exc:
            raise UsageError(str(exc)) from None
        return Prepared(prompt, model, source, session, user, state)

    def run_cell(self, opts: CellOptions, body: str) -> RunOutput:
        """Validate everything, then run the prompt with its reply streaming into the cell."""
        ready = self.prepare(opts, body)
        model = ready.model
        assert model is not None
        session = ready.session or self.new_session(opts.new, ready.user)
        if opts.model is None:
            self.use_model(model)
        self.announce(ready.source)
        try:
            stream = self.agent.run(
                ready.prompt, session_id=session.session_id, user_id=ready.user, session_state=ready.state,
                stream=True, instructions=opts.system, model=model, cell_id=self.cell_id,
                execution_count=self.execution_count, **self.history_settings(opts))
        except (SessionAccessError, ValueError) as exc:
            raise UsageError(str(exc)) from None
        live = self.settings.stream if opts.stream is None else opts.stream
        return self.show(stream if live else stream.whole_replies(), session, model, live=live, output=opts.output)

    def history_settings(self, opts: CellOptions) -> dict[str, Any]:
        """History settings of one run: the cell's flags over ``%config``."""
        runs = self.settings.history if opts.history is None else opts.history
        tokens = opts.history_tokens if opts.history_tokens is not None else self.settings.history_tokens
        messages = opts.history_messages
        return {"add_history_to_context": (runs if messages is None else messages) > 0, "num_history_runs": runs,
                "num_history_messages": messages, "max_history_tokens": tokens or None}

    def show(self, stream: RunStream, session: Session, model: Model, *, live: bool | None = None,
             output: str | None = None, runner: Agent | None = None, waiting: str | None = None) -> RunOutput:
        """Stream a run into the cell with its footer; then a paused notice, or a name for a new session.

        ``runner`` is a registered agent or team the run belongs to (``%agent continue`` resumes it there).
        """
        label = session.label_with_id
        try:
            run = show_run(stream, label, waiting=f"{waiting or model.id} · {label}",
                           live=self.settings.stream if live is None else live,
                           interval=self.settings.update_interval)
        finally:
            if output:
                self.user_ns[output] = stream.run
        if run.status == RunStatus.paused:
            self._paused_models[run.run_id] = model
            if runner is not None:
                self._paused_runners[run.run_id] = runner
            self.paused_notices.show(run, label)
        elif run.status == RunStatus.completed:
            self._paused_models.pop(run.run_id, None)
            self._paused_runners.pop(run.run_id, None)
            self.name_new_session(run, model)
        return run

    def continue_in_place(self, run_id: str, session_id: str, answers: dict[str, Any]) -> RunOutput:
        """Resume a paused run from the buttons under its notice, on the model it started with, without
        streaming (the click comes from the widget, not from a cell that could show a stream)."""
        run = self.agent.get_run_output(run_id, session_id=session_id)
        if run is None:
            raise UsageError(f"run {run_id[:8]} is no longer stored")
        model = self._paused_models.get(run_id) or self.agent.model_of(run)
        runner = self._paused_runners.get(run_id, self.agent)
        done = runner.continue_run(run_id, model=model, **answers)
        if done.status != RunStatus.paused:
            self._paused_models.pop(run_id, None)
            self._paused_runners.pop(run_id, None)
        return done

    def continue_paused(self, run: RunOutput, session: Session, answers: dict[str, Any]) -> RunOutput:
        """Resume a paused run with the user's answers, on the model it started with (this kernel's object, or
        one rebuilt from the run's record after a restart)."""
        model = self._paused_models.get(run.run_id) or self.agent.model_of(run)
        runner = self._paused_runners.get(run.run_id, self.agent)
        try:
            stream = runner.continue_run(run.run_id, model=model, stream=True, **answers)
        except (NbSessionsError, ValueError) as exc:
            raise UsageError(str(exc)) from None
        return self.show(stream, session, model, runner=self._paused_runners.get(run.run_id))
