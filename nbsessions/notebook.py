"""The notebook's side of nbsessions: which database, which session, which model, which user.

``AgentMagics`` parses a cell and hands over to ``NotebookAgent``; the ``%agent`` subcommands use it too. Every
check that can fail (model name, session, state JSON, ``{fields}``) runs before anything is written, so a bad cell
leaves the database exactly as it was.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from IPython.core.error import UsageError

from nbsessions.agent import Agent
from nbsessions.cellrun import show_run
from nbsessions.db.base import BaseDb
from nbsessions.errors import NbSessionsError, SessionAccessError
from nbsessions.llm.base import Model
from nbsessions.schema import RunOutput, Session
from nbsessions.scope import DbLocation, locate_db
from nbsessions.templating import TemplateError, fill_prompt

DEFAULT_OPENAI_MODEL = "gpt-5.2"
OFFLINE = "offline"
_MODEL_ID = re.compile(r"[A-Za-z0-9][\w.:/@+-]*")
OFFLINE_NOTICE = ("nbsessions: using the offline model (no model set, no OPENAI_API_KEY). For a real one set "
                  "OPENAI_API_KEY, or %config AgentMagics.base_url and AgentMagics.model for a local server.")


class Settings(Protocol):
    """What ``NotebookAgent`` reads from ``AgentMagics``' traits (``%config AgentMagics.…``)."""

    model: str
    db_path: str
    base_url: str
    api: str
    history: int
    stream: bool
    user: str
    update_interval: float


def open_db(path: Path) -> BaseDb:
    """The notebook's store: one TinyDB file (imported here so ``import nbsessions.notebook`` stays cheap)."""
    from nbsessions.db.tinydb import TinyDb

    return TinyDb(path)


@dataclass
class CellOptions:
    """What a ``%%agent`` line asked for, already parsed (``None`` = not given)."""

    session: str | None = None
    user: str | None = None
    model: str | None = None
    new: str | None = None  # "" = a new unnamed session
    history: int | None = None
    system: str | None = None
    state: str | None = None
    stream: bool | None = None
    output: str | None = None
    result: bool = False


