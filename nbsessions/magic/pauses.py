"""A paused run in a notebook: what it waits for, the command that continues it, and checking the answer.

A run pauses when the model calls a tool marked ``requires_confirmation``, ``requires_user_input`` or
``external_execution``. The cell then shows a notice instead of a traceback, with the exact ``%agent continue``
line to type. Everything in the notice that the model wrote (tool arguments, call ids) is escaped.

Answers are checked against what the run waits for before ``Agent.continue_run`` is called, so a wrong or
missing answer is one red line and no tool has run yet.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from typing import Any

from IPython.core.error import UsageError
from IPython.display import DisplayHandle, display

from nbsessions import theme
from nbsessions.errors import NbSessionsError
from nbsessions.render import reply_bundle
from nbsessions.requirement import RunRequirement
from nbsessions.schema import RunOutput, RunStatus

Bundle = dict[str, str]
WAITS_FOR = {"confirmation": "needs your approval", "user_input": "needs your input",
             "external_execution": "is run by you: pass its result"}


def pending(run: RunOutput) -> list[RunRequirement]:
    """The tool calls the run still waits for."""
    return [r for r in run.requirements if not r.resolved]


def _keys(waiting: list[RunRequirement], kind: str) -> dict[str, str]:
    """How a flag names each waiting call of ``kind``: by tool name when that is unambiguous, else by call id."""
    calls = [r for r in waiting if r.kind == kind]
    names = [r.tool_name for r in calls]
    return {r.tool_call_id: r.tool_name if names.count(r.tool_name) == 1 else r.tool_call_id
            for r in calls}


def continue_command(run: RunOutput) -> str:
    """The ``%agent continue`` line that answers everything the run waits for (``...`` marks what to fill)."""
    waiting = pending(run)
    parts = ["%agent continue", run.run_id[:8]]
    if any(r.kind == "confirmation" for r in waiting):
        parts.append("--approve")
    asking = [r for r in waiting if r.kind == "user_input"]
    if asking:
        keys = _keys(waiting, "user_input")
        fields = [dict.fromkeys(r.field_names, "...") for r in asking]
        example = fields[0] if len(asking) == 1 else {keys[r.tool_call_id]: f for r, f in zip(asking, fields,
                                                                                                  strict=True)}
        parts.append("--input '" + json.dumps(example, ensure_ascii=False) + "'")
    keys = _keys(waiting, "external_execution")
    if keys:
        parts.append("--results '" + json.dumps(dict.fromkeys(keys.values(), "..."), ensure_ascii=False) + "'")
    return " ".join(parts)


def notice_bundle(run: RunOutput) -> Bundle:
    """The paused notice: each waiting tool call (name, kind, fields, arguments) and how to continue."""
    waiting = pending(run)
    command = continue_command(run)
    reject = " (or --reject)" if any(r.kind == "confirmation" for r in waiting) else ""
    plain = [f"run {run.run_id[:8]} is paused: {len(waiting)} tool call(s) wait for you"]
    items = []
    for r in waiting:
        what = WAITS_FOR.get(r.kind, r.kind)
        fields = f" for: {', '.join(r.field_names)}" if r.field_names else ""
        args = json.dumps(r.tool_execution.tool_args, indent=2, ensure_ascii=False)
        plain += [f"- {r.tool_name} ({r.kind}) {what}{fields}; call {r.tool_call_id}",
                  *(f"    {line}" for line in args.splitlines())]
        items.append(f"<li><code>{html.escape(r.tool_name)}</code> · {html.escape(r.kind)} · "
                     f"{html.escape(what + fields)} <span style=\"opacity:.7\">(call "
                     f"{html.escape(r.tool_call_id)})</span><pre style=\"margin:2px 0\">"
                     f"{html.escape(args)}</pre></li>")
    plain.append(f"to continue: {command}{reject}")
    body = (f'<div class="nbsessions-paused" style="border-left:3px solid {theme.WARN};padding:2px 8px">'
            f"<b>run {html.escape(run.run_id[:8])} is paused</b>: {len(waiting)} tool call(s) wait for you"
            f'<ul style="margin:4px 0">{"".join(items)}</ul>'
            f"to continue: <code>{html.escape(command)}</code>{html.escape(reject)}</div>")
    return {"text/html": body, "text/plain": "\n".join(plain)}


def answers(run: RunOutput, approve: bool | None, user_input: dict[str, Any] | None,
            results: dict[str, Any] | None) -> dict[str, Any]:
    """``continue_run`` keyword arguments from the user's flags, or a ``UsageError`` saying what is missing."""
    waiting = pending(run)
    short = run.run_id[:8]
    confirm = [r.tool_name for r in waiting if r.kind == "confirmation"]
    if confirm and approve is None:
        raise UsageError(f"run {short} waits for your approval of {', '.join(confirm)}: add --approve or --reject")
    if approve is not None and not confirm:
        raise UsageError(f"run {short} asks for no approval: drop --approve/--reject ({continue_command(run)})")
    return {"approve": approve, "user_input": _inputs(run, waiting, user_input),
            "results": _results(run, waiting, results)}


