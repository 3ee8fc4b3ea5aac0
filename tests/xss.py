"""The one XSS checker every test uses: whatever a model, a user or a file put into a session, nothing in the HTML
nbsessions shows may run code, load a URL by itself, or dress up as the notebook's own UI.

Strict on purpose: it flags anything that *could* be active, so a sanitiser that lets one more thing through fails
every test that looks, not only the one that happens to use the right payload.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

# Elements that run code, load something as they render, or take input.
ACTIVE_TAGS = frozenset({
    "script", "iframe", "frame", "frameset", "object", "embed", "applet", "img", "image", "picture", "source",
    "video", "audio", "track", "form", "input", "button", "textarea", "select", "style", "link", "meta", "base",
    "template", "portal", "math", "foreignobject", "use", "animate", "set", "animatemotion", "animatetransform",
    "handler", "listener", "noscript", "xmp", "plaintext",
})
# Attributes that load a URL whatever its scheme.
LOADING_ATTRIBUTES = frozenset({"src", "srcset", "action", "formaction", "data", "poster", "background", "ping",
                                "lowsrc", "dynsrc", "codebase", "xlink:href", "manifest", "srcdoc"})
SAFE_SCHEMES = ("http:", "https:", "mailto:")
# What a style may not do: load something, run script (old IE), or lay itself over the page.
_STYLE = re.compile(r"url\s*\(|expression\s*\(|@import|behavior\s*:|-moz-binding|javascript:|position\s*:",
                    re.IGNORECASE)
_SCHEME = re.compile(r"^([a-z][a-z0-9+.-]*):", re.IGNORECASE)
_INVISIBLE = re.compile(r"[\x00-\x20\x7f-\x9f]+")
# The only classes allowed: nbsessions' own, and the language hint markdown-it puts on fenced code.
_OUR_CLASS = re.compile(r"nbsessions-[a-z0-9-]+|language-[A-Za-z0-9_+#.-]+")


class ActiveContent(HTMLParser):
    """Feed HTML; ``found`` lists every active thing (empty = inert); ``tags`` every start tag, in order."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self.tags: list[str] = []

    @property
    def problems(self) -> list[str]:
        return self.found

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag in ACTIVE_TAGS:
            self.found.append(f"<{tag}>")
        for name, value in attrs:
            self._attribute(tag, name.lower(), value or "")

    handle_startendtag = handle_starttag

    def _attribute(self, tag: str, name: str, value: str) -> None:
        bare = _INVISIBLE.sub("", value).lower()  # "java\tscript:" is still javascript:
        if name.startswith("on"):
            self.found.append(f"{tag}[{name}]")
        elif name in LOADING_ATTRIBUTES:
            self.found.append(f"{tag}[{name}={value}]")
        elif name == "href":
            scheme = _SCHEME.match(bare)
            if scheme and not bare.startswith(SAFE_SCHEMES):
                self.found.append(f"{tag}[href={value}]")
        elif name == "style" and _STYLE.search(value):
            self.found.append(f"{tag}[style={value}]")
        elif name == "class":
            borrowed = [c for c in value.split() if not _OUR_CLASS.fullmatch(c)]
            if borrowed:
                self.found.append(f"{tag}[class={' '.join(borrowed)}]")
        elif name in ("http-equiv", "formtarget", "target") and tag != "a":
            self.found.append(f"{tag}[{name}]")


def active_content(markup: str) -> list[str]:
    """Everything active in ``markup``; ``[]`` means it is inert."""
    parser = ActiveContent()
    parser.feed(markup)
    parser.close()
    return parser.found


def audit(markup: str) -> ActiveContent:
    """The parser after reading ``markup``: ``.found``/``.problems`` and ``.tags``."""
    parser = ActiveContent()
    parser.feed(markup)
    parser.close()
    return parser


def is_inert(markup: str) -> bool:
    return active_content(markup) == []
