"""Colours for everything nbsessions draws, as JupyterLab's own CSS variables.

Outputs and widgets live inside JupyterLab's page, so its theme variables (``--jp-layout-color*``,
``--jp-ui-font-color*``, ``--jp-error-color1``…) follow the user's light or dark theme; a fixed light background
with the theme's text colour is white on near-white in a dark theme. Each value carries a light-theme fallback
for front ends without those variables (classic Notebook, VS Code, exported HTML).
"""

from __future__ import annotations

TEXT = "var(--jp-ui-font-color1,#212121)"
DIM = "var(--jp-ui-font-color2,#616161)"
BORDER = "var(--jp-border-color2,#ddd)"
HEADER_BG = "var(--jp-layout-color2,#eee)"
BOX_BG = "var(--jp-layout-color2,#f5f5f5)"
BRAND = "var(--jp-brand-color1,#1976d2)"


def readable(accent: str, fallback: str) -> str:
    """A theme colour mixed 60/40 with the theme's strongest text colour (black when light, white when dark):
    JupyterLab's accent colours are tuned for fills, and as text or under a badge's text some fall below 4.5:1
    (orange 2.7:1 on white, red 4.4:1 on dark grey); the mix reads at 6:1 or more in both themes, as text on
    the page and as a badge's background under ``BADGE_TEXT`` (checked in the browser by test_browser_theme)."""
    return f"color-mix(in srgb,var({accent},{fallback}) 60%,var(--jp-ui-font-color0,#000))"


ERROR = readable("--jp-error-color1", "#d32f2f")
WARN = readable("--jp-warn-color1", "#f57c00")
SUCCESS = readable("--jp-success-color1", "#388e3c")
INFO = readable("--jp-info-color1", "#0097a7")
MUTED = "color-mix(in srgb,var(--jp-ui-font-color0,#000) 60%,var(--jp-layout-color0,#fff))"
# ipywidgets' colour traits (a Label's text_color) take only plain colours and var(): the panel's stylesheet
# defines this one as ERROR.
ERROR_LABEL = "var(--nbsessions-error,#c62828)"
BADGE_TEXT = "var(--jp-layout-color0,#fff)"  # the page's own background: white when light, near black when dark
CODE_BG = "var(--jp-cell-editor-background,#f7f7f7)"
CODE_TEXT = "var(--jp-content-font-color1,#212121)"
CODE_FONT = "var(--jp-code-font-family,monospace)"

CELL = f"border:1px solid {BORDER};padding:4px 8px;vertical-align:top;text-align:left"
HEADER_CELL = f"{CELL};background:{HEADER_BG};color:{TEXT}"
