"""Code blocks in replies, coloured like JupyterLab's editor in either theme.

Pygments marks tokens with short classes (prefixed ``nbs-``); the sanitiser keeps exactly these classes and no
others, and only then are they turned into inline colours from JupyterLab's editor variables
(``--jp-mirror-editor-*``), which follow the theme. No ``<style>`` element is needed, so a reply looks the same in
a cell, the panel and an exported notebook, and nothing a model wrote can reach a style.
"""

from __future__ import annotations

import re

from pygments import highlight as pygments_highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name
from pygments.token import STANDARD_TYPES, Comment, Keyword, Name, Number, Operator, String, Token
from pygments.util import ClassNotFound

from nbsessions.records import theme

PREFIX = "nbs-"
TOKEN_CLASSES = frozenset(PREFIX + short for short in STANDARD_TYPES.values() if short)

# Token family -> JupyterLab editor colour; the first family a token belongs to wins.
_FAMILIES = [
    (Comment, "comment"), (String, "string"), (Number, "number"), (Keyword, "keyword"), (Operator, "operator"),
    (Name.Builtin, "builtin"), (Name.Function, "def"), (Name.Class, "def"), (Name.Decorator, "meta"),
    (Name.Tag, "tag"), (Name.Attribute, "attribute"), (Token.Error, "error"),
]


def _colours() -> dict[str, str]:
    colours = {}
    for ttype, short in STANDARD_TYPES.items():
        family = next((name for parent, name in _FAMILIES if ttype in parent), None)
        if short and family:
            colours[PREFIX + short] = f"var(--jp-mirror-editor-{family}-color)"
    return colours


COLOURS = _colours()
PRE_STYLE = (f"background:{theme.CODE_BG};color:{theme.CODE_TEXT};font-family:{theme.CODE_FONT};"
             "padding:6px 10px;border-radius:4px;overflow-x:auto;line-height:1.35")
INLINE_CODE_STYLE = f"background:{theme.CODE_BG};padding:0 3px;border-radius:3px;font-family:{theme.CODE_FONT}"
_FORMATTER = HtmlFormatter(nowrap=True, classprefix=PREFIX)
_TOKEN_CLASS = re.compile(r' class="(nbs-[\w-]+)"')
_CODE_OR_PRE = re.compile(r"<pre><code>|<code>")


def code_html(code: str, language: str, _attrs: str = "") -> str:
    """Highlighted HTML for a fenced block (markdown-it's ``highlight`` hook); "" lets markdown-it escape it."""
    try:
        lexer = get_lexer_by_name(language.split()[0]) if language.strip() else None
    except ClassNotFound:
        lexer = None
    if lexer is None:
        return ""
    return pygments_highlight(code, lexer, _FORMATTER)


def colour_sanitised(fragment: str) -> str:
    """Turn the highlighter's classes into theme colours and style code boxes: only for sanitised HTML, in which
    the only classes left are the highlighter's own."""
    fragment = _TOKEN_CLASS.sub(
        lambda m: f' style="color:{COLOURS[m.group(1)]}"' if m.group(1) in COLOURS else "", fragment)
    return _CODE_OR_PRE.sub(
        lambda m: f'<pre style="{PRE_STYLE}"><code>' if m.group(0).startswith("<pre")
        else f'<code style="{INLINE_CODE_STYLE}">', fragment)
