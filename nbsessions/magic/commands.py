"""The ``%agent`` subcommands: list, switch, name, inspect and export the notebook's sessions.

Each command takes the ``NotebookAgent`` and the rest of the line. Names and JSON are taken from the raw rest of
the line (so ``%agent rename my analysis`` and ``%agent state {"a": 1}`` need no quoting); commands with flags
parse with IPython's ``MagicArgumentParser``, whose errors are one-line ``UsageError``s. Commands about runs
(continue, regenerate, variants, keep, summary, tools) live in ``commands_runs``; history, state, metrics
and export in ``commands_inspect``.
"""

from __future__ import annotations

import html
import shlex
from collections.abc import Callable
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic_arguments import MagicArgumentParser
from IPython.display import display

from nbsessions.magic.cellopts import split_args
from nbsessions.magic.notebook import NotebookAgent
from nbsessions.presentation.render import format_cost, format_in_out
from nbsessions.records.formatting import counted, when
from nbsessions.records.schema import RunOutput
from nbsessions.runs.listing import group_experiments

Command = Callable[[NotebookAgent, str], Any]
COMMANDS: dict[str, Command] = {}
HISTORY_DEFAULT = 10


def command(name: str) -> Callable[[Command], Command]:
    def register(fn: Command) -> Command:
        COMMANDS[name] = fn
        return fn

    return register


def unquote(text: str) -> str:
    """``"my name"`` → ``my name``: IPython's argument splitter keeps the quotes it split on."""
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def one_word(rest: str, usage: str) -> str:
    """The one argument of a command that takes a path, a model or a run id ("" for none): quoted when it holds
    spaces (``%agent db "my dir/s.json"``); a second word is refused, never glued onto the first."""
    try:
        words = shlex.split(rest)
    except ValueError as exc:  # an unclosed quote
        raise UsageError(f"{usage}: {str(exc).lower()} in {rest!r}") from None
    if len(words) > 1:
        raise UsageError(f"{usage} takes one argument, not {len(words)} ({rest!r}): quote one that holds spaces")
    return words[0] if words else ""


def no_words(rest: str, usage: str) -> None:
    """Refuse what a command without arguments was given, rather than ignore it."""
    if rest:
        raise UsageError(f"{usage} takes no argument, not {rest!r}")


def parse_rest(parser: MagicArgumentParser, rest: str) -> Any:
    return parser.parse_args([unquote(token) for token in split_args(rest)])


def run_command(nb: NotebookAgent, line: str) -> Any:
    """Dispatch ``%agent LINE``; a bare ``%agent`` shows the status."""
    name, _, rest = line.strip().partition(" ")
    if not name:
        return status(nb)
    if name not in COMMANDS:
        raise UsageError(f"unknown %agent subcommand {name!r}: use one of {', '.join(COMMANDS)} "
                         "(prompts go in a %%agent cell)")
    return COMMANDS[name](nb, rest.strip())


def run_count(nb: NotebookAgent, session_id: str) -> str:
    """``1 run``, ``3 runs``: the session's top-level runs, as History numbers them (a team's member runs and a
    workflow's step runs are inside theirs, not counted again)."""
    return counted(nb.agent.get_session_totals(session_id)[0], "run")


def show_html(text: str, html_text: str) -> None:
    display({"text/plain": text, "text/html": html_text}, raw=True)


# -- where am I ------------------------------------------------------------------------------------
def status(nb: NotebookAgent) -> None:
    location = nb.location
    session = nb.active_session()
    try:
        name, source = nb.model_choice()
        model = f"{name} ({'no model configured and no OPENAI_API_KEY' if source == 'fallback' else source})"
    except UsageError as exc:
        model = f"not set: {exc}"
    runs = run_count(nb, session.session_id) if session else ""
    tools = ", ".join(nb.agent.tools) or "(none: %agent tools NAME)"
    summaries = f"every {nb.settings.summaries} runs" if nb.settings.summaries else "off"
    registered = ", ".join(f"{e.name} ({e.kind})" for e in nb.registry) or "(none: %agent register NAME VAR)"
    rows = [("database", location.label), ("  why", location.reason),
            ("session", f"{session.label_with_id}, {runs}" if session else "none yet"), ("model", model),
            ("server", nb.server_line()), ("user", nb.user or "(none)"), ("tools", tools),
            ("summaries", summaries), ("registered", registered),
            ("subcommands", ", ".join(COMMANDS))]
    width = max(len(label) for label, _ in rows) + 1
    print("\n".join(f"{label + ':':<{width}} {value}" for label, value in rows))


