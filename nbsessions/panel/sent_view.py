"""The History tab's "Sent" view: under each run, folded, exactly what the run sent to its model.

The same view as ``%agent context`` (``render_context``), built from the run the page already holds, so unfolding
it needs no kernel round trip and drawing it reads nothing more from the store. Everything in it is escaped.
It is a widget (an ``Accordion``), not a ``<details>`` inside the run's HTML: the kernel then knows which views
the user unfolded, and History keeps them unfolded when it redraws as runs arrive. One view can be refilled in
place with another run's (``show``): History's slots keep theirs for the page's whole life.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from ipywidgets import HTML, Accordion, Layout

from nbsessions.panel.styles import HIDDEN, set_hidden
from nbsessions.presentation.render_context import context_html
from nbsessions.records import formatting as fmt
from nbsessions.records import theme
from nbsessions.records.schema import RunOutput
from nbsessions.runs.core.inspect_context import run_context

SENT_STYLE = f"font-size:85%;color:{theme.TEXT}"
OnToggle = Callable[[str, bool], None]  # (run id, unfolded)
Sent = tuple[str, str]  # (the summary line, the context as escaped HTML)


class SentView(Accordion):
    """One run's Sent view: its summary line as the title, the context inside; ``on_toggle`` hears the user.

    ``body`` makes the HTML widget inside from its markup, and ``layout`` is the view's (History's slots share
    theirs); while its run sent nothing the view is hidden (``styles.HIDDEN``)."""

    def __init__(self, run_id: str, sent: Sent | None, *, unfolded: bool = False, layout: Layout | None = None,
                 body: Callable[[str], HTML] = HTML, on_toggle: OnToggle | None = None) -> None:
        line, markup = _parts(sent)
        super().__init__([body(markup)], titles=(line,), selected_index=0 if unfolded and sent else None,
                         layout=layout or Layout(margin="0 0 6px 0"),
                         _dom_classes=("nbsessions-sent-view", *(() if sent else (HIDDEN,))))
        self.run_id = run_id
        self._on_toggle = on_toggle
        self.observe(self._toggled, "selected_index")

    def show(self, run_id: str, sent: Sent | None, *, unfolded: bool = False, hidden: bool = False) -> None:
        """Show ``run_id``'s line and context (hidden when ``sent`` is None), unfolded as the user left it."""
        self.run_id = run_id
        line, markup = _parts(sent)
        self.children[0].value = markup
        with self.hold_sync():
            self.titles = (line,)
            self.selected_index = 0 if unfolded and sent else None
            set_hidden(self, hidden or not sent)

    def _toggled(self, change: dict) -> None:
        if self._on_toggle is not None and self.run_id:
            self._on_toggle(self.run_id, change["new"] == 0)

    @property
    def line(self) -> str:
        return self.titles[0]

    @property
    def hidden(self) -> bool:
        return HIDDEN in self._dom_classes

    @property
    def unfolded(self) -> bool:
        return self.selected_index == 0


def _parts(sent: Sent | None) -> tuple[str, str]:
    return (sent[0], f'<div style="{SENT_STYLE}">{sent[1]}</div>') if sent else ("", "")


def sent_parts(run: RunOutput, labels: Mapping[str, str] | None = None) -> Sent | None:
    """``Sent · 6 messages (4 from history) · ~412 tokens`` and the context; None for runs that sent nothing.
    ``labels`` name the runs history came from (``#1``)."""
    if not run.messages:
        return None
    ctx = run_context(run)
    if not ctx.messages:
        return None
    tokens = f"{fmt.tokens(ctx.total_tokens, ctx.tokens_estimated)} tokens"
    window = f" of {ctx.context_window:,}" if ctx.context_window else ""
    history = sum(1 for m in ctx.messages if m.part == "history")
    count = len(ctx.messages)
    line = f"Sent · {count} message{'' if count == 1 else 's'} ({history} from history) · {tokens}{window}"
    return line, context_html(ctx, labels)


def sent_view(run: RunOutput, labels: Mapping[str, str] | None = None, *, unfolded: bool = False,
              on_toggle: OnToggle | None = None) -> SentView | None:
    """A view of its own (its own looks: close it with ``close_tree``), folded unless ``unfolded``; None for runs
    that sent nothing."""
    sent = sent_parts(run, labels)
    return None if sent is None else SentView(run.run_id, sent, unfolded=unfolded, on_toggle=on_toggle)
