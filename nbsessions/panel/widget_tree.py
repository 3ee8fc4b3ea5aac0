"""The one walk over a widget tree: what the panel closes and what tests read come from the same traversal."""

from __future__ import annotations

from ipywidgets import Widget


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
