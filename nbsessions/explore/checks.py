"""Expectations about a reply, as in prompt-testing tools: ``contains``, ``regex``, ``is_json``, ``json_schema``
and ``check(fn)`` for anything else.

A check never raises: a check whose function fails counts as failed, with the error as its detail, so one bad
check cannot stop a batch of a hundred prompts half way.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from nbsessions.records.formatting import shorten

_DETAIL_LIMIT = 200


@dataclass(frozen=True)
class CheckResult:
    """One check on one reply: ``passed`` and a short ``detail`` saying why."""

    name: str
    passed: bool
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "passed": self.passed, "detail": self.detail}


def _short(text: object) -> str:
    return shorten(text, _DETAIL_LIMIT)


class Check:
    """A named expectation: ``fn(reply)`` returns a bool, ``(bool, detail)`` or a ``CheckResult``."""

    def __init__(self, fn: Callable[[str], Any], name: str) -> None:
        self.fn = fn
        self.name = name

    def __repr__(self) -> str:
        return f"Check({self.name!r})"

    def __call__(self, reply: str) -> CheckResult:
        try:
            value = self.fn(reply)
        except Exception as exc:  # a broken check is a failed check, never a crash of the whole run
            return CheckResult(self.name, False, _short(f"{type(exc).__name__}: {exc}"))
        if isinstance(value, CheckResult):
            return CheckResult(self.name, value.passed, _short(value.detail))
        if isinstance(value, tuple) and len(value) == 2:
            return CheckResult(self.name, bool(value[0]), _short(value[1]))
        return CheckResult(self.name, bool(value), "")


def check(fn: Callable[[str], Any], name: str | None = None) -> Check:
    """Any Python function of the reply text as a check (named after the function unless ``name`` is given)."""
    return Check(fn, name or getattr(fn, "__name__", None) or "check")


def contains(text: str, *, case_sensitive: bool = True, name: str | None = None) -> Check:
    """The reply contains ``text``."""

    def run(reply: str) -> tuple[bool, str]:
        found = text in reply if case_sensitive else text.casefold() in reply.casefold()
        return found, ("found " if found else "missing ") + repr(text)

    return Check(run, name or f"contains {text!r}")


def regex(pattern: str, *, flags: int = 0, name: str | None = None) -> Check:
    """``re.search(pattern, reply)`` finds a match (compiled now, so a bad pattern fails before any run)."""
    compiled = re.compile(pattern, flags)

    def run(reply: str) -> tuple[bool, str]:
        match = compiled.search(reply)
        return (True, f"matched {match.group(0)!r}") if match else (False, f"no match for /{pattern}/")

    return Check(run, name or f"regex /{pattern}/")


_FENCE = re.compile(r"\A\s*```[\w-]*\s*\n(.*?)\n\s*```\s*\Z", re.DOTALL)


def _parse_json(reply: str, strip_fence: bool) -> Any:
    """The reply as JSON; a reply that is exactly one fenced code block counts too (models love fences)."""
    match = _FENCE.match(reply) if strip_fence else None
    return json.loads(match.group(1) if match else reply)


def is_json(*, strip_fence: bool = True, name: str = "is_json") -> Check:
    """The reply parses as JSON (alone, or as the only content of a ``` fence when ``strip_fence``)."""

    def run(reply: str) -> tuple[bool, str]:
        try:
            value = _parse_json(reply, strip_fence)
        except ValueError as exc:
            return False, f"not JSON: {exc}"
        return True, f"JSON {type(value).__name__}"

    return Check(run, name)


def json_schema(schema: Mapping[str, Any], *, strip_fence: bool = True, name: str = "json_schema") -> Check:
    """The reply is JSON valid against ``schema`` (needs the ``jsonschema`` package, imported on first use)."""
    import jsonschema
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)  # a broken schema is the caller's bug: say so before any run
    validator = validator_class(schema)

    def run(reply: str) -> tuple[bool, str]:
        try:
            value = _parse_json(reply, strip_fence)
        except ValueError as exc:
            return False, f"not JSON: {exc}"
        error = jsonschema.exceptions.best_match(validator.iter_errors(value))
        if error is None:
            return True, "valid"
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        return False, f"at {where}: {error.message}"

    return Check(run, name)


CheckLike = Check | Callable[[str], Any]
_FACTORIES: dict[Callable[..., Check], str] = {is_json: "is_json"}


def as_checks(items: Iterable[CheckLike] | None) -> list[Check]:
    """Checks from what users write: ``Check`` objects, plain functions, or ``is_json`` without parentheses.

    Names are made unique (``name #2``) so each check gets its own column.
    """
    out: list[Check] = []
    seen: dict[str, int] = {}
    for item in items or ():
        if item in _FACTORIES:
            item = item()  # type: ignore[operator]
        if not isinstance(item, Check):
            if not callable(item):
                raise TypeError(f"a check must be a function of the reply text, not {type(item).__name__}")
            item = check(item)
        seen[item.name] = seen.get(item.name, 0) + 1
        if seen[item.name] > 1:
            item = Check(item.fn, f"{item.name} #{seen[item.name]}")
        out.append(item)
    return out


def run_checks(checks: list[Check], reply: str | None, failure: str | None = None) -> list[CheckResult]:
    """Every check on a reply; when there is no reply (the run failed), every check fails with ``failure``."""
    if reply is None:
        return [CheckResult(c.name, False, _short(failure or "no reply")) for c in checks]
    return [c(reply) for c in checks]
