"""``{expr}`` filling of cell prompts: what is a field, what stays text, and the errors."""

from __future__ import annotations

import pytest

from nbsessions.presentation.templating import TemplateError, fill_prompt


class Frame:
    shape = (3, 4)

    @property
    def broken(self):
        raise RuntimeError("no data loaded")


NS = {"df": Frame(), "cfg": {"lr": 0.001, "layers": [64, 32], "name": "run a"}, "pi": 3.14159,
      "In": ["", "x = 1"], "Out": {2: "forty-two"}, "items": ["a", "b", "c"]}


@pytest.mark.parametrize(("template", "expected"), [
    ("Explain {df.shape} in one line.", "Explain (3, 4) in one line."),
    ("{cfg[lr]} {cfg['lr']} {cfg[\"name\"]}", "0.001 0.001 run a"),
    ("{cfg[layers][0]} and {items[-1]}", "64 and c"),
    ("{pi:.2f} {pi!r} {items!s}", "3.14 3.14159 ['a', 'b', 'c']"),
    ("cell {In[1]} gave {Out[2]}", "cell x = 1 gave forty-two"),
])
def test_fields_are_filled_from_names_attributes_and_indexes(template, expected):
    assert fill_prompt(template, NS) == expected


@pytest.mark.parametrize("text", [
    '{"model": "gpt", "params": {"t": 0.2}}',  # JSON, nested
    "def f():\n    return { x: 1 for x in y }",  # code with spaces
    "at {12:30} and {{ jinja_var }}",  # not fields
    "a lone } and a lone {",
    "",
])
def test_text_that_is_not_a_field_stays_exactly_as_written(text):
    assert fill_prompt(text, NS) == text


def test_double_braces_keep_a_field_literal():
    assert fill_prompt("use {{df.shape}} literally, but {df.shape} filled", NS) == \
        "use {df.shape} literally, but (3, 4) filled"


def test_an_unknown_name_is_an_error_naming_it_and_how_to_escape():
    with pytest.raises(TemplateError) as caught:
        fill_prompt("Explain {dataframe.shape}", NS)
    message = str(caught.value)
    assert "'dataframe'" in message and "{{dataframe.shape}}" in message
    assert "\n" not in message


@pytest.mark.parametrize(("template", "needle"), [
    ("{df.colour}", "AttributeError"),
    ("{cfg[missing]}", "KeyError"),
    ("{items[9]}", "IndexError"),
    ("{df.broken}", "RuntimeError: no data loaded"),
    ("{pi:zz}", "cannot format {pi:zz}"),
])
def test_failing_lookups_and_formats_are_one_line_errors(template, needle):
    with pytest.raises(TemplateError) as caught:
        fill_prompt(template, NS)
    assert needle in str(caught.value)
    assert "\n" not in str(caught.value)


def test_later_namespaces_fill_names_the_first_lacks_and_the_first_wins():
    assert fill_prompt("{topic} / {pi}", NS, {"topic": "ml", "pi": "not this"}) == "ml / 3.14159"


def test_nothing_is_evaluated():
    calls = []

    class Spy:
        def __getitem__(self, key):
            calls.append(key)
            return "ok"

    assert fill_prompt("{s[__import__('os')]} {s[open]}", {"s": Spy()}) == "ok ok"
    assert calls == ["__import__('os')", "open"]  # keys are literals or plain strings, never code


# -- refusals: what a template may never do ----------------------------------------------------------
class Holder:
    def method(self):
        return 1

    secret_value = "public"


@pytest.mark.parametrize("template", ["{obj.__init__.__globals__[os]}", "{obj.method.__func__}", "{obj._hidden}",
                                      "{obj.__class__}", "{cfg[layers].__class__}"])
def test_attributes_starting_with_an_underscore_are_refused(template):
    with pytest.raises(TemplateError, match="private"):
        fill_prompt(template, {**NS, "obj": Holder()})


def test_public_attributes_and_underscore_keys_still_work():
    assert fill_prompt("{obj.secret_value} {d[_k]}", {"obj": Holder(), "d": {"_k": 2}}) == "public 2"


@pytest.mark.parametrize("template", ["{pi:>100000000}", "{pi:.5000f}", "{items!s:^1001}", "{pi:0>2000}"])
def test_huge_format_widths_and_precisions_are_refused(template):
    with pytest.raises(TemplateError, match="above 1000"):
        fill_prompt(template, NS)


def test_ordinary_format_specs_still_work():
    assert fill_prompt("{pi:>8.3f}|{pi:0>10.1f}|{items!s:^20}", NS) == (
        "   3.142|00000003.1|" + "['a', 'b', 'c']".center(20))


def test_a_filled_prompt_holding_a_secret_is_refused_without_quoting_it():
    key = "sk-live-0123456789abcdef"
    with pytest.raises(TemplateError) as caught:
        fill_prompt("my key is {k}", {"k": key}, secrets=[key])
    assert key not in str(caught.value) and "API key" in str(caught.value)
    assert fill_prompt("my key is {k}", {"k": "other"}, secrets=[key, ""]) == "my key is other"
