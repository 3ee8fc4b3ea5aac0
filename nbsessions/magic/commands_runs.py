"""``%agent`` subcommands about runs: continue a paused run, regenerate and pick variants, summaries, tools.

Registered in the same ``COMMANDS`` table as the session commands (importing this module is enough). Model text
reaches the cell only through ``render.markdown_to_html`` or ``reply_bundle``; ids and tool arguments are
escaped.
"""

from __future__ import annotations

import contextlib
import html
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic_arguments import MagicArgumentParser

from nbsessions.magic.cellopts import parse_object
from nbsessions.magic.commands import command, find_run, no_words, one_word, parse_rest, show_html
from nbsessions.magic.notebook import BACKGROUND_WAIT, NotebookAgent
from nbsessions.magic.pauses import answers
from nbsessions.presentation.render import format_footer, markdown_to_html
from nbsessions.records import theme
from nbsessions.records.errors import NbSessionsError
from nbsessions.records.schema import RunOutput, RunStatus, Session
from nbsessions.runs.core.tools import Tool, make_tool
from nbsessions.runs.summary import SUMMARY_THROUGH_KEY


def _run_of(nb: NotebookAgent, session: Session, prefix: str | None) -> RunOutput | None:
    """The run with this id prefix in the session (``None`` prefix: none chosen)."""
    return find_run(nb.agent.get_runs(session.session_id), prefix) if prefix else None


# -- human in the loop -------------------------------------------------------------------------------
_CONTINUE = MagicArgumentParser(prog="%agent continue")
_CONTINUE.add_argument("run", nargs="?", help="id prefix of the paused run (default: the newest paused one)")
_ANSWER = _CONTINUE.add_mutually_exclusive_group()
_ANSWER.add_argument("--approve", action="store_true", help="let the tool calls that need approval run")
_ANSWER.add_argument("--reject", action="store_true", help="refuse them; the model is told so")
_CONTINUE.add_argument("--input", metavar="JSON", help="values for the fields a tool asks for")
_CONTINUE.add_argument("--results", metavar="JSON",
                       help="results of tools you run yourself, by tool name (or call id)")


@command("continue")
def continue_(nb: NotebookAgent, rest: str) -> None:
    """``%agent continue [RUN] [--approve|--reject] [--input JSON] [--results JSON]``: resume a paused run.

    The rest of the reply streams into this cell, with the footer; the paused notice says which flags it needs.
    """
    args = parse_rest(_CONTINUE, rest)
    user_input = parse_object(args.input, "--input") if args.input is not None else None
    results = parse_object(args.results, "--results") if args.results is not None else None
    session = nb.require_active()
    run = _run_of(nb, session, args.run)
    if run is None:
        paused = [r for r in nb.agent.get_runs(session.session_id)
                  if r.status == RunStatus.paused and r.parent_run_id is None]  # a member's pause is its team's
        if not paused:
            raise UsageError(f"nothing is paused in session {session.label_with_id}: a run pauses when a tool "
                             "needs approval, input or an outside result")
        run = paused[-1]
    elif run.status != RunStatus.paused:
        raise UsageError(f"run {run.run_id[:8]} is {run.status.value}, not paused: nothing to continue")
    approve = True if args.approve else False if args.reject else None
    nb.continue_paused(run, session, answers(run, approve, user_input, results))


# -- regenerate and variants -------------------------------------------------------------------------
_REGENERATE = MagicArgumentParser(prog="%agent regenerate")
_REGENERATE.add_argument("run", nargs="?", help="id prefix of the run to ask again (default: the newest)")
_REGENERATE.add_argument("-m", "--model", metavar="MODEL", help="model for the new variant")