def _by_call(run: RunOutput, waiting: list[RunRequirement], given: dict[str, Any], kind: str,
             flag: str) -> dict[str, Any]:
    """``given`` keyed by tool name or call id → keyed by call id; a missing or unknown key is a ``UsageError``."""
    keys = _keys(waiting, kind)
    out: dict[str, Any] = {}
    for call_id, key in keys.items():
        found = [k for k in (call_id, key) if k in given]
        if not found:
            name = next(r.tool_name for r in waiting if r.tool_call_id == call_id)
            raise UsageError(f"{name} (call {call_id}) waits for {flag}: {continue_command(run)}")
        out[call_id] = given[found[0]]
    unknown = sorted(set(given) - set(keys) - set(keys.values()))
    if unknown:
        raise UsageError(f"{flag} names {', '.join(map(repr, unknown))}, which run {run.run_id[:8]} does not wait "
                         f"for: {continue_command(run)}")
    return out


def _inputs(run: RunOutput, waiting: list[RunRequirement], given: dict[str, Any] | None) -> dict[str, Any] | None:
    """Fields per waiting call id: a flat object when one tool asks, else one object per tool."""
    asking = [r for r in waiting if r.kind == "user_input"]
    if not asking:
        if given is not None:
            raise UsageError(f"run {run.run_id[:8]} asks for no input: drop --input ({continue_command(run)})")
        return None
    given = dict(given or {})
    if len(asking) == 1:
        call_id = asking[0].tool_call_id
        names = {call_id, _keys(waiting, "user_input")[call_id]}
        keyed = bool(given) and set(given) <= names and all(isinstance(v, dict) for v in given.values())
        given = given if keyed else {call_id: given}
    per_call = _by_call(run, waiting, given, "user_input", "--input")
    for r in asking:
        fields = per_call[r.tool_call_id]
        if not isinstance(fields, dict):
            raise UsageError(f"--input for {r.tool_name} must be an object of fields: {continue_command(run)}")
        missing = [f for f in r.field_names if f not in fields]
        if missing:
            raise UsageError(f"{r.tool_name} needs --input with {', '.join(missing)}: {continue_command(run)}")
    return per_call


def _results(run: RunOutput, waiting: list[RunRequirement], given: dict[str, Any] | None) -> dict[str, str] | None:
    if not any(r.kind == "external_execution" for r in waiting):
        if given is not None:
            raise UsageError(f"run {run.run_id[:8]} waits for no tool results: drop --results "
                             f"({continue_command(run)})")
        return None
    per_call = _by_call(run, waiting, dict(given or {}), "external_execution", "--results")
    return {call_id: value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
            for call_id, value in per_call.items()}


