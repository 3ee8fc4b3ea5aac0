"""``{expr}`` in a cell's prompt, filled from the notebook's variables.

The rule, chosen so that prompts full of JSON, code or other templates survive untouched:

- ``{name}``, ``{name.attr}``, ``{name[0]}``, ``{name['key']}``, chains of these, with an optional ``!r``/``!s``/``!a``
  conversion and ``:spec`` format (as in ``str.format``) are *fields*: filled, or an error naming what is missing.
  A field holds no whitespace and starts with a letter or ``_``.
- ``{{field}}`` is the escape: it stays in the prompt as the literal text ``{field}``.
- Everything else with braces — ``{"a": 1}``, ``{ x }``, ``{12:30}``, ``{{ jinja }}``, a lone ``}`` — is plain text.

Nothing is evaluated: names are looked up, attributes read with ``getattr`` and indexes with ``[]``; an index is a
Python literal (``0``, ``-1``, ``'key'``) or, as in ``str.format``, a bare word used as a string key.

Refused, because a prompt is sent to a server and stored: attributes starting with ``_`` (``{f.__globals__}`` would
walk from any function to every module's secrets), numbers above ``MAX_FORMAT_NUMBER`` in a format spec
(``{x:>100000000}`` is a 100 MB prompt), and secrets (the ``secrets`` given and every one ``redact`` knows): a
field whose value holds 8 or more characters of one, indexing, a conversion or a format spec applied to such a
value (``{key[3]}``, ``{os.environ[OPENAI_API_KEY]:.37}`` would leak it piece by piece), and a filled prompt
that holds such a piece (``{a}{b}`` with two halves).

Why not inside the magic: ``batch`` fills its row templates with the same rules (and refusals), so the filler sits
in the presentation layer below both surfaces.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from nbsessions.errors import InvalidInputError, NbSessionsError
from nbsessions.redact import leaks
from nbsessions.validate import refuse_secrets

_FIELD = r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*|\[[^\[\]{}\s]+\])*(?:![rsa])?(?::[^{}\s]*)?"
_PATTERN = re.compile(r"\{\{(" + _FIELD + r")\}\}|\{(" + _FIELD + r")\}")
_PARTS = re.compile(
    r"(?P<name>[A-Za-z_]\w*)(?P<path>(?:\.[A-Za-z_]\w*|\[[^\]]+\])*)(?:!(?P<conv>[rsa]))?(?::(?P<spec>.*))?",
    re.DOTALL)
_STEP = re.compile(r"\.(?P<attr>[A-Za-z_]\w*)|\[(?P<key>[^\]]+)\]")
_CONVERSIONS = {"r": repr, "s": str, "a": ascii}
_NUMBER = re.compile(r"\d+")
MAX_FORMAT_NUMBER = 1000
"""The largest width or precision a ``{field:spec}`` may ask for."""


class TemplateError(NbSessionsError, ValueError):
    """A ``{field}`` in a prompt cannot be filled; nothing was sent."""


def _key(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _lookup(name: str, namespaces: Sequence[Mapping[str, Any]], field: str) -> Any:
    for ns in namespaces:
        if name in ns:
            return ns[name]
    raise TemplateError(f"unknown name {name!r} in {{{field}}}: define it first, or write {{{{{field}}}}} "
                        "to keep the braces")


def _refuse_secret(value: Any, field: str, secrets: Sequence[str]) -> None:
    """A text that holds a piece of a secret is refused as soon as a field reaches it: whatever comes next
    (an index, a precision, a conversion) could only cut it into pieces."""
    if isinstance(value, str | bytes) and leaks(value if isinstance(value, str) else value.decode("latin-1"),
                                                secrets):
        raise TemplateError(f"the prompt contains the configured API key or a piece of a secret (through "
                            f"{{{field}}}); nothing was sent or stored")


def _value(field: str, namespaces: Sequence[Mapping[str, Any]], secrets: Sequence[str] = ()) -> str:
    parts = _PARTS.fullmatch(field)
    assert parts is not None  # _PATTERN only matches fields
    value = _lookup(parts["name"], namespaces, field)
    seen = parts["name"]
    for step in _STEP.finditer(parts["path"]):
        _refuse_secret(value, field, secrets)
        if step["attr"] is not None and step["attr"].startswith("_"):
            raise TemplateError(f"cannot fill {{{field}}}: attribute {step['attr']!r} is private; templates read "
                                "only public attributes")
        try:
            value = getattr(value, step["attr"]) if step["attr"] is not None else value[_key(step["key"])]
        except Exception as exc:  # whatever a user object raises, the prompt is not sent
            raise TemplateError(f"cannot fill {{{field}}}: {seen}{step[0]} failed with "
                                f"{type(exc).__name__}: {exc}") from None
        seen += step[0]
    _refuse_secret(value, field, secrets)
    spec = parts["spec"] or ""
    if any(int(n) > MAX_FORMAT_NUMBER for n in _NUMBER.findall(spec)):
        raise TemplateError(f"cannot format {{{field}}}: widths and precisions above {MAX_FORMAT_NUMBER} "
                            "are refused")
    try:
        if parts["conv"]:
            value = _CONVERSIONS[parts["conv"]](value)
        text = format(value, spec)
    except Exception as exc:
        raise TemplateError(f"cannot format {{{field}}}: {type(exc).__name__}: {exc}") from None
    _refuse_secret(text, field, secrets)  # a container or an object whose text shows a secret
    return text


def fill_prompt(text: str, *namespaces: Mapping[str, Any], secrets: Iterable[str | None] = ()) -> str:
    """Fill the fields of ``text`` from the first namespace that has each name (see the module docstring).

    ``secrets`` (API keys) must not appear in the result, whole or in pieces: a prompt is sent and stored, a key
    never is.
    """
    secrets = tuple(s for s in secrets if s)

    def replace(match: re.Match[str]) -> str:
        escaped, field = match.group(1), match.group(2)
        if escaped is not None:
            return "{" + escaped + "}"
        return _value(field, namespaces, secrets)

    filled = _PATTERN.sub(replace, text)
    try:
        refuse_secrets(filled, secrets)
    except InvalidInputError as exc:
        raise TemplateError(str(exc)) from None
    return filled


def escape_prompt(text: str) -> str:
    """The cell text that fills back to exactly ``text``: every field-like ``{...}`` gets one more pair of braces."""
    return _PATTERN.sub(lambda match: "{" + match.group(0) + "}", text)
