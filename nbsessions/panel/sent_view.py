"""The History tab's "Sent" view: under each run, folded, exactly what the run sent to its model.

The same view as ``%agent context`` (``render_context``), built from the run the page already holds, so unfolding
it needs no kernel round trip and drawing it reads nothing more from the store. Everything in it is escaped.
It is a widget (an ``Accordion``), not a ``<details>`` inside the run's HTML: the kernel then knows which views
the user unfolded, and History keeps them unfolded when it redraws as runs arrive.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from ipywidgets import Accordion

from nbsessions import theme
from nbsessions.inspect_context import run_context
from nbsessions.panel.widget_tree import SharedLooks
from nbsessions.render_context import context_html
from nbsessions.schema import RunOutput

SENT_STYLE = f"font-size:85%;color:{theme.TEXT}"
OnToggle = Callable[[str, bool], None]  # (run id, unfolded)


class SentView(Accordion):
    """One run's Sent view: its summary line as the title, the context inside; ``on_toggle`` hears the user."""

    def __init__(self, run_id: str, line: str, body: str, looks: SharedLooks, *, unfolded: bool = False,
                 on_toggle: OnToggle | None = None) -> None:
        super().__init__([looks.html(f'<div style="{SENT_STYLE}">{body}</div>')], titles=(line,),
                         selected_index=0 if unfolded else None, layout=looks.spaced)
        self.run_id = run_id
        self.add_class("nbsessions-sent-view")
        if on_toggle is not None:
            self.observe(lambda change: on_toggle(run_id, change["new"] == 0), "selected_index")

    @property
    def line(self) -> str:
        return self.titles[0]

    @property
    def unfolded(self) -> bool:
        return self.selected_index == 0


def sent_view(run: RunOutput, looks: SharedLooks, labels: Mapping[str, str] | None = None, *,
              unfolded: bool = False, on_toggle: OnToggle | None = None) -> SentView | None:
    """Folded unless ``unfolded``: ``Sent · 6 messages (4 from history) · ~412 tokens``; None for runs that sent
    nothing. ``labels`` name the runs history came from (``#1``)."""
    if not run.messages:
        return None
    ctx = run_context(run)
    if not ctx.messages:
        return None
    tokens = f"{'~' if ctx.tokens_estimated else ''}{ctx.total_tokens:,} tokens"
    window = f" of {ctx.context_window:,}" if ctx.context_window else ""
    history = sum(1 for m in ctx.messages if m.part == "history")
    line = f"Sent · {len(ctx.messages)} messages ({history} from history) · {tokens}{window}"
    return SentView(run.run_id, line, context_html(ctx, labels), looks, unfolded=unfolded, on_toggle=on_toggle)