@command("db")
def db(nb: NotebookAgent, rest: str) -> None:
    """``%agent db``: which store and why; ``%agent db PATH|postgresql://...``: use another one from now on;
    ``%agent db --default``: back to the notebook's own (or the configured) one."""
    path = one_word(rest, "%agent db PATH")
    if path == "--default":
        nb.switch_db(None)
    elif path:
        nb.switch_db(path)
        count = len(nb.agent.get_sessions(user_id=nb.user if nb.location.url else None))
        print(f"database: {nb.location.label} ({count} sessions{f' of {nb.user}' if nb.location.url else ''})")
        return
    print(f"database: {nb.location.label}\n  why: {nb.location.reason}")


@command("user")
def user(nb: NotebookAgent, rest: str) -> None:
    """``%agent user NAME`` (``--clear`` for none): sessions are then listed and written for that user only."""
    if not rest:
        print(f"user: {nb.user or '(none)'}")
        return
    if rest.startswith("-") and rest != "--clear":
        raise UsageError(f"%agent user takes a name or --clear, not {rest!r}")
    if rest != "--clear" and not unquote(rest).strip():
        raise UsageError("%agent user needs a name (or --clear for no user)")
    nb.settings.user = "" if rest == "--clear" else unquote(rest)  # the Agent acts as this user from now on
    session = nb.active_session()
    if session is None and nb.agent.active_session_id is not None:  # the active one is another user's
        mine = nb.sessions()
        nb.agent.set_active_session(mine[0].session_id if mine else None)
        session = mine[0] if mine else None
    where = f"active session: {session.label_with_id}" if session else "the next %%agent cell starts a session"
    if nb.panel is not None and hasattr(nb.panel, "refresh"):
        nb.panel.refresh()  # the panel shows the new user's sessions only
    print(f"user: {nb.user or '(none)'}; {where}")


@command("model")
def model(nb: NotebookAgent, rest: str) -> None:
    """``%agent model NAME``: the model for new cells (``-m`` still wins for one cell)."""
    if rest:
        name = one_word(rest, "%agent model NAME")
        chosen = nb.model(name)
        nb.settings.model = name
        print(f"model: {chosen!r}")
        return
    name, source = nb.model_choice()
    print(f"model: {nb.model(name)!r}, from {'the offline fallback' if source == 'fallback' else source}")


@command("panel")
def panel(nb: NotebookAgent, rest: str) -> Any:
    """The session panel widget, on the same Agent as the cells (so it updates as they run).

    The panel shown before is closed first, so re-running the cell leaves one panel listening, not many.
    """
    from nbsessions.panel import SessionPanel  # ipywidgets loads only when a panel is asked for

    no_words(rest, "%agent panel")
    nb.close_panel()
    nb.panel = SessionPanel(agent=nb.agent)
    return nb.panel


