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
ERROR = "var(--jp-error-color1,#c62828)"
WARN = "var(--jp-warn-color1,#ef6c00)"
SUCCESS = "var(--jp-success-color1,#2e7d32)"
INFO = "var(--jp-info-color1,#1565c0)"
MUTED = "var(--jp-ui-font-color3,#757575)"
INVERSE_TEXT = "var(--jp-ui-inverse-font-color1,#fff)"
CODE_BG = "var(--jp-cell-editor-background,#f7f7f7)"
CODE_TEXT = "var(--jp-content-font-color1,#212121)"
CODE_FONT = "var(--jp-code-font-family,monospace)"

CELL = f"border:1px solid {BORDER};padding:4px 8px;vertical-align:top;text-align:left"
HEADER_CELL = f"{CELL};background:{HEADER_BG};color:{TEXT}"
