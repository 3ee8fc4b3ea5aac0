"""The session panel: an ipywidgets view of a notebook's sessions, shown by ``%agent panel``."""

from nbsessions.panel.panel import SessionPanel

__all__ = ["SessionPanel"]
