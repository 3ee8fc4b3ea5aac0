"""``%agent context``: exactly what a run sent to its model, or what the next cell would send (a dry run).

Registered in the same ``COMMANDS`` table as the other subcommands (importing this module is enough). The view is
``render_context``'s: every string escaped, so model text in history stays inert.
"""

from __future__ import annotations

from IPython.core.error import UsageError
from IPython.core.magic_arguments import MagicArgumentParser

from nbsessions.magic.cellopts import CellOptions, check_flag_count
from nbsessions.magic.commands import command, find_run, parse_rest, show_html
from nbsessions.magic.notebook import NotebookAgent
from nbsessions.presentation.render_context import context_html, context_text, run_numbers
from nbsessions.records.errors import NbSessionsError
from nbsessions.runs.core.inspect_context import SentContext

_CONTEXT = MagicArgumentParser(prog="%agent context", description="what a run sent; --next PROMPT: what the "
                               "next cell would send, without sending anything")
_CONTEXT.add_argument("run", nargs="?", help="id prefix of a run of the active session (default: the newest)")
_CONTEXT.add_argument("-s", "--session", metavar="SESSION", help="another session (name or id prefix)")
_CONTEXT.add_argument("-m", "--model", metavar="MODEL", help="with --next: the model the cell would use")
_CONTEXT.add_argument("--history", type=int, metavar="N", help="with --next: send the newest N runs as history")
_CONTEXT.add_argument("--no-history", action="store_true", help="with --next: no history")
_CONTEXT.add_argument("--system", metavar="TEXT", help="with --next: system instructions")
NEXT = "--next"


@command("context")
def context(nb: NotebookAgent, rest: str) -> None:
    """``%agent context [RUN]``: the messages a run sent, with the run each history message came from and
    tokens per message; ``%agent context [-s S] [-m M] [--history N] --next [PROMPT]``: the same for the next
    cell, a dry run (``{expr}`` filled as in a cell; nothing is sent or stored)."""
    flags, found, prompt = _split_next(rest)
    args = parse_rest(_CONTEXT, flags)
    check_flag_count(args.history, "--history", 0, "runs")
    if args.no_history and args.history is not None:
        raise UsageError("use either --history N or --no-history, not both")
    if found:
        if args.run is not None:
            raise UsageError(f"--next previews the next run: drop {args.run!r}, or drop --next to see that run")
        sent, runs = _preview(nb, args, prompt)
    else:
        for flag, value in (("-m", args.model), ("--history", args.history), ("--system", args.system)):
            if value is not None:
                raise UsageError(f"{flag} is for --next: a stored run's context is what it was")
        sent, runs = _stored(nb, args)
    labels = run_numbers(runs)
    show_html(context_text(sent, labels), context_html(sent, labels))


def _split_next(rest: str) -> tuple[str, bool, str]:
    """Flags before ``--next``, whether it was given, and the prompt after it (taken as written)."""
    words = rest.split(NEXT, 1)
    if len(words) == 1:
        return rest, False, ""
    return words[0], True, words[1].strip()


def _stored(nb: NotebookAgent, args) -> tuple[SentContext, list]:
    session = nb.find_session(args.session) if args.session else nb.require_active()
    runs = nb.agent.get_runs(session.session_id)
    top = [r for r in runs if not r.parent_run_id]
    if args.run:
        run = find_run(runs, args.run)
    elif top:
        run = top[-1]
    else:
        raise UsageError("this session has no runs yet: %agent context --next PROMPT shows what a cell would send")
    return nb.agent.get_run_context(run.run_id), runs


def _preview(nb: NotebookAgent, args, prompt: str) -> tuple[SentContext, list]:
    opts = CellOptions(session=args.session, model=args.model, system=args.system,
                       history=0 if args.no_history else args.history)
    ready = nb.prepare(opts, prompt or "…")  # the cell's checks and {expr} filling; writes nothing
    session = ready.session
    try:
        sent = nb.agent.preview_context(
            ready.prompt if prompt else "", session.session_id if session else None, user_id=ready.user,
            model=ready.model, instructions=opts.system, **nb.history_settings(opts))
    except (NbSessionsError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    return sent, nb.agent.get_runs(session.session_id) if session else []
