"""How numbers, times and long text are written for people, in one place for every surface.

The footer, `%agent` tables, the panel, experiment tables, exports and the command line all show the same
quantities; one spelling each keeps them comparable at a glance. Only numbers, times and fixed words are
formatted here; text a model wrote is sanitised where it is shown.
"""

from __future__ import annotations

import math
import re
import textwrap
import time

UNKNOWN_COST = "cost n/a"
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # keeps \t and \n; drops ESC, CSI and friends


def strip_control(text: object) -> str:
    """Text without control characters (tabs and newlines kept): a model's or a user's text cannot move a
    terminal's cursor, retitle its window or hide what follows."""
    return _CONTROL.sub("", str(text))


def seconds(value: float | None) -> str:
    """``640 ms`` under a second, ``3.10 s`` above; ``–`` when not measured."""
    if value is None:
        return "–"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def cost(value: float | None) -> str:
    """Plain decimals with three significant digits for tiny amounts (``$0.0000145``), never ``1.45e-05``."""
    if value is None:
        return UNKNOWN_COST
    if value == 0 or value >= 0.0001:
        return f"${value:.4f}"
    digits = -math.floor(math.log10(value)) + 2
    return f"${value:.{digits}f}"


def when(timestamp: float | None) -> str:
    """Local date and minute: absolute, so a panel left open never shows a stale "5 min ago"."""
    if not timestamp:
        return "–"
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(timestamp))


def when_precise(timestamp: float | None) -> str:
    if not timestamp:
        return "–"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))


def tokens(count: int, estimated: bool = False) -> str:
    """``~`` marks a count estimated from the text (the server sent no usage): never shown as the server's."""
    return f"~{count:,}" if estimated else f"{count:,}"


def counted(count: int, noun: str) -> str:
    """``1 run``, ``2 runs``: a count with its noun, singular for one (nouns here take a plain ``s``)."""
    return f"{count:,} {noun}" if count == 1 else f"{count:,} {noun}s"


def one_line(text: object) -> str:
    """All whitespace (newlines included) as single spaces: for table cells and one-line summaries."""
    return " ".join(str(text).split())


def shorten(text: object, width: int) -> str:
    """One line of at most ``width`` characters, ending in ``…``: cut at a word unless that would drop more than
    half the width (a long word, a JSON value), then cut inside the word."""
    flat = one_line(text)
    if len(flat) <= width:
        return flat
    cut = textwrap.shorten(flat, width, placeholder="…")
    return cut if len(cut) > width // 2 else flat[: width - 1] + "…"
