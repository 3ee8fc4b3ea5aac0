"""``python -m nbsessions ls|show|export DB`` and ``copy SRC DST``: a notebook's sessions from a terminal.

``DB`` is a file or a ``postgresql://`` URL. Only ``copy`` writes, and only to its target; the other commands
never change the store (a missing or empty file is refused rather than created).
Model text is untrusted, so terminal control characters are stripped before anything is printed to a terminal;
tables use ``rich`` on a terminal when it is installed, plain text otherwise.
"""

from __future__ import annotations

import argparse
import errno
import os
import stat
import sys
from collections.abc import Sequence
from typing import TextIO

from nbsessions.db import open_store
from nbsessions.db.base import BaseDb
from nbsessions.db.journal_guard import not_a_file
from nbsessions.db.memory import InMemoryDb
from nbsessions.db.tinydb import TinyDb
from nbsessions.db.urls import is_postgres_url, mask_url
from nbsessions.presentation.render import format_cost, format_footer, format_in_out
from nbsessions.records.errors import NbSessionsError, SessionNotFoundError, StorageError, storage_warnings_as_lines
from nbsessions.records.formatting import shorten, when
from nbsessions.records.formatting import strip_control as clean
from nbsessions.records.schema import Session
from nbsessions.runs.core.context import newest_top_level
from nbsessions.runs.listing import match_session
from nbsessions.runs.sessions import ACTIVE_SESSION_KEY


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]], out: TextIO, plain: bool = False) -> None:
    """A table with ``rich`` on a terminal when it is importable (and not ``plain``), aligned plain text otherwise:
    a pipe or a file gets text that ``grep`` and ``cut`` can read."""
    rows = [[clean(c) for c in row] for row in rows]
    try:
        if plain or not (hasattr(out, "isatty") and out.isatty()):
            raise ImportError
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text
    except ImportError:
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
        for line in [list(headers), *rows]:
            out.write("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() + "\n")
        return
    table = Table(*headers)
    for row in rows:
        table.add_row(*(Text(c) for c in row))  # Text, not str: "[bold]" in a name is not rich markup
    Console(file=out, highlight=False).print(table)


def find_session(db: BaseDb, key: str, user: str | None = None) -> Session:
    """A session by full id, exact name (the newest of twins) or unique id prefix; only ``user``'s when given."""
    found = match_session(db.list_sessions(user_id=user), key)
    if found is None:
        of_user = f" of user {user!r}" if user is not None else ""
        raise SessionNotFoundError(f"no session {key!r}{of_user} in {db.path}; `ls` lists them")
    return found


def cmd_ls(db: BaseDb, args: argparse.Namespace, out: TextIO) -> None:
    active = db.get_meta(ACTIVE_SESSION_KEY)
    rows = []
    for s in db.list_sessions(user_id=args.user, limit=args.limit):
        count, m = db.session_totals(s.session_id)
        rows.append(["*" if s.session_id == active else "", s.session_id[:8], s.session_name or "", s.user_id or "",
                     str(count), when(s.updated_at), format_in_out(m, "/"),
                     format_cost(m.cost)])
    if not rows:
        out.write("no sessions\n")
        return
    print_table(["", "id", "name", "user", "runs", "updated", "tokens in/out", "cost"], rows, out, args.plain)


def cmd_show(db: BaseDb, args: argparse.Namespace, out: TextIO) -> None:
    session = find_session(db, args.session, args.user)
    runs = newest_top_level(db, session.session_id, args.last)
    count, totals = db.session_totals(session.session_id)
    head = [f"session  {session.session_id}", f"name     {session.session_name or '–'}",
            f"user     {session.user_id or '–'}", f"created  {when(session.created_at)}",
            f"runs     {count} · {format_in_out(totals, '/')} tokens · {format_cost(totals.cost)}"]
    if session.forked_from:
        head.append(f"fork of  {session.forked_from.get('session_id', '')[:8]}")
    if session.session_state:
        head.append(f"state    {session.session_state}")
    out.write(clean("\n".join(head)) + "\n")
    first = count - len(runs) + 1
    for number, run in enumerate(runs, first):
        reply = run.content if args.full else shorten(run.content or "", 500)
        prompt = run.input if args.full else shorten(run.input, 200)
        mark = " (superseded)" if run.superseded_by else ""
        out.write(clean(f"\n#{number} {when(run.created_at)}{mark}\n> {prompt}\n{reply or '(no reply)'}\n"
                        f"— {format_footer(run, session.label_with_id)}") + "\n")


def cmd_export(db: BaseDb, args: argparse.Namespace, out: TextIO) -> None:
    from nbsessions.explore.export import export_session

    session = find_session(db, args.session, args.user)
    if args.output:
        export_session(db, session.session_id, args.format, args.output)
        sys.stderr.write(f"exported {clean(session.label)} to {args.output}\n")
        return
    text = export_session(db, session.session_id, args.format)
    out.write(clean(text) if out.isatty() else text)  # a file gets the export as is
    if not text.endswith("\n"):
        out.write("\n")


def _count(text: str) -> int:
    """``-n``/``--last``: a whole number of at least 1 (``-1`` would silently select the wrong rows)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"needs 1 or more, not {value}")
    if value > sys.maxsize:
        raise argparse.ArgumentTypeError(f"is too large: at most {sys.maxsize}")
    return value


def _name(text: str) -> str:
    """``-u``/``SESSION``: something to match; an empty one would match every session or none."""
    if not text.strip():
        raise argparse.ArgumentTypeError("is empty: give a name, an id or an id prefix")
    return text


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m nbsessions", description="Inspect a notebook's sessions "
                                     "(a *.nbsessions.json file or a postgresql:// URL) without changing them, or "
                                     "copy them into another store.")
    sub = parser.add_subparsers(dest="command", required=True)
    ls = sub.add_parser("ls", help="list sessions, newest first (* marks the notebook's active one)")
    ls.add_argument("db", metavar="DB")
    ls.add_argument("-u", "--user", type=_name, help="only this user's sessions")
    ls.add_argument("-n", "--limit", type=_count, help="at most this many sessions")
    ls.add_argument("--plain", action="store_true", help="aligned plain text even when rich is installed")
    show = sub.add_parser("show", help="one session's runs: prompt, reply, footer")
    show.add_argument("db", metavar="DB")
    show.add_argument("session", metavar="SESSION", type=_name, help="id, id prefix or name")
    show.add_argument("-u", "--user", type=_name, help="only look among this user's sessions")
    show.add_argument("--last", type=_count, help="only the newest N runs")
    show.add_argument("--full", action="store_true", help="whole prompts and replies, not one line each")
    export = sub.add_parser("export", help="one session as md, json, csv or ipynb (a notebook)")
    export.add_argument("db", metavar="DB")
    export.add_argument("session", metavar="SESSION", type=_name, help="id, id prefix or name")
    export.add_argument("-u", "--user", type=_name, help="only look among this user's sessions")
    export.add_argument("-f", "--format", choices=["md", "json", "csv", "ipynb"], default="md")
    export.add_argument("-o", "--output", metavar="PATH", help="write here instead of to stdout")
    copy = sub.add_parser("copy", help="merge sessions and runs into another store (file or postgresql:// URL); "
                          "the target's newer changes are kept, and running it again changes nothing")
    copy.add_argument("db", metavar="SRC")
    copy.add_argument("target", metavar="DST", help="created when missing")
    copy.add_argument("-u", "--user", type=_name,
                      help="only this user's sessions (with --owner: after owners are given)")
    copy.add_argument("--owner", metavar="USER", help="give sessions that have no user (a notebook file's) to USER")
    copy.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def cmd_copy(db: BaseDb, args: argparse.Namespace, out: TextIO) -> None:
    from nbsessions.db.copying import copy_sessions

    with open_store(args.target) as target:
        report = copy_sessions(db, target, user_id=args.user, owner=args.owner, progress=not args.no_progress,
                               out=sys.stderr)
    out.write(f"{report} into {mask_url(str(args.target))}\n")


COMMANDS = {"ls": cmd_ls, "show": cmd_show, "export": cmd_export, "copy": cmd_copy}


def open_db(path: str) -> BaseDb:
    """Open an existing database; refuse to create one (TinyDb would create a missing or empty file)."""
    if is_postgres_url(path):
        from nbsessions.db.postgres_schema import NoSchema

        try:
            return open_store(path, read_only=True)  # creates no schema: readers write nothing
        except NoSchema:
            empty = InMemoryDb()  # nothing stored there yet: an empty store to list
            empty.path = mask_url(path)
            return empty
    if not path.strip():
        raise StorageError("the database path is empty: give a *.nbsessions.json file")
    try:
        info = os.stat(path)
    except OSError as exc:
        raise StorageError(_missing(path, exc)) from None
    if stat.S_ISDIR(info.st_mode):
        raise StorageError(f"{path} is a directory, not a database file: give the *.nbsessions.json file in it")
    if not stat.S_ISREG(info.st_mode):
        raise StorageError(not_a_file(path, info.st_mode))
    if info.st_size == 0:
        raise StorageError(f"{path} is empty: not an nbsessions database")
    return TinyDb(path, read_only=True)  # reads a file (or folder) it may not write, and creates nothing


def _missing(path: str, exc: OSError) -> str:
    """Why ``path`` cannot be looked at, saying what it is when it is there but leads nowhere."""
    if exc.errno == errno.ELOOP:
        return f"{path} is a symlink loop (links that lead back to themselves), not a database file"
    if exc.errno == errno.ENOENT and os.path.islink(path):
        return f"{path} is a symlink to {os.readlink(path)}, which does not exist"
    if exc.errno == errno.ENOENT:
        return f"{path}: no such database file"
    if exc.errno == errno.ENOTDIR:
        return f"{path}: no such database file (a part of the path is a file, not a folder)"
    return f"{path} cannot be read ({exc.strerror or exc})"


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    args = _parser().parse_args(argv)
    out = out or sys.stdout
    with storage_warnings_as_lines(lambda line: sys.stderr.write(clean(line))):  # a torn last line, say
        try:
            with open_db(args.db) as db:
                COMMANDS[args.command](db, args, out)
        except (NbSessionsError, OSError) as exc:
            sys.stderr.write(f"nbsessions: {clean(exc)}\n")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
