"""The History tab's "Sent" view: under each run, folded, exactly what the run sent to its model.

The same view as ``%agent context`` (``render_context``), built from the run the page already holds, so unfolding
it needs no kernel round trip and drawing it reads nothing more from the store. Everything in it is escaped.
"""

from __future__ import annotations

import html
from collections.abc import Mapping

from nbsessions import theme
from nbsessions.inspect_context import run_context
from nbsessions.render_context import context_html
from nbsessions.schema import RunOutput

SENT_STYLE = f"font-size:85%;margin:0 0 6px 0;color:{theme.TEXT}"


def render_sent(run: RunOutput, labels: Mapping[str, str] | None = None) -> str:
    """``<details>`` folded by default: ``Sent · 6 messages · ~412 tokens``; empty for runs that sent nothing."""
    if not run.messages:
        return ""
    ctx = run_context(run)
    if not ctx.messages:
        return ""
    tokens = f"{'~' if ctx.tokens_estimated else ''}{ctx.total_tokens:,} tokens"
    window = f" of {ctx.context_window:,}" if ctx.context_window else ""
    history = sum(1 for m in ctx.messages if m.part == "history")
    line = f"Sent · {len(ctx.messages)} messages ({history} from history) · {tokens}{window}"
    return (f'<details class="nbsessions-sent-view" data-run="{html.escape(run.run_id)}" style="{SENT_STYLE}">'
            f"<summary>{html.escape(line)}</summary>{context_html(ctx, labels)}</details>")
