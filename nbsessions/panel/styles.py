"""The panel's one stylesheet: a ``<style>`` element of fixed text in an HTML widget at the top of the panel.

Inline styles cannot reach what ipywidgets and JupyterLab draw themselves (tab titles, fold headers), nor hide a
widget without a ``Layout`` of its own for each; a class can. Every rule is scoped to ``.nbsessions-panel`` and
uses JupyterLab's theme variables, so it follows the light and dark themes. Nothing here comes from a user or a
model.
"""

from __future__ import annotations

from ipywidgets import Widget

from nbsessions.records import theme

HIDDEN = "nbsessions-hidden"  # a widget of the panel with this class is not shown
PLACES = 100  # classes that order History's slots (``history_slots``): twice a page, so few redraws move them


def place_class(place: int) -> str:
    """The class that puts a widget at ``place`` in its flex box, from the end: higher places come first."""
    return f"nbsessions-at-{place}"


CSS = f"""
.nbsessions-panel {{ --nbsessions-error: {theme.ERROR}; }}
.nbsessions-panel .{HIDDEN} {{ display: none !important; }}
.nbsessions-panel .lm-TabBar-tab, .nbsessions-panel .lm-TabBar-tabLabel,
.nbsessions-panel .jupyter-widget-Collapse-header {{ color: {theme.TEXT} !important; }}
""" + "".join(f".nbsessions-panel .{place_class(k)}{{order:{-k}}}" for k in range(PLACES))


def with_stylesheet(markup: str) -> str:
    """``markup`` preceded by the stylesheet: the panel's heading carries it (a widget less to build)."""
    return f"<style>{CSS}</style>{markup}"


def set_hidden(widget: Widget, hidden: bool) -> None:
    """Hide or show a widget of the panel by its class: no ``Layout`` of its own needed."""
    if hidden != (HIDDEN in widget._dom_classes):
        (widget.add_class if hidden else widget.remove_class)(HIDDEN)
