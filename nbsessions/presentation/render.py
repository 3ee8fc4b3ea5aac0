"""Safe display of model text: Markdown → HTML with markdown-it, then sanitised with nh3.

Live outputs of a running kernel are trusted by JupyterLab, so a ``<script>`` or ``onerror=`` in a reply would
run in the user's browser with their Jupyter token. Every model-produced string that reaches a cell or a widget
goes through ``markdown_to_html`` (or is escaped): nothing else decides what is safe.

Why not inside a surface: the magic, the panel, experiments and the CLI all show replies and footers, so this sits
in the presentation layer below them (see the import contract), where each can use it without importing another.
"""

from __future__ import annotations

import html
from functools import lru_cache
from typing import TYPE_CHECKING

import nh3

from nbsessions.presentation import highlight
from nbsessions.records import formatting as fmt
from nbsessions.records.redact import redact
from nbsessions.records.schema import Metrics, RunOutput, RunStatus

if TYPE_CHECKING:
    from markdown_it import MarkdownIt

# Images are left out: an <img> loads a URL as soon as it renders, which lets an injected reply send data
# out of the notebook. Markdown images become plain links the user may choose to follow.
_SAFE_TAGS = frozenset(nh3.ALLOWED_TAGS) - {"img", "map", "area"}
_SAFE_ATTRIBUTES = {
    "a": {"href", "title"},
    "th": {"align", "style"},
    "td": {"align", "style"},
    "ol": {"start"},
}
# The only classes that survive are the highlighter's: a model cannot borrow JupyterLab's own (jp-Dialog…).
_SAFE_CLASSES = {"span": set(highlight.TOKEN_CLASSES)}


@lru_cache(maxsize=1)
def _markdown() -> MarkdownIt:
    """Built on the first reply shown (markdown-it is imported then, not when the extension loads)."""
    from markdown_it import MarkdownIt

    # html=False: raw HTML in a reply (a model explaining <div>) is shown as text, not silently dropped.
    md = MarkdownIt("commonmark", {"html": False, "highlight": highlight.code_html}).enable(
        ["table", "strikethrough"])

    def image_as_link(renderer, tokens, idx, options, env):  # markdown-it's render-rule signature
        token = tokens[idx]
        src = html.escape(token.attrGet("src") or "", quote=True)
        alt = html.escape(token.content or src)
        return f'<a href="{src}">[image: {alt}]</a>'

    md.add_render_rule("image", image_as_link)
    return md


@lru_cache(maxsize=1)
def _cleaner() -> nh3.Cleaner:
    """Built once: ``nh3.clean`` would build the same sanitiser anew for every fragment (most of its cost)."""
    return nh3.Cleaner(tags=set(_SAFE_TAGS), attributes=_SAFE_ATTRIBUTES, allowed_classes=_SAFE_CLASSES,
                       url_schemes={"http", "https", "mailto"}, link_rel="noopener noreferrer nofollow",
                       filter_style_properties={"text-align"})


def sanitize_html(fragment: str) -> str:
    """Keep formatting, drop scripts, event handlers, styles that load things, and unsafe URL schemes."""
    return _cleaner().clean(fragment)


def markdown_to_html(text: str) -> str:
    """Model Markdown as HTML that is safe to show in a trusted output or an HTML widget."""
    return highlight.colour_sanitised(sanitize_html(_markdown().render(redact(text or ""))))  # secrets first:
    # Markdown and escaping would cut a key's characters apart


format_cost = fmt.cost  # kept under this name: the footer's word for it


def format_in_out(m: Metrics, sep: str = " / ") -> str:
    """Input and output tokens of a run or session, ``~`` on estimates."""
    return fmt.tokens(m.input_tokens, m.tokens_estimated) + sep + fmt.tokens(m.output_tokens, m.tokens_estimated)


def format_footer(run: RunOutput, session_label: str) -> str:
    """``model · session · in/out tokens · TTFT · duration · cost`` — the line users read most."""
    m: Metrics = run.metrics
    parts = [
        run.model or "?",
        session_label,
        f"{format_in_out(m, ' in / ')} out tokens",
        f"TTFT {fmt.seconds(m.time_to_first_token)}",
        fmt.seconds(m.duration),
        format_cost(m.cost),
    ]
    if run.status != RunStatus.completed:
        parts.append(run.status.value + (f": {run.error}" if run.error else ""))
    return redact(" · ".join(parts))


def tool_calls_html(run: RunOutput) -> str:
    """The tools a finished run called, with their arguments and results, folded under the reply in one
    ``<details>``; "" when it called none. A model chose every byte of them: all escaped."""
    own = [m for m in run.messages if not m.from_history]
    results = {m.tool_call_id: m.content or "" for m in own if m.role == "tool" and m.tool_call_id}
    calls = [(str(c.get("name") or "?"), str(c.get("arguments") or ""), results.get(c.get("id")))
             for m in own if m.role == "assistant" and m.tool_calls for c in m.tool_calls]
    if not calls:
        return ""
    names = ", ".join(dict.fromkeys(name for name, _a, _r in calls))
    summary = f"{len(calls)} tool call{'' if len(calls) == 1 else 's'}: {names}"
    rows = "".join(f"<div><code>{_esc(name)}</code><pre>{_esc(arguments)}</pre>"
                   + (f"<div>→</div><pre>{_esc(result)}</pre>" if result is not None else "") + "</div>"
                   for name, arguments, result in calls)
    return (f'<details class="nbsessions-tools" style="font-size:85%;margin:4px 0"><summary>{_esc(summary)}'
            f'</summary>{rows}</details>')


def _esc(text: str) -> str:
    return html.escape(redact(text))


def reply_bundle(run: RunOutput, session_label: str | None = None) -> dict[str, str]:
    """A display bundle for a reply: sanitised HTML for Jupyter, raw text for terminals and logs.

    No ``text/markdown`` on purpose: the front end would render any raw HTML inside it as trusted.
    With ``session_label`` the footer is added (a finished run); without it, the reply is still streaming.
    """
    body = markdown_to_html(run.content)
    plain = redact(run.content)
    if session_label is not None:
        body += tool_calls_html(run)  # the plain text stays the reply and its footer, as a log reads it
        footer = format_footer(run, session_label)
        body += f'<div class="nbsessions-footer" style="opacity:.7;font-size:85%">{html.escape(footer)}</div>'
        plain += f"\n\n— {footer}"
    return {"text/html": f'<div class="nbsessions-reply">{body}</div>', "text/plain": plain}