# -- sessions --------------------------------------------------------------------------------------
@command("sessions")
def sessions(nb: NotebookAgent, rest: str) -> None:
    """A table of the sessions in this notebook's database, newest first; ● marks the active one.

    ``--experiments`` also lists the sessions compare and batch made, each under the session it came from."""
    if rest not in ("", "--experiments"):
        raise UsageError(f"%agent sessions takes no argument but --experiments, not {rest!r}")
    rows, hidden = group_experiments(nb.sessions(), include=rest == "--experiments")
    note = f"{hidden} experiment session(s) hidden: %agent sessions --experiments lists them" if hidden else ""
    if not rows and note:
        print(note)
        return
    if not rows:
        unowned = nb.agent.count_unowned_sessions() if nb.user else 0
        if unowned:
            print(f"no sessions of user {nb.user!r} in {nb.location.name}; {unowned} session(s) without a "
                  "user are hidden while a user is set (%agent user --clear shows them)")
        else:
            print(f"no sessions yet in {nb.location.name}: run a %%agent cell or %agent new NAME")
        return
    active = nb.agent.active_session_id
    header = ["", "name", "id", "user", "runs", "tokens in / out", "cost", "updated"]
    table = []
    for s in rows:
        count, m = nb.agent.get_session_totals(s.session_id)
        name = ("↳ " if s.experiment else "") + (s.session_name or "")
        table.append(["●" if s.session_id == active else "", name, s.session_id[:8],
                      s.user_id or "", str(count), format_in_out(m), format_cost(m.cost),
                      when(s.updated_at)])
    cells = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in table)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in header)
    widths = [max(len(row[i]) for row in [header, *table]) for i in range(len(header))]
    plain = "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                      for row in [header, *table])
    show_html(plain + (f"\n{note}" if note else ""),
              f'<table class="nbsessions-sessions"><thead><tr>{head}</tr></thead><tbody>{cells}</tbody></table>'
              + (f'<div style="opacity:.7">{html.escape(note)}</div>' if note else ""))


@command("use")
def use(nb: NotebookAgent, rest: str) -> None:
    """``%agent use S``: new cells continue session S (by name or id prefix); remembered across restarts."""
    session = nb.find_session(unquote(rest))
    nb.agent.set_active_session(session.session_id)
    runs = run_count(nb, session.session_id)
    twins = sum(1 for s in nb.sessions() if s.session_name and s.session_name == session.session_name)
    note = f" (the newest of {twins} sessions with this name)" if twins > 1 else ""
    print(f"active session: {session.label_with_id}, {runs}{note}")


@command("new")
def new(nb: NotebookAgent, rest: str) -> None:
    session = nb.new_session(unquote(rest) or None)
    print(f"new session {session.label_with_id} is active")


@command("rename")
def rename(nb: NotebookAgent, rest: str) -> None:
    session = nb.require_active()
    if not unquote(rest):
        raise UsageError("give the new name: %agent rename NAME")
    renamed = nb.agent.set_session_name(session.session_id, session_name=unquote(rest))
    taken = "" if renamed.session_name == unquote(rest) else f" ({unquote(rest)!r} is taken by another session)"
    print(f"renamed {session.session_id[:8]} to {renamed.session_name!r}{taken}")


def find_run(runs: list[RunOutput], prefix: str) -> RunOutput:
    found = [r for r in runs if r.run_id.startswith(prefix)]
    if len(found) != 1:
        what = "no run" if not found else f"{len(found)} runs"
        raise UsageError(f"{what} in this session with an id starting {prefix!r}: see %agent history")
    return found[0]


@command("fork")
def fork(nb: NotebookAgent, rest: str) -> None:
    """``%agent fork [RUN]``: a copy of the session up to RUN (id prefix; default all), made active."""
    session = nb.require_active()
    prefix = one_word(rest, "%agent fork [RUN]")
    run_id = find_run(nb.agent.get_runs(session.session_id), prefix).run_id if prefix else None
    forked = nb.agent.fork_session(session.session_id, run_id)
    nb.agent.set_active_session(forked.session_id)
    print(f"forked {session.label_with_id} into {forked.label_with_id}, now active")


_DELETE = MagicArgumentParser(prog="%agent delete")
_DELETE.add_argument("session", nargs="+", help="name or id prefix")
_DELETE.add_argument("--yes", action="store_true", help="really delete")


@command("delete")
def delete(nb: NotebookAgent, rest: str) -> None:
    """``%agent delete S --yes``: without ``--yes`` it only says what would go."""
    args = parse_rest(_DELETE, rest)
    session = nb.find_session(" ".join(args.session), unique=True)
    runs = run_count(nb, session.session_id)
    if not args.yes:
        print(f"this would delete session {session.label_with_id} and its {runs}; nothing was deleted. "
              f"To confirm: %agent delete {session.session_id[:8]} --yes")
        return
    nb.agent.delete_session(session.session_id)
    print(f"deleted session {session.label_with_id} and its {runs}")
