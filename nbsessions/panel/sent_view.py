"""The History tab's "Sent" view: under each run, folded, exactly what the run sent to its model.

The same view as ``%agent context`` (``render_context``), built from the run the page already holds, so unfolding
it needs no kernel round trip and drawing it reads nothing more from the store. Everything in it is escaped.
It is a widget (an ``Accordion``), not a ``<details>`` inside the run's HTML: the kernel then knows which views
the user unfolded, and History keeps them unfolded when it redraws as runs arrive. One view can be refilled in
place with another run's (``show``): History's slots keep theirs for the page's whole life.

A folded view holds only its line: the context is rendered, and its HTML widget made, when the user first unfolds
it (the kernel hears the unfolding anyway), so a page of folded views costs about what the lines cost. Until
then a view shows ``blank``, an empty HTML widget that History's slots share.
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
Sent = tuple[str, Callable[[], str]]  # (the summary line, what renders the context as escaped HTML)


class SentView(Accordion):
    """One run's Sent view: its summary line as the title, the context inside; ``on_toggle`` hears the user.

    ``body`` makes the HTML widget inside from its markup, on the first unfold (History's slots share its looks),
    ``blank`` is what a folded view shows before that (its own empty ``body`` when not given), and ``layout`` is
    the view's; while its run sent nothing the view is hidden (``styles.HIDDEN``)."""

    def __init__(self, run_id: str, sent: Sent | None, *, unfolded: bool = False, layout: Layout | None = None,
                 body: Callable[[str], HTML] = HTML, blank: HTML | None = None,
                 on_toggle: OnToggle | None = None) -> None:
        self.run_id, self._sent, self._markup = run_id, sent, None
        self._make_body = body
        unfolded = unfolded and sent is not None
        self._own: HTML | None = body(self.body if unfolded else "") if blank is None or unfolded else None
        super().__init__([self._own or blank], titles=(sent[0] if sent else "",),
                         selected_index=0 if unfolded else None, layout=layout or Layout(margin="0 0 6px 0"),
                         _dom_classes=("nbsessions-sent-view", *(() if sent else (HIDDEN,))))
        self._on_toggle = on_toggle
        self.observe(self._toggled, "selected_index")

    def show(self, run_id: str, sent: Sent | None, *, unfolded: bool = False, hidden: bool = False) -> None:
        """Show ``run_id``'s line (hidden when ``sent`` is None), unfolded (its context drawn) as the user left it."""
        self.run_id, self._sent, self._markup = run_id, sent, None
        unfolded = unfolded and sent is not None
        with self.hold_sync():
            self.titles = (sent[0] if sent else "",)
            if unfolded:
                self._fill()
            elif self._own is not None and self._own.value:
                self._own.value = ""  # drawn again on the next unfold: no other run's context meanwhile
            self.selected_index = 0 if unfolded else None
            set_hidden(self, hidden or not sent)

    @property
    def body(self) -> str:
        """The context as the view shows it once unfolded ("" for a run that sent nothing), rendered once."""
        if self._markup is None:
            self._markup = f'<div style="{SENT_STYLE}">{self._sent[1]()}</div>' if self._sent else ""
        return self._markup

    def _fill(self) -> None:
        if self._own is None:
            self._own = self._make_body(self.body)
            self.children = (self._own,)
        elif self._own.value != self.body:
            self._own.value = self.body

    def _toggled(self, change: dict) -> None:
        if change["new"] == 0 and self._sent is not None:
            self._fill()
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


def sent_parts(run: RunOutput, labels: Mapping[str, str] | None = None) -> Sent | None:
    """``Sent · 6 messages (4 from history) · ~412 tokens`` and what renders the context (when unfolded); None
    for runs that sent nothing. ``labels`` name the runs history came from (``#1``)."""
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
    return line, lambda: context_html(ctx, labels)


def sent_view(run: RunOutput, labels: Mapping[str, str] | None = None, *, unfolded: bool = False,
              on_toggle: OnToggle | None = None) -> SentView | None:
    """A view of its own (its own looks: close it with ``close_tree``), folded unless ``unfolded``; None for runs
    that sent nothing."""
    sent = sent_parts(run, labels)
    return None if sent is None else SentView(run.run_id, sent, unfolded=unfolded, on_toggle=on_toggle)