def parse_state(text: str) -> dict[str, Any]:
    """A JSON object for session state, or a one-line ``UsageError`` saying what is wrong with it."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"invalid state JSON ({exc.msg} at character {exc.pos}): "
                         """give an object such as '{"topic": "ml"}'""") from None
    if not isinstance(value, dict):
        raise UsageError(f"state must be a JSON object such as '{{\"topic\": \"ml\"}}', not {type(value).__name__}")
    return value


def session_label(session: Session) -> str:
    """``name (1a2b3c4d)`` or just the short id: what footers and messages call a session."""
    short = session.session_id[:8]
    return f"{session.session_name} ({short})" if session.session_name else short


class NotebookAgent:
    """Holds the notebook's Agent (opened lazily, so ``%agent db PATH`` can come first) and its choices."""

    def __init__(self, settings: Settings, user_ns: MutableMapping[str, Any]) -> None:
        self.settings = settings
        self.user_ns = user_ns
        self.cell_id: str | None = None
        self.execution_count: int | None = None
        self._db_override: tuple[str, str] | None = None  # (path, why) from %agent db
        self._agent: Agent | None = None
        self._location: DbLocation | None = None
        self._models: dict[tuple[str, str, str], Model] = {}
        self._named: dict[str, Model] = {}
        self._offline_announced = False

    # -- database ---------------------------------------------------------------------------------
    @property
    def location(self) -> DbLocation:
        if self._location is None:
            if self._db_override is not None:
                path, why = self._db_override
            else:
                path, why = self.settings.db_path, "set with %config AgentMagics.db_path"
            self._location = locate_db(path or None, reason=why, user_ns=self.user_ns)
        return self._location

    @property
    def agent(self) -> Agent:
        if self._agent is None:
            location = self.location
            try:
                db = open_db(location.path)
            except (NbSessionsError, OSError) as exc:
                raise UsageError(f"cannot open {location.path}: {exc}") from None
            self._agent = Agent(db=db, add_history_to_context=True, num_history_runs=self.settings.history,
                                name="notebook")
        return self._agent

    def switch_db(self, path: str | None, why: str = "set with %agent db") -> DbLocation:
        """Use another file from now on (``None``: back to the configured/default one)."""
        self.close()
        self._db_override = (path, why) if path else None
        return self.location

    def close(self) -> None:
        if self._agent is not None:
            self._agent.db.close()
        self._agent = None
        self._location = None

    # -- users and sessions -----------------------------------------------------------------------
    @property
    def user(self) -> str | None:
        return self.settings.user or None

    def sessions(self) -> list[Session]:
        return self.agent.get_sessions(user_id=self.user)

    def active_session(self) -> Session | None:
        """The session new cells continue, if it still exists and belongs to the current user."""
        sid = self.agent.active_session_id
        session = self.agent.db.get_session(sid) if sid else None
        if session is None or (self.user is not None and session.user_id != self.user):
            return None
        return session

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
        by_name = [s for s in sessions if s.session_name == text]
        for matches in ([s for s in sessions if s.session_id == text],
                        by_name[:1] if by_name and not unique else by_name,
                        [s for s in sessions if s.session_id.startswith(text)]):
            if len(matches) == 1:
                return matches[0]
            if len(matches) > 1:
                ids = ", ".join(s.session_id[:8] for s in matches[:5])
                raise UsageError(f"{text!r} matches {len(matches)} sessions ({ids}): give more of the id")
        raise UsageError(f"no session {text!r} in {self.location.path.name}: see %agent sessions")

    def new_session(self, name: str | None = None, user: str | None = None) -> Session:
        """Create a session for this notebook and make it the active one."""
        notebook = self.location.notebook
        session = self.agent.create_session(name or None, user_id=user if user is not None else self.user,
                                            notebook=str(notebook) if notebook else None)
        self.agent.set_active_session(session.session_id)
        return session

    # -- models -----------------------------------------------------------------------------------
    def model_choice(self, flag: str | None = None) -> tuple[str, str]:
        """The model name and where it came from: ``-m`` > ``%config`` > ``NBSESSIONS_MODEL`` > key > offline."""
        if flag:
            return flag, "-m"
        if self.settings.model:
            return self.settings.model, "%config AgentMagics.model"
        if os.environ.get("NBSESSIONS_MODEL"):
            return os.environ["NBSESSIONS_MODEL"], "NBSESSIONS_MODEL"
        if self.settings.base_url:
            raise UsageError("AgentMagics.base_url is set but no model is named: use -m MODEL or "
                             "%config AgentMagics.model = '<model>'")
        if os.environ.get("OPENAI_API_KEY"):
            return DEFAULT_OPENAI_MODEL, "OPENAI_API_KEY is set"
        return OFFLINE, "fallback"

    def register_model(self, name: str, model: Model) -> None:
        """Make a ``Model`` object (a ``FunctionModel``, a configured ``OpenAIChat``…) usable as ``-m name``."""
        self._named[name] = model

    def model(self, name: str) -> Model:
        """A model object for ``name`` (cached per name, base_url and API); bad names are a ``UsageError``."""
        name = name.strip()
        if name in self._named:
            return self._named[name]
        if not _MODEL_ID.fullmatch(name):
            raise UsageError(f"unknown model id {name!r}: use a model name such as 'gpt-5.2', 'llama3.2' "
                             "or 'offline'")
        api = self.settings.api
        key = (name, self.settings.base_url, api)
        if key not in self._models:
            from nbsessions.llm.resolve import model_from_name

            try:
                self._models[key] = model_from_name(name, base_url=self.settings.base_url or None,
                                                    api=None if api == "auto" else api)
            except (ValueError, NbSessionsError) as exc:
                raise UsageError(str(exc)) from None
        return self._models[key]

    def announce(self, source: str) -> None:
        """Say once per kernel that replies are offline, and how to change that."""
        if source == "fallback" and not self._offline_announced:
            self._offline_announced = True
            print(OFFLINE_NOTICE)

    # -- running a cell ---------------------------------------------------------------------------
    def run_cell(self, opts: CellOptions, body: str) -> RunOutput:
        """Validate everything, then run the prompt with its reply streaming into the cell."""
        prompt = body.strip("\n").rstrip()
        if not prompt.strip():
            raise UsageError("the cell has no prompt: write it on the lines below %%agent")
        if opts.output is not None and not opts.output.isidentifier():
            raise UsageError(f"-o needs a variable name, not {opts.output!r}")
        name, source = self.model_choice(opts.model)
        model = self.model(name)
        state = parse_state(opts.state) if opts.state is not None else None
        user = opts.user or self.user
        session = None
        if opts.new is None:
            session = self.find_session(opts.session, user) if opts.session else self.active_session()
        try:
            prompt = fill_prompt(prompt, self.user_ns, {**(session.session_state if session else {}),
                                                        **(state or {})})
        except TemplateError as exc:
            raise UsageError(str(exc)) from None
        if session is not None and user is not None and session.user_id != user:
            raise UsageError(f"session {session_label(session)} belongs to another user: "
                             "add --new, or pick one of yours with -s")
        if session is None:
            session = self.new_session(opts.new, user)
        if opts.model is None:
            self.agent.model = model
        self.announce(source)
        return self._run(opts, prompt, model, session, user, state)

    def _run(self, opts: CellOptions, prompt: str, model: Model, session: Session, user: str | None,
             state: dict[str, Any] | None) -> RunOutput:
        history = self.settings.history if opts.history is None else opts.history
        try:
            stream = self.agent.run(
                prompt, session_id=session.session_id, user_id=user, session_state=state, stream=True,
                add_history_to_context=history > 0, num_history_runs=history, instructions=opts.system,
                model=model, cell_id=self.cell_id, execution_count=self.execution_count)
        except (SessionAccessError, ValueError) as exc:
            raise UsageError(str(exc)) from None
        live = self.settings.stream if opts.stream is None else opts.stream
        try:
            return show_run(stream, session_label(session), waiting=f"{model.id} · {session_label(session)}",
                            live=live, interval=self.settings.update_interval)
        finally:
            if opts.output:
                self.user_ns[opts.output] = stream.run