Answer = Callable[[str, str, dict[str, Any]], RunOutput]  # (run id, session id, answers) -> the run as it ends


class PausedNotices:
    """The paused notices this kernel showed, kept current: a run continued elsewhere (the panel, another cell)
    replaces its notice with the finished reply, so no cell keeps saying "paused" about a run that is done.

    With ``answer``, each notice has Approve / Reject (or Continue) and a box per requested field with it, the
    panel's controls (``PausedRun``), above it: a click continues the run in place through ``answer``, and the notice
    turns into the reply (or the next question) as when the panel continues it. The typed ``%agent continue``
    line stays the alternative. Nothing the model wrote reaches these widgets but as text."""

    def __init__(self, lookup: Callable[[str, str], RunOutput | None], answer: Answer | None = None) -> None:
        self._lookup, self._answer = lookup, answer
        self._shown: dict[str, tuple[DisplayHandle, str]] = {}  # run id -> (its notice, the session label)
        self._sessions: dict[str, str] = {}  # run id -> its session
        self._controls: dict[str, tuple[DisplayHandle, Any]] = {}  # run id -> (its controls' output, the card)

    def show(self, run: RunOutput, label: str) -> None:
        """The controls first, then the notice: the cell's last output stays the notice (and then the reply)."""
        if self._answer is not None:
            card = self._card(run)
            self._controls[run.run_id] = (display(card, display_id=True), card)
        self._shown[run.run_id] = (display(notice_bundle(run), raw=True, display_id=True), label)
        self._sessions[run.run_id] = run.session_id

    def _card(self, run: RunOutput) -> Any:
        from nbsessions.panel.paused_run import PausedRun  # ipywidgets loads only when a run pauses

        return PausedRun(run, 0, self._clicked, controls_only=True)

    def _clicked(self, card: Any, approve: bool | None) -> None:
        """Approve / Reject / Continue under a notice: check the answers, continue, show what came of it."""
        try:
            user_input, results = card.answers()
        except ValueError as exc:
            card.message.value = str(exc)
            return
        for button in card.buttons:
            button.disabled = True
        card.message.value = "continuing: the model is answering…"
        try:
            given = {"approve": approve, "user_input": user_input or None, "results": results or None}
            run = self._answer(card.run_id, self._sessions.get(card.run_id, ""), given)
        except (NbSessionsError, ValueError, UsageError) as exc:
            card.message.value = str(exc)
            for button in card.buttons:
                button.disabled = False
            return
        self._done(card.run_id, run)

    def _done(self, run_id: str, run: RunOutput) -> None:
        """The controls go; a run that paused again gets its new question and controls in the same place."""
        handle, card = self._controls.pop(run_id, (None, None))
        if run.status == RunStatus.paused and run_id in self._shown:
            notice, _label = self._shown[run_id]
            notice.update(notice_bundle(run), raw=True)
            if handle is not None:
                fresh = self._card(run)
                handle.update(fresh)
                self._controls[run_id] = (handle, fresh)
        elif handle is not None:
            handle.update({"text/plain": ""}, raw=True)
        if card is not None:
            from nbsessions.panel.widget_tree import close_tree

            close_tree(card)

    def on_event(self, event: str, session_id: str) -> None:
        """An Agent listener: after a run event, refresh the notices of runs that are no longer paused."""
        if event != "run" or not self._shown:
            return
        for run_id, (handle, label) in list(self._shown.items()):
            if session_id != self._sessions.get(run_id):
                continue
            try:
                run = self._lookup(run_id, session_id)
            except NbSessionsError:  # the notebook now acts as another user: that notice is not ours to change
                continue
            if run is None or run.status in (RunStatus.paused, RunStatus.running):
                continue
            del self._shown[run_id], self._sessions[run_id]
            handle.update(reply_bundle(run, label), raw=True)
            if run_id in self._controls:  # answered elsewhere (the panel, %agent continue): no buttons left
                self._done(run_id, run)
