"""One run as HTML for the History tab: its meta line, prompt, reply, and the tool calls it made.

Prompts and replies go through ``markdown_to_html`` (Markdown, then nh3); tool names, arguments and results are
shown as escaped text, never parsed, because a model chooses every byte of them. This HTML reaches the browser
as live widget markup: a ``<script>`` or ``onerror=`` in any of it must stay inert.
"""

from __future__ import annotations

import html
from typing import Any

from nbsessions.panel import formatting as fmt
from nbsessions.presentation.render import markdown_to_html
from nbsessions.records import theme
from nbsessions.records.formatting import shorten
from nbsessions.records.schema import Message, RunOutput, RunStatus, Session

RUN_STYLE = f"border-top:1px solid {theme.BORDER};padding:6px 0"
META_STYLE = "font-size:85%;opacity:.75"
PROMPT_STYLE = f"border-left:3px solid {theme.BRAND};padding-left:8px;margin:4px 0"
ERROR_STYLE = f"color:{theme.ERROR};font-size:90%"
TOOL_STYLE = f"font-size:85%;margin:2px 0;padding:2px 6px;background:{theme.BOX_BG};border-radius:3px"
NESTED_STYLE = f"border-left:2px solid {theme.BORDER};padding:2px 0 2px 8px;margin:4px 0"
SHORT = 120  # characters of arguments or result on the one-line view; the rest behind "details"
_WAITING = {"confirmation": "waiting for approval", "user_input": "waiting for input",
            "external_execution": "waiting for an external result"}


def clip(text: str, limit: int = SHORT) -> str:
    """One line of at most ``limit`` characters (the caller escapes it)."""
    return shorten(text or "", limit)


def run_meta(run: RunOutput, number: int | None, kind: str = "") -> str:
    """``#3 · team · 2 members · time · tokens · duration · model`` and badges; nested runs have no number."""
    m = run.metrics
    parts = [f"#{number}"] if number is not None else []
    parts += [kind] if kind else []
    parts += [fmt.when_precise(run.created_at), f"{fmt.tokens(m.input_tokens, m.tokens_estimated)} in / "
              f"{fmt.tokens(m.output_tokens, m.tokens_estimated)} out tokens", fmt.seconds(m.duration),
              html.escape(run.model or "?")]
    return " · ".join(parts) + fmt.run_badges(run)


def tool_calls(run: RunOutput) -> list[tuple[dict[str, Any], Message | None]]:
    """The run's own tool calls, each with its result message (None while it waits)."""
    own = [m for m in run.messages if not m.from_history]
    results = {m.tool_call_id: m for m in own if m.role == "tool" and m.tool_call_id}
    return [(call, results.get(call.get("id"))) for m in own if m.role == "assistant" and m.tool_calls
            for call in m.tool_calls]


def render_tool_call(call: dict[str, Any], result: Message | None, waiting: str | None) -> str:
    """``tool name(arguments) → result`` on one line; long arguments or results unfold below."""
    name, arguments = str(call.get("name") or "?"), str(call.get("arguments") or "")
    outcome = (result.content or "") if result is not None else None
    tail = (f" → {html.escape(clip(outcome))}" if outcome is not None
            else f" · <i>{html.escape(waiting or 'no result')}</i>")
    line = (f'<span style="opacity:.6">tool</span> <code>{html.escape(name)}</code>'
            f"(<code>{html.escape(clip(arguments))}</code>){tail}")
    if clip(arguments) == arguments and (outcome is None or clip(outcome) == outcome):
        return f'<div class="nbsessions-tool" style="{TOOL_STYLE}">{line}</div>'
    full = f"<pre>{html.escape(arguments)}</pre>" + (f"<pre>{html.escape(outcome)}</pre>" if outcome else "")
    return (f'<details class="nbsessions-tool" style="{TOOL_STYLE}"><summary>{line}</summary>'
            f'<div style="max-height:240px;overflow:auto">{full}</div></details>')


def render_tools(run: RunOutput, skip: frozenset[str] = frozenset()) -> str:
    """The run's tool calls, except those in ``skip`` (a team's calls shown as member runs instead)."""
    calls = [(call, result) for call, result in tool_calls(run) if call.get("id") not in skip]
    if not calls:
        return ""
    pending = {r.tool_call_id: _WAITING.get(r.kind, "waiting") for r in run.requirements
               if not r.resolved} if run.status == RunStatus.paused else {}
    return "".join(render_tool_call(call, result, pending.get(call.get("id"))) for call, result in calls)


def render_run(run: RunOutput, number: int | None, *, prompt: bool = True, kind: str = "", inner: str = "",
               skip: frozenset[str] = frozenset(), css: str = "nbsessions-run") -> str:
    """The run as one block; ``prompt=False`` leaves the prompt out (variants show it once above them).

    ``kind``, ``inner`` and ``skip`` are for teams and workflows (``nested_html``): a label for the header, the
    member runs or steps (already safe HTML) shown between the prompt and the reply, and the tool calls that
    ``inner`` shows in their place.
    """
    head, tail = run_parts(run, number, prompt=prompt, kind=kind, skip=skip)
    style = RUN_STYLE if number is not None else NESTED_STYLE
    return f'<div class="{css}" style="{style}">{head}{inner}{tail}</div>'


def run_parts(run: RunOutput, number: int | None, *, prompt: bool = True, kind: str = "",
              skip: frozenset[str] = frozenset()) -> tuple[str, str]:
    """What comes before a run's nested runs or steps (meta line, prompt, tool calls) and after them (reply,
    error): History puts folds that are widgets of their own between the two."""
    error = f'<div class="nbsessions-error" style="{ERROR_STYLE}">{html.escape(run.error)}</div>' if run.error else ""
    asked = render_prompt(run) if prompt else ""
    return (f'<div style="{META_STYLE}">{run_meta(run, number, kind)}</div>{asked}{render_tools(run, skip)}',
            f'<div class="nbsessions-reply">{markdown_to_html(run.content)}</div>{error}')


def render_prompt(run: RunOutput) -> str:
    return f'<div class="nbsessions-prompt" style="{PROMPT_STYLE}">{markdown_to_html(run.input)}</div>'


def render_summary(session: Session) -> str:
    if not session.summary:
        return ""
    return (f'<div class="nbsessions-summary" style="{META_STYLE}"><b>Summary</b>'
            f"{markdown_to_html(session.summary)}</div>")


def run_key(run: RunOutput, number: int) -> tuple:
    """Everything a run's block shows: a run whose key is unchanged need not be rendered again."""
    m = run.metrics
    return (number, run.run_id, run.status, run.superseded_by, run.variant_of, run.error, run.input, run.content,
            run.model, run.created_at, m.input_tokens, m.output_tokens, m.tokens_estimated, m.duration,
            len(run.messages), tuple(r.resolved for r in run.requirements))