@command("regenerate")
def regenerate(nb: NotebookAgent, rest: str) -> None:
    """Ask a run's prompt again with the same context; the new variant streams here and joins the history."""
    args = parse_rest(_REGENERATE, rest)
    session = nb.require_active()
    target = _run_of(nb, session, args.run)
    # Without -m, the model that made the run answers again (the agent finds it from the run's record): the
    # notebook's default is not asked for, so a base_url with no default model still regenerates.
    model = nb.chosen_model(args.model) if args.model is not None else None
    try:
        stream = nb.agent.regenerate(session.session_id, target.run_id if target else None, model=model,
                                     stream=True)
    except (NbSessionsError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    nb.show(stream, session, model or nb.agent.model_of(stream.run))


_VARIANTS = MagicArgumentParser(prog="%agent variants")
_VARIANTS.add_argument("run", nargs="?", help="id prefix of any variant (default: the newest run)")


def _variant_cell(run: RunOutput, label: str) -> tuple[str, str, str]:
    """Heading, reply and footer of one variant: (plain, html head, html body)."""
    mark = "● in history" if run.is_history else ("superseded" if run.superseded_by else run.status.value)
    head = f"{run.run_id[:8]} · {run.model or '?'} · {mark}"
    footer = format_footer(run, label)
    body = (f'{markdown_to_html(run.content)}<div style="opacity:.7;font-size:85%">{html.escape(footer)}</div>')
    return f"── {head}\n{run.content}\n— {footer}", html.escape(head), body


@command("variants")
def variants(nb: NotebookAgent, rest: str) -> None:
    """The answers to one prompt side by side; ``●`` marks the one in history (``%agent keep RUN`` changes it)."""
    args = parse_rest(_VARIANTS, rest)
    session = nb.require_active()
    run = _run_of(nb, session, args.run)
    if run is None:
        runs = [r for r in nb.agent.get_runs(session.session_id, last=20) if r.input]
        if not runs:
            raise UsageError(f"session {session.label_with_id} has no runs yet")
        run = runs[-1]
    group = nb.agent.variants(run.run_id)
    cells = [_variant_cell(r, session.label_with_id) for r in group]
    td = f'<td style="{theme.CELL}">'
    th = f'<th style="{theme.HEADER_CELL}">'
    table = (f'<div class="nbsessions-variants"><blockquote>{markdown_to_html(run.input)}</blockquote>'
             '<table style="border-collapse:collapse"><thead><tr>'
             + "".join(f"{th}{head}</th>" for _, head, _ in cells) + "</tr></thead><tbody><tr>"
             + "".join(f"{td}{body}</td>" for _, _, body in cells) + "</tr></tbody></table>"
             f'<div style="opacity:.7">{len(group)} variant(s); keep one with %agent keep RUN</div></div>')
    show_html("\n\n".join([f"> {run.input}", *(plain for plain, _, _ in cells)]), table)


@command("keep")
def keep(nb: NotebookAgent, rest: str) -> None:
    """``%agent keep RUN``: this variant's reply is the one later cells see as history."""
    prefix = one_word(rest, "%agent keep RUN")
    if not prefix:
        raise UsageError("give the variant to keep: %agent keep RUN (ids in %agent variants)")
    session = nb.require_active()
    run = find_run(nb.agent.get_runs(session.session_id), prefix)
    try:
        nb.agent.choose_variant(run.run_id)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    others = len(nb.agent.variants(run.run_id)) - 1
    print(f"kept {run.run_id[:8]}: its reply is the one in history; {others} other variant(s) stay stored, "
          "marked superseded")


# -- summaries ---------------------------------------------------------------------------------------
@command("summary")
def summary(nb: NotebookAgent, rest: str) -> None:
    """The active session's running summary (``%config AgentMagics.summaries = N`` turns summaries on)."""
    no_words(rest, "%agent summary")
    session = nb.require_active()
    summarizer = nb.agent.summarizer
    if summarizer is not None:
        with contextlib.suppress(TimeoutError):  # a refresh still running: show the one stored so far
            summarizer.wait(timeout=BACKGROUND_WAIT)
    session = nb.agent.get_session(session.session_id)
    failed = summarizer.errors[-1] if summarizer is not None and summarizer.errors else None
    note = f"the last refresh failed: {failed}" if failed else ""
    if not session.summary:
        if summarizer is None:
            how = ("summaries are off: %config AgentMagics.summaries = 5 keeps one, refreshed every 5 completed "
                   "runs")
        else:
            how = f"the first one comes after {summarizer.every} completed runs"
        print(f"no summary yet for session {session.label_with_id}: {how}" + (f"\n{note}" if note else ""))
        return
    through = (session.metadata.get(SUMMARY_THROUGH_KEY) or {}).get("run_id", "")
    head = f"summary of {session.label_with_id}" + (f", through run {through[:8]}" if through else "")
    show_html(f"{head}\n{session.summary}" + (f"\n{note}" if note else ""),
              f'<div class="nbsessions-summary"><div style="opacity:.7">{html.escape(head)}</div>'
              f"{markdown_to_html(session.summary)}"
              + (f'<div style="color:{theme.ERROR}">{html.escape(note)}</div>' if note else "") + "</div>")


# -- tools -------------------------------------------------------------------------------------------
_TOOLS = MagicArgumentParser(prog="%agent tools")
_TOOLS.add_argument("names", nargs="*", help="functions from the notebook to give the model")
_TOOLS.add_argument("--clear", action="store_true", help="take every tool away")


def _as_tool(nb: NotebookAgent, name: str) -> tuple[Any, Tool]:
    value = nb.variable(name, "%agent tools")
    if not (callable(value) or isinstance(value, Tool)):
        raise UsageError(f"%agent tools {name}: not a function (it is {type(value).__name__})")
    try:
        described = make_tool(value)
    except Exception as exc:  # whatever describing a user function raises: say which one and why
        raise UsageError(f"%agent tools {name}: cannot describe it as a tool ({type(exc).__name__}: {exc})"
                         ) from None
    if not described.name.isidentifier():
        raise UsageError(f"%agent tools {name}: a tool needs a plain function name, not {described.name!r} "
                         "(define it with def)")
    return value, described


def _describe(tool: Tool) -> str:
    pauses = [what for flag, what in ((tool.requires_confirmation, "asks for approval"),
                                      (tool.requires_user_input, "asks for input"),
                                      (tool.external_execution, "run by you")) if flag]
    params = ", ".join(tool.parameters.get("properties", {}))
    return f"  {tool.name}({params})" + (f" [{', '.join(pauses)}]" if pauses else "") + \
        (f" — {tool.description}" if tool.description else "")


@command("tools")
def tools(nb: NotebookAgent, rest: str) -> None:
    """``%agent tools NAME …`` gives notebook functions to the model; bare, lists them; ``--clear`` removes all."""
    args = parse_rest(_TOOLS, rest)
    if args.clear and args.names:
        raise UsageError("use either %agent tools NAME ... or %agent tools --clear, not both")
    if args.clear:
        nb.tools.clear()
    found = [_as_tool(nb, name) for name in args.names]  # every name checked before any is added
    for value, described in found:
        nb.tools[described.name] = value
    nb.configure()
    listed = nb.agent.tools.values()
    if not listed:
        print("tools: none; give the model functions with %agent tools NAME [NAME ...]")
        return
    state = " (update_session_state: %config AgentMagics.agentic_state)" if nb.settings.agentic_state else ""
    print(f"tools{state}:\n" + "\n".join(_describe(t) for t in listed))

