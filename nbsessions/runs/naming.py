"""A session's title, written by a model from its first prompt (``set_session_name(autogenerate=True)``)."""

from __future__ import annotations

import re

from nbsessions.llm.base import Model
from nbsessions.records.formatting import shorten
from nbsessions.records.schema import Message, RunOutput

TITLE_TOKENS = 24  # a title is a few words: a small model must not ramble for seconds
TITLE_REQUEST = "Give a title of at most 6 words, no quotes, for a chat that starts with:"
TITLE_WIDTH = 60


def generate_name(runs: list[RunOutput], model: Model) -> str:
    """A short title from the first prompt, asked for in one small whole reply; offline models (and a title
    that only echoes the request) get the prompt's first words."""
    first = next((r.input for r in runs if r.input), "")
    if not first:
        raise ValueError("the session has no runs to name it from")
    if not model.is_scripted:
        ask = [Message(role="user", content=f"{TITLE_REQUEST}\n\n{first[:2000]}")]
        reply = model.with_max_tokens(TITLE_TOKENS).complete(ask)
        title = short_title("".join(x for x in reply if isinstance(x, str)))
        if title and not repeats_title_request(title):
            return title
    words = first.split()
    return " ".join(words[:6]) + ("…" if len(words) > 6 else "")


def repeats_title_request(title: str) -> bool:
    """Whether a title repeats four words in a row of the request for it (an echoing server, a model that
    misread it): such a title names nothing, and the prompt's first words are used instead."""
    asked = re.findall(r"\w+", TITLE_REQUEST.lower())
    said = " " + " ".join(re.findall(r"\w+", title.lower())) + " "
    return any(f" {' '.join(asked[i:i + 4])} " in said for i in range(len(asked) - 3))


def short_title(reply: str) -> str:
    """The first line of a model's title, without Markdown, quotes or a "Title:" label, at most 60 characters."""
    line = next((x for x in reply.splitlines() if x.strip()), "")
    line = re.sub(r"^\s*(#+|[-*]\s)?\s*(\*\*)?(title\s*:)?", "", line, flags=re.I)
    while line != (trimmed := line.strip().strip("*_`\"'“”‘’").rstrip(".")):
        line = trimmed
    return shorten(line, TITLE_WIDTH) if line else ""
