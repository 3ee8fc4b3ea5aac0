"""The ``%agent`` subcommands: list, switch, name, inspect and export the notebook's sessions.

Each command takes the ``NotebookAgent`` and the rest of the line. Names and JSON are taken from the raw rest of
the line (so ``%agent rename my analysis`` and ``%agent state {"a": 1}`` need no quoting); commands with flags
parse with IPython's ``MagicArgumentParser``, whose errors are one-line ``UsageError``s. Commands about runs
(continue, regenerate, variants, keep, summary, tools) live in ``commands_runs``.
"""

from __future__ import annotations

import html
import json
import re
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic_arguments import MagicArgumentParser
from IPython.display import display

from nbsessions.magic.cellopts import parse_state, split_args
from nbsessions.magic.nested import history_view
from nbsessions.magic.notebook import NotebookAgent
from nbsessions.presentation.export import FORMATS, SESSION_ONLY, write_private
from nbsessions.presentation.render import format_cost, format_in_out
from nbsessions.records.errors import NbSessionsError
from nbsessions.records.formatting import counted, tokens, when
from nbsessions.records.formatting import seconds as _seconds
from nbsessions.records.schema import RunOutput, RunStatus
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
    """``%agent db``: which store and why; ``%agent db PATH|postgresql://...``: use another one from now on."""
    path = one_word(rest, "%agent db PATH")
    if path:
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


# -- inspecting the active session -------------------------------------------------------------------
_HISTORY = MagicArgumentParser(prog="%agent history")
_HISTORY.add_argument("n", nargs="?", type=int, default=HISTORY_DEFAULT, help="how many runs (newest)")


@command("history")
def history(nb: NotebookAgent, rest: str) -> None:
    """The newest N runs of the active session — errors, cancelled and superseded ones included — with the
    member runs of a team run and the steps of a workflow run under it (never listed as runs of their own)."""
    n = parse_rest(_HISTORY, rest).n
    if n < 1:
        raise UsageError(f"%agent history N needs 1 or more runs, not {n}")
    session = nb.require_active()
    runs = nb.agent.get_runs(session.session_id)
    if not runs:
        print(f"session {session.label_with_id} has no runs yet")
        return
    show_html(*history_view(runs, session.label_with_id, n))


@command("state")
def state(nb: NotebookAgent, rest: str) -> None:
    """``%agent state``: show the session state; ``%agent state {"k": 1}``: merge keys into it."""
    if not rest:
        session = nb.require_active()
        print(json.dumps(session.session_state, indent=2, ensure_ascii=False, sort_keys=True))
        return
    patch = parse_state(unquote(rest))
    session = nb.active_session() or nb.new_session()
    merged = nb.agent.update_session_state(patch, session.session_id)
    print(json.dumps(merged, indent=2, ensure_ascii=False, sort_keys=True))


@command("metrics")
def metrics(nb: NotebookAgent, rest: str) -> None:
    """Tokens, latency and cost of the active session, summed over its completed runs."""
    no_words(rest, "%agent metrics")
    session = nb.require_active()
    runs = [r for r in nb.agent.get_runs(session.session_id) if r.parent_run_id is None]  # members: in theirs
    m = nb.agent.get_session_metrics(session.session_id)
    done = sum(1 for r in runs if r.status == RunStatus.completed)
    est = m.tokens_estimated
    print(f"session {session.label_with_id}: {counted(len(runs), 'run')}, {done} completed\n"
          f"tokens: {tokens(m.input_tokens, est)} in / {tokens(m.output_tokens, est)} out / "
          f"{tokens(m.total_tokens, est)} total (cached {tokens(m.cached_tokens)}, "
          f"reasoning {tokens(m.reasoning_tokens)})"
          f"{' — ~ estimated: the server sent no usage' if est else ''}\n"
          f"time to first token (mean): {_seconds(m.time_to_first_token)} · duration (sum): "
          f"{_seconds(m.duration)} · {format_cost(m.cost)}")


_EXPORT = MagicArgumentParser(prog="%agent export")
_EXPORT.add_argument("format", choices=FORMATS)
_EXPORT.add_argument("path", nargs="?", help="file to write (default: beside the database)")
_EXPORT.add_argument("--result", metavar="VAR", help="export this Comparison or BatchResult instead of the session")


def _default_path(nb: NotebookAgent, what: str, fmt: str) -> Path:
    """Beside the database; ``what`` (a session id or variable name, which may hold ``/``) made a safe name."""
    safe = re.sub(r"[^\w.-]", "_", what).lstrip(".") or "export"
    return nb.location.path.with_name(f"{nb.location.path.name.split('.')[0]}-{safe}.{fmt}")


def _write(target: Path, text: str) -> None:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        write_private(target, text)
    except (FileExistsError, NotADirectoryError):
        raise UsageError(f"cannot write {target}: a part of its folder is a file, not a folder") from None
    except OSError as exc:
        raise UsageError(f"cannot write {target}: {exc.strerror or exc}") from None
    except NbSessionsError as exc:  # a directory in the way, a full disk: the message names the path
        raise UsageError(str(exc)) from None


@command("export")
def export(nb: NotebookAgent, rest: str) -> None:
    """``%agent export md|json|csv|ipynb [PATH]``: the active session as a transcript, JSON records, a CSV of runs
    or a notebook with one ``%%agent`` cell per run (replies saved as outputs).

    ``--result VAR`` exports a ``Comparison`` or ``BatchResult`` from the notebook instead. Exports hold stored
    records only: never an API key.
    """
    from nbsessions.explore import BatchResult, Comparison, export_result, export_session  # on use, not at load

    args = parse_rest(_EXPORT, rest)
    path = Path(args.path).expanduser().resolve() if args.path else None
    if args.result is not None:
        if args.format in SESSION_ONLY:
            raise UsageError(f"{args.format} exports a session: export --result as md, json or csv")
        result = nb.variable(args.result, "--result")
        if not isinstance(result, Comparison | BatchResult):
            raise UsageError(f"--result {args.result} is a {type(result).__name__}: give the Comparison or "
                             "BatchResult that %%agent --compare/--over -o VAR stored")
        target = path or _default_path(nb, args.result, args.format)
        _write(target, export_result(result, args.format))
        print(f"exported {args.result} ({len(result)} {'cells' if isinstance(result, Comparison) else 'rows'}) "
              f"to {target}")
        return
    session = nb.require_active()
    text = export_session(nb.agent, session.session_id, args.format)
    runs = run_count(nb, session.session_id)
    target = path or _default_path(nb, session.session_id[:8], args.format)
    _write(target, text)
    print(f"exported {session.label_with_id} ({runs}) to {target}")
