"""Expectations on replies: each check says pass or fail and why, and a broken check fails instead of raising."""

from __future__ import annotations

import re

import jsonschema
import pytest

from nbsessions.explore.checks import (
    Check,
    CheckResult,
    as_checks,
    check,
    contains,
    is_json,
    json_schema,
    regex,
    run_checks,
)

PERSON = {"type": "object", "required": ["name", "age"],
          "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}}}


def test_contains_passes_when_the_text_is_there_and_says_what_is_missing_otherwise():
    assert contains("Paris")("The capital is Paris.") == CheckResult("contains 'Paris'", True, "found 'Paris'")
    failed = contains("Paris")("The capital is Lyon.")
    assert not failed.passed and failed.detail == "missing 'Paris'"
    assert not contains("paris")("PARIS").passed
    assert contains("paris", case_sensitive=False, name="city")("PARIS") == CheckResult("city", True, "found 'paris'")


def test_regex_searches_anywhere_and_reports_the_match():
    result = regex(r"\d{4}")("founded in 1889, rebuilt")
    assert result.passed and result.detail == "matched '1889'" and result.name == r"regex /\d{4}/"
    assert not regex(r"^\d+$")("12 apples").passed
    assert regex("yes", flags=re.IGNORECASE)("YES").passed


def test_a_bad_regex_fails_when_the_check_is_made_not_during_a_run():
    with pytest.raises(re.error):
        regex("(unclosed")


def test_is_json_accepts_plain_and_fenced_json_and_explains_a_parse_error():
    assert is_json()('{"a": 1}') == CheckResult("is_json", True, "JSON dict")
    assert is_json()('```json\n[1, 2]\n```').passed
    assert not is_json(strip_fence=False)('```json\n[1, 2]\n```').passed
    bad = is_json()("Sure! Here is the JSON: {")
    assert not bad.passed and bad.detail.startswith("not JSON: Expecting value")


def test_json_schema_validates_and_points_at_the_failing_field():
    person = json_schema(PERSON)
    assert person('{"name": "Ada", "age": 36}') == CheckResult("json_schema", True, "valid")
    wrong = person('{"name": "Ada", "age": -1}')
    assert not wrong.passed and wrong.detail.startswith("at age:") and "minimum" in wrong.detail
    missing = person('{"name": "Ada"}')
    assert not missing.passed and "'age' is a required property" in missing.detail
    assert person("no json here").detail.startswith("not JSON")


def test_an_invalid_schema_is_refused_before_any_reply_is_checked():
    with pytest.raises(jsonschema.exceptions.SchemaError):
        json_schema({"type": "no-such-type"})


def test_any_function_of_the_reply_is_a_check_named_after_it():
    def short(reply):
        return len(reply) < 10

    assert check(short)("tiny") == CheckResult("short", True, "")
    assert check(short)("much too long a reply") == CheckResult("short", False, "")
    words = check(lambda r: (len(r.split()) == 2, f"{len(r.split())} words"), name="two words")
    assert words("one two three") == CheckResult("two words", False, "3 words")


def test_a_check_that_raises_counts_as_failed_with_the_error_text():
    def explodes(reply):
        raise KeyError("missing field")

    result = check(explodes)("anything")
    assert result == CheckResult("explodes", False, "KeyError: 'missing field'")


def test_check_details_stay_short_and_on_one_line():
    result = check(lambda r: (False, "line\n" * 200), name="long")("x")
    assert "\n" not in result.detail and len(result.detail) <= 200 and result.detail.endswith("…")


def test_as_checks_wraps_functions_accepts_bare_is_json_and_makes_names_unique():
    checks = as_checks([is_json, lambda r: True, contains("a"), contains("a")])
    assert all(isinstance(c, Check) for c in checks)
    assert [c.name for c in checks] == ["is_json", "<lambda>", "contains 'a'", "contains 'a' #2"]
    assert checks[0]("[]").passed
    with pytest.raises(TypeError, match="function of the reply text"):
        as_checks(["contains"])


def test_without_a_reply_every_check_fails_with_the_reason():
    results = run_checks(as_checks([contains("a"), is_json]), None, "no reply (error: 500 server error)")
    assert [(r.passed, r.detail) for r in results] == [(False, "no reply (error: 500 server error)")] * 2
    assert [r.passed for r in run_checks(as_checks([contains("a")]), "abc")] == [True]
