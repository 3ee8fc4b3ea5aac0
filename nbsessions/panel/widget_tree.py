"""Widget plumbing of the panel's views: the one walk over a widget tree (what the panel closes and what tests
read come from the same traversal), closing a tree with its looks, and the looks long-lived widgets share.

Why closing matters in the browser: a view of a widget makes a view of its ``Layout`` (and of its style), and
ipywidgets removes that one only when the ``Layout`` itself is closed, never with the view that made it. A
``Layout`` left open keeps every view ever drawn with it, their DOM nodes and their listeners, alive. So a widget
that is closed before the page closes its own layout and style with it, and only widgets that live as long as the
page share theirs.
"""

from __future__ import annotations

from ipywidgets import HTML, Layout, Widget
from ipywidgets.widgets.widget_string import HTMLStyle


def descendants(widget: Widget) -> list[Widget]:
    """Every widget below ``widget`` (not itself), parents before their children, in display order."""
    found: list[Widget] = []
    for child in getattr(widget, "children", ()):
        found.append(child)
        found.extend(descendants(child))
    return found


def close_tree(widget: Widget) -> None:
    """Close a widget and everything below it (children first), each with its layout and style, so no comm and
    no browser view outlives the view that made it."""
    for item in reversed(descendants(widget)):
        close_with_looks(item)
    close_with_looks(widget)


def close_with_looks(widget: Widget) -> None:
    """Close one widget, then its layout and style (ipywidgets' ``close`` leaves those open)."""
    widget.close()
    for look in (getattr(widget, "layout", None), getattr(widget, "style", None)):
        if isinstance(look, Widget):
            look.close()


class SharedLooks:
    """One ``Layout`` and one ``HTMLStyle`` for the many HTML widgets a page keeps for its whole life (and a
    spaced layout for the runs of its slots, and one empty HTML widget that folded Sent views show).

    Each look is a widget of its own: made afresh for every one of a page's HTML widgets they would triple what
    drawing it costs. Never give them to a widget that is closed before the page: the browser would keep its
    views for as long as the shared look lives (see the module's docstring). Close them with the page.
    """

    def __init__(self) -> None:
        self.layout, self.style, self.spaced = Layout(), HTMLStyle(), Layout(margin="0 0 6px 0")
        self.blank = self.html("")  # what every folded Sent view of the page shows (``SentView``)

    def html(self, value: str) -> HTML:
        return HTML(value, layout=self.layout, style=self.style)

    def close(self) -> None:
        for widget in (self.blank, self.layout, self.style, self.spaced):
            widget.close()
