"""``%agent`` subcommands that read the active session: history, state, metrics and export.

Registered in the same ``COMMANDS`` table as the session commands (importing this module is enough).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from IPython.core.error import UsageError
from IPython.core.magic_arguments import MagicArgumentParser

from nbsessions.magic.cellopts import parse_state
from nbsessions.magic.commands import HISTORY_DEFAULT, command, no_words, parse_rest, run_count, show_html, unquote
from nbsessions.magic.nested import history_view
from nbsessions.magic.notebook import NotebookAgent
from nbsessions.presentation.export import FORMATS, SESSION_ONLY, write_private
from nbsessions.presentation.render import format_cost
from nbsessions.records.errors import NbSessionsError
from nbsessions.records.formatting import counted, tokens
from nbsessions.records.formatting import seconds as _seconds
from nbsessions.records.schema import RunStatus

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
