"""A ``SentContext`` as text and as inert HTML: ``%agent context`` and the panel's Sent view show the same.

Everything in a context is shown exactly as sent, so it is escaped, never rendered as Markdown: history holds model
text, and escaping is what keeps it inert in a trusted output. Colours come from JupyterLab's theme variables so
the view reads in light and dark themes (``theme``).
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping

from nbsessions.records import theme
from nbsessions.records.formatting import strip_control as _clean
from nbsessions.records.formatting import tokens as fmt_tokens
from nbsessions.runs.core.inspect_context import SentContext, SentMessage

_CELL = f'style="{theme.CELL}"'
_HEAD = f'style="{theme.HEADER_CELL}"'
_DIM = f'style="color:{theme.DIM};font-size:85%"'
_PRE = (f'style="white-space:pre-wrap;word-break:break-word;margin:0;padding:4px 6px;font-family:{theme.CODE_FONT};'
        f'font-size:var(--jp-code-font-size,12px);background:{theme.CODE_BG};color:{theme.CODE_TEXT}"')


def source_label(run_id: str | None, labels: Mapping[str, str]) -> str:
    """``#3 1a2b3c4d`` for a history message's run (its number in the session when known)."""
    if not run_id:
        return ""
    number = labels.get(run_id)
    return f"{number} {run_id[:8]}" if number else run_id[:8]


def headline(ctx: SentContext) -> str:
    """``sent by run 1a2b3c4d · gpt-5.2 · ~412 tokens of 400,000 (0.1%) · …`` — the one line to read first."""
    who = "next run (preview, nothing sent)" if ctx.is_preview else f"sent by run {(ctx.run_id or '')[:8]}"
    tokens = fmt_tokens(ctx.total_tokens, ctx.tokens_estimated) + " tokens"
    if ctx.context_window:
        tokens += f" of {ctx.context_window:,} ({(ctx.window_share or 0) * 100:.1f}% of the context window)"
    else:
        tokens += " (context window unknown)"
    parts = [who, ctx.model or "?", tokens]
    if ctx.tokens_estimated:
        parts.append("~ estimated")
    if ctx.reported_input_tokens is not None:
        rounds = f" over {ctx.requests} requests" if ctx.requests > 1 else ""
        reported = fmt_tokens(ctx.reported_input_tokens, ctx.reported_estimated)
        parts.append(f"provider reported {reported} input tokens{rounds}")
    return " · ".join(parts)


def _tool_line(spec: dict) -> str:
    params = ", ".join((spec.get("parameters") or {}).get("properties") or {})
    text = spec["name"] + (f"({params})" if "parameters" in spec else "")
    return text + (f": {spec['description']}" if spec.get("description") else "")


def _content(m: SentMessage) -> str:
    text = m.content
    if m.tool_calls:
        calls = "; ".join(f"{c.get('name')}({c.get('arguments')})" for c in m.tool_calls)
        text = (text + "\n" if text else "") + f"calls {calls}"
    return text


def context_text(ctx: SentContext, labels: Mapping[str, str] | None = None) -> str:
    """Plain text for terminals and logs: one block per message, headed by part, source run and tokens."""
    labels = labels or {}
    lines = [headline(ctx)]
    for i, m in enumerate(ctx.messages, 1):
        source = f" from {source_label(m.from_run_id, labels)}" if m.from_run_id else ""
        lines += ["", f"[{i}] {m.part} ({m.role}){source} · {fmt_tokens(m.tokens, ctx.tokens_estimated)} tokens",
                  _content(m) or "(empty)"]
    tools = ", ".join(_tool_line(t) for t in ctx.tools) or "none"
    lines += ["", f"tools offered: {tools}"]
    return _clean("\n".join(lines))


def context_html(ctx: SentContext, labels: Mapping[str, str] | None = None) -> str:
    """A table of the messages sent, every string escaped (model text included): inert in a trusted output."""
    labels = labels or {}
    esc = html.escape
    head = "".join(f"<th {_HEAD}>{h}</th>" for h in ("#", "part", "from run", "tokens", "content"))
    rows = []
    for i, m in enumerate(ctx.messages, 1):
        source = esc(source_label(m.from_run_id, labels))
        rows.append(f'<tr class="nbsessions-sent-{m.part.replace(" ", "-")}"><td {_CELL}>{i}</td>'
                    f"<td {_CELL}>{esc(m.part)}<br><span {_DIM}>{esc(m.role)}</span></td>"
                    f"<td {_CELL}>{source}</td><td {_CELL}>{fmt_tokens(m.tokens, ctx.tokens_estimated)}</td>"
                    f"<td {_CELL}><pre {_PRE}>{esc(_clean(_content(m))) or '(empty)'}</pre></td></tr>")
    tools = "".join(f"<li><code>{esc(_clean(_tool_line(t)))}</code></li>" for t in ctx.tools)
    tools_html = f"<ul>{tools}</ul>" if tools else "<div>none</div>"
    details = ""
    if ctx.tools and "parameters" in ctx.tools[0]:
        schema = json.dumps(ctx.tools, indent=1, ensure_ascii=False)
        details = f"<details><summary {_DIM}>tool schemas</summary><pre {_PRE}>{esc(_clean(schema))}</pre></details>"
    return (f'<div class="nbsessions-sent"><div {_DIM}>{esc(_clean(headline(ctx)))}</div>'
            f'<table class="nbsessions-sent-table" style="border-collapse:collapse"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table><div {_DIM}>tools offered:</div>{tools_html}{details}</div>")


def run_numbers(runs: list) -> dict[str, str]:
    """``run_id -> "#N"``: a session's top-level runs numbered from 1, as ``%agent history`` counts them."""
    top = [r for r in runs if not r.parent_run_id]
    return {r.run_id: f"#{i}" for i, r in enumerate(top, 1)}
