"""A paused run in the History tab: what its tool calls wait for, and the controls to answer.

Confirmations get Approve / Reject, requested fields a text box each (prefilled with what the model proposed),
externally executed tools a text area for their result. The card only collects the answers; the panel hands
them to ``Agent.continue_run``. An answer that is missing is reported here before anything runs, so an approved
tool is never called for a continuation that cannot go through.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from typing import Any

from ipywidgets import HTML, Button, HBox, Label, Layout, Text, Textarea, VBox, Widget
from ipywidgets.widgets.widget_string import LabelStyle

from nbsessions.panel.run_html import render_run
from nbsessions.records import theme
from nbsessions.records.requirement import RunRequirement
from nbsessions.records.schema import RunOutput
from nbsessions.records.validate import loads

OnContinue = Callable[["PausedRun", "bool | None"], None]
_CARD_STYLE = f"border-left:3px solid {theme.WARN};padding-left:6px"
_KIND_WORDS = {"confirmation": "asks for approval", "user_input": "asks for input",
               "external_execution": "runs outside: paste its result"}


def parse_value(text: str) -> Any:
    """A typed field: JSON when it parses (``5``, ``true``, ``[1, 2]``, ``"5"``), else the text as written."""
    try:
        return loads(text)
    except ValueError:
        return text


def _proposed(requirement: RunRequirement, name: str) -> str:
    """The value the model already put in the call's arguments for field ``name``, as editable text."""
    arguments = requirement.tool_execution.tool_args
    if name not in arguments:
        return ""
    value = arguments[name]
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


class PausedRun(VBox):
    """``on_continue(card, approve)``: approve is True / False for Approve / Reject, None for Continue."""

    def __init__(self, run: RunOutput, number: int, on_continue: OnContinue, *, prompt: bool = True,
                 sent: Widget | None = None, controls_only: bool = False) -> None:
        """``sent``: the run's Sent view, shown under the run (a card inside a variant group has none: the group
        shows it once). ``controls_only``: the fields and buttons alone, under a paused cell's own notice."""
        self.run_id, self.number = run.run_id, number
        self.pending = [r for r in run.requirements if not r.resolved]
        self.fields: dict[str, Text] = {}  # one box per field name: continue_run takes one user_input dict
        self.results: dict[str, Textarea] = {}  # tool call id → its externally computed result
        self.message = Label(style=LabelStyle(text_color=theme.ERROR_LABEL))
        rows: list = [] if controls_only else [HTML(render_run(run, number, prompt=prompt)), *([sent] if sent else [])]
        for requirement in self.pending:
            rows.append(self._ask(requirement))
        self.approve: Button | None = None  # only the buttons this run's questions need
        self.reject: Button | None = None
        self.submit: Button | None = None
        if any(r.kind == "confirmation" for r in self.pending):
            self.approve = Button(description="Approve", icon="check", button_style="success")
            self.reject = Button(description="Reject", icon="times", button_style="danger")
            # ipywidgets' success green under its text is 4.1:1 (light) and 4.3:1 (dark): one darker green, 5.1:1
            self.approve.style.button_color, self.approve.style.text_color = "#2e7d32", "#fff"
            self.approve.on_click(lambda _b: on_continue(self, True))
            self.reject.on_click(lambda _b: on_continue(self, False))
            buttons = [self.approve, self.reject]
        else:
            self.submit = Button(description="Continue", icon="play", button_style="primary")
            self.submit.on_click(lambda _b: on_continue(self, None))
            buttons = [self.submit]
        super().__init__([*rows, HBox([*buttons, self.message], layout=Layout(align_items="center"))],
                         layout=Layout(margin="4px 0"))
        self.add_class("nbsessions-paused-controls" if controls_only else "nbsessions-paused")

    @property
    def buttons(self) -> list[Button]:
        return [b for b in (self.approve, self.reject, self.submit) if b is not None]

    def _ask(self, requirement: RunRequirement) -> VBox:
        name = requirement.tool_name
        kind = requirement.kind
        words = html.escape(_KIND_WORDS.get(kind, kind))  # the call's arguments are on the tool line above
        title = HTML(f'<div style="{_CARD_STYLE}"><b>{html.escape(name)}</b> {words}</div>')
        inputs: list = []
        if kind == "user_input":
            for field in requirement.field_names:
                if field not in self.fields:
                    self.fields[field] = Text(value=_proposed(requirement, field), description=str(field),
                                              placeholder="text, or JSON such as 5 or true",
                                              layout=Layout(width="420px"), style={"description_width": "120px"})
                    inputs.append(self.fields[field])
        elif kind == "external_execution":
            call_id = requirement.tool_call_id
            self.results[call_id] = Textarea(placeholder=f"the result of {name}, as the model should read it",
                                             rows=3, layout=Layout(width="95%"))
            inputs.append(self.results[call_id])
        return VBox([title, *inputs])

    def answers(self) -> tuple[dict[str, Any], dict[str, str]]:
        """(user_input, results) for ``continue_run``; ``ValueError`` naming what is still empty."""
        empty = [name for name, box in self.fields.items() if not box.value.strip()]
        empty += [f"the result of {r.tool_name}" for r in self.pending
                  if r.kind == "external_execution" and not self.results[r.tool_call_id].value]
        if empty:
            raise ValueError(f"fill in {', '.join(empty)} first")
        return ({name: parse_value(box.value) for name, box in self.fields.items()},
                {call_id: box.value for call_id, box in self.results.items()})
