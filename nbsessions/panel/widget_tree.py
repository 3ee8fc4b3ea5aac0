"""Widget plumbing of the panel's views: the one walk over a widget tree (what the panel closes and what tests
read come from the same traversal), and the looks many widgets of a page share."""

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
    """Close a widget and everything below it (children first), so no comm outlives the view that made it."""
    for child in reversed(descendants(widget)):
        child.close()
    widget.close()


class SharedLooks:
    """One ``Layout`` and one ``HTMLStyle`` for the many HTML widgets of a page (and a spaced layout for blocks).

    Each is a widget of its own, opened with the kernel: made afresh for every run's HTML and Sent view they
    would triple what drawing a page of runs costs. Close them with the view that made them.
    """

    def __init__(self) -> None:
        self.layout, self.style, self.spaced = Layout(), HTMLStyle(), Layout(margin="0 0 6px 0")

    def html(self, value: str) -> HTML:
        return HTML(value, layout=self.layout, style=self.style)

    def close(self) -> None:
        for widget in (self.layout, self.style, self.spaced):
            widget.close()
