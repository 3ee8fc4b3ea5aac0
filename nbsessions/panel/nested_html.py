"""Team and workflow runs in the History tab: member runs and steps folded under the run they belong to.

A team run shows its member runs — member, model, the task it was handed, its reply, status, tokens — in a block
that unfolds. A workflow run shows its steps in order — name, kind, status, output or error — and an agent or team
step unfolds the run it made. Replies, tasks and step outputs go through ``markdown_to_html``; names, kinds,
statuses and errors are escaped: a step function or a model chooses every byte of them. Only the structure
(blocks, labels, numbers) is ours.

``tree_piece`` draws a run with nested runs as widgets: each fold is a ``Fold`` (an ``Accordion``, its title plain
text) whose unfolding the kernel hears, so History keeps it unfolded, by key, when it draws the run anew. A run
without nested runs stays one HTML string, which History shows in a widget it keeps.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Collection
from itertools import groupby

from ipywidgets import HTML, Accordion, Layout, VBox, Widget

from nbsessions.panel import formatting as fmt
from nbsessions.panel.run_html import ERROR_STYLE, META_STYLE, render_run, run_parts, tool_calls
from nbsessions.panel.run_tree import Nested
from nbsessions.panel.sent_view import SentView
from nbsessions.presentation.render import markdown_to_html
from nbsessions.records import theme
from nbsessions.records.metrics import Metrics
from nbsessions.records.schema import RunOutput, RunStatus, StepRecord

STEP_STYLE = f"margin:4px 0;padding-left:8px;border-left:3px solid {theme.BORDER}"
MEMBER_TOOL = "ask_"  # a team leader hands a task to member X with the tool ask_X
OnToggle = Callable[[str, bool], None]  # (fold key, unfolded)
UNDER_WAY = f'<div style="{META_STYLE}">runs of steps under way</div>'
# blocks drawn as widgets look as their HTML would (run_html.RUN_STYLE, NESTED_STYLE, and STEP_STYLE)
BOXES = {"nbsessions-run": {"border_top": f"1px solid {theme.BORDER}", "padding": "6px 0"},
         "nbsessions-nested-run": {"border_left": f"2px solid {theme.BORDER}", "padding": "2px 0 2px 8px",
                                   "margin": "4px 0"},
         "nbsessions-step": {"border_left": f"3px solid {theme.BORDER}", "padding": "0 0 0 8px", "margin": "4px 0"}}


def _render(run: RunOutput, number: int | None, *, prompt: bool = True, title: str = "") -> str:
    """A run with nothing nested under it as one HTML block (a workflow's steps listed, none with a run of its
    own yet). ``title`` is escaped HTML naming a nested run (a member's name)."""
    inner = _steps_html(run) if run.kind == "workflow" else ""
    css = "nbsessions-run" if number is not None else "nbsessions-nested-run"
    return render_run(run, number, prompt=prompt, kind=_label(run, [], title), inner=inner, css=css)


def _label(run: RunOutput, children: list[RunOutput], title: str) -> str:
    """The header's ``<b>writer</b> · team · 2 member runs``: who (escaped HTML), kind and what is nested."""
    detail = ""
    if run.kind == "workflow":
        detail = fmt.counted(len(run.steps), "step")
    elif children:
        detail = fmt.counted(len(children), "member run" if run.kind == "team" else "nested run")
    return " · ".join(part for part in (title, fmt.kind_label(run.kind, detail)) if part)


# -- teams -----------------------------------------------------------------------------------------
def member_names(team_run: RunOutput, members: list[RunOutput]) -> tuple[dict[str, str], frozenset[str]]:
    """Which member made each run, from the leader's ``ask_<member>`` calls: a member run's input is the task
    its call handed over. Returns {member run id: member name} and the ids of the calls so matched."""
    calls = []
    for call, _result in tool_calls(team_run):
        name = str(call.get("name") or "")
        if name.startswith(MEMBER_TOOL):
            try:
                task = json.loads(call.get("arguments") or "{}").get("task")
            except (ValueError, AttributeError):
                continue
            calls.append((call.get("id"), name[len(MEMBER_TOOL):], task))
    names: dict[str, str] = {}
    used: set = set()
    for run in members:
        match = next((c for c in calls if c[0] not in used and c[2] == run.input), None)
        if match is not None:
            used.add(match[0])
        if run.agent_name or match is not None:
            names[run.run_id] = run.agent_name or match[1]
    return names, frozenset(used)


def _members_line(run: RunOutput, children: list[RunOutput], names: dict[str, str]) -> str:
    """``2 member runs: researcher, writer · 19 tokens`` as plain text (the caller escapes it for HTML)."""
    who = ", ".join(names.get(c.run_id) or c.model or "?" for c in children)
    summed = Metrics.total([c.metrics for c in children])  # ``~`` when any member's count is estimated
    tokens = fmt.tokens(summed.total_tokens, summed.tokens_estimated)
    noun = "member run" if run.kind == "team" else "nested run"
    return f"{fmt.counted(len(children), noun)}: {who} · {tokens} tokens"


def _name(name: str | None) -> str:
    return f"<b>{html.escape(name)}</b>" if name else ""


# -- workflows -------------------------------------------------------------------------------------
def _steps_html(run: RunOutput) -> str:
    rows = "".join(_step_html(number, step) for number, step in enumerate(run.steps, 1))
    return f'<div class="nbsessions-steps">{rows}</div>' if rows else ""


def _step_html(number: int, step: StepRecord) -> str:
    return f'<div class="nbsessions-step" style="{STEP_STYLE}">{_step_head(number, step)}</div>'


def _step_head(number: int, step: StepRecord) -> str:
    """A step's name, kind and status, then its output or error (all escaped or sanitised)."""
    name, kind = str(step.name or f"step {number}"), str(step.kind or "?")
    head = (f'<div class="nbsessions-step-head" style="{META_STYLE}">step {number} · <b>{html.escape(name)}</b>'
            f' · {html.escape(kind)}{fmt.status_badge(step.status.value)}</div>')
    if step.output is not None:
        head += f'<div class="nbsessions-step-output">{markdown_to_html(str(step.output))}</div>'
    if step.error:
        head += f'<div class="nbsessions-step-error" style="{ERROR_STYLE}">{html.escape(str(step.error))}</div>'
    return head


def _step_run_line(child: RunOutput) -> str:
    """``its agent run · model · 12 tokens · 0.4 s`` as plain text (the caller escapes it for HTML)."""
    m = child.metrics
    return (f"its {child.kind} run · {child.model or '?'} · {fmt.tokens(m.total_tokens, m.tokens_estimated)} tokens · "
            f"{fmt.seconds(m.duration)}")


# -- as widgets ------------------------------------------------------------------------------------
class Block(VBox):
    """A run, a step or a workflow's steps drawn as widgets, named by the class its HTML block has (``css``)."""

    def __init__(self, css: str, children: list[Widget], layout: Layout) -> None:
        self.css = css
        super().__init__(children, layout=layout)
        self.add_class(css)


class Fold(Accordion):
    """Member runs or a step's run, folded; the title is plain text (the browser never parses it) and
    ``on_toggle(key, unfolded)`` hears the user unfold or fold it."""

    def __init__(self, key: str, css: str, title: str, body: Widget, *, unfolded: bool, on_toggle: OnToggle) -> None:
        super().__init__([body], titles=(title,), selected_index=0 if unfolded else None,
                         layout=Layout(margin="0 0 6px 0"))
        self.key, self.css = key, css
        self.add_class(css)
        self.observe(lambda change: on_toggle(key, change["new"] == 0), "selected_index")

    @property
    def unfolded(self) -> bool:
        return self.selected_index == 0


Piece = str | Widget  # safe HTML, or a widget (a block with a fold inside)


class Folding:
    """What drawing folds needs from History: the keys of the folds the user left unfolded (read when a fold is
    made) and whom to tell when one is unfolded or folded. Every widget it makes has looks of its own: a run's
    folds are replaced, and closed with ``close_tree``, whenever that run changes."""

    def __init__(self, unfolded: Collection[str], on_toggle: OnToggle) -> None:
        self.unfolded, self.on_toggle = unfolded, on_toggle

    def widgets(self, pieces: list[Piece]) -> list[Widget]:
        """Each run of HTML pieces in a row as one HTML widget: a fold of plain member runs costs one."""
        out: list[Widget] = []
        for is_html, group in groupby(pieces, key=lambda piece: isinstance(piece, str)):
            parts = list(group)
            out += [HTML("".join(parts))] if is_html else parts
        return out

    def block(self, css: str, pieces: list[Piece]) -> Block:
        return Block(css, self.widgets(pieces), Layout(**BOXES.get(css, {})))

    def fold(self, key: str, css: str, title: str, pieces: list[Piece]) -> Fold:
        widgets = self.widgets(pieces)
        body = widgets[0] if len(widgets) == 1 else VBox(widgets)
        return Fold(key, css, title, body, unfolded=key in self.unfolded, on_toggle=self.on_toggle)


def tree_piece(run: RunOutput, number: int, nested: Nested, folding: Folding, *, prompt: bool = True) -> Piece:
    """A top-level run as one HTML string when nothing is nested under it, else as a ``Block`` with its folds."""
    return _piece(run, number, nested, folding, prompt=prompt)


def tree_widget(run: RunOutput, number: int, nested: Nested, folding: Folding, *, prompt: bool = True) -> Widget:
    """The same as a widget: an HTML widget of its own when nothing is nested."""
    piece = _piece(run, number, nested, folding, prompt=prompt)
    return HTML(piece) if isinstance(piece, str) else piece


def _piece(run: RunOutput, number: int | None, nested: Nested, folding: Folding, *, prompt: bool = True,
           title: str = "") -> Piece:
    """The run as HTML when nothing is nested under it, else as a ``Block`` holding its fold(s)."""
    children = nested.get(run.run_id, [])
    if not children:
        return _render(run, number, prompt=prompt, title=title)
    skip: frozenset[str] = frozenset()
    if run.kind == "workflow":
        middle = _steps_block(run, children, nested, folding)
    else:
        names, skip = member_names(run, children)
        runs = [_piece(child, None, nested, folding, title=_name(names.get(child.run_id))) for child in children]
        line = _members_line(run, children, names) + _flags(children)
        middle = [folding.fold(f"members:{run.run_id}", "nbsessions-members", line, runs)]
    head, tail = run_parts(run, number, prompt=prompt, kind=_label(run, children, title), skip=skip)
    return folding.block("nbsessions-run" if number is not None else "nbsessions-nested-run", [head, *middle, tail])


def _steps_block(run: RunOutput, children: list[RunOutput], nested: Nested, folding: Folding) -> list[Piece]:
    """The steps in order, each step's run in a ``Fold`` keyed by that run's id; nested runs no step names yet
    (a step still running) follow them, so none is hidden."""
    by_id = {child.run_id: child for child in children}
    rows: list[Piece] = []
    for number, step in enumerate(run.steps, 1):
        child = by_id.pop(step.run_id, None) if step.run_id is not None else None
        if child is None:
            rows.append(_step_html(number, step))
            continue
        fold = folding.fold(f"run:{child.run_id}", "nbsessions-step-run", _step_run_line(child) + _flags([child]),
                            [_piece(child, None, nested, folding)])
        rows.append(folding.block("nbsessions-step", [_step_head(number, step), fold]))
    if by_id:
        rows += [UNDER_WAY, *(_piece(child, None, nested, folding) for child in by_id.values())]
    return [folding.block("nbsessions-steps", rows)] if rows else []


def _flags(runs: list[RunOutput]) -> str:
    """`` · error · superseded``: what a fold's title says of folded runs that did not simply complete."""
    words = [r.status.value for r in runs if r.status != RunStatus.completed]
    words += ["superseded" for r in runs if r.superseded_by]
    return "".join(f" · {word}" for word in dict.fromkeys(words))


def tree_markup(widget: Widget) -> str:
    """The HTML a drawn page shows, in order, with each ``Block`` and ``Fold`` as an element of its class (a
    fold's title escaped): one reading of the page for tests and readers, whatever is widget and what HTML."""
    if isinstance(widget, HTML):
        return widget.value
    if isinstance(widget, SentView):
        return widget.body  # what it shows unfolded: a folded one holds only its line
    inner = "".join(tree_markup(child) for child in getattr(widget, "children", ()))
    if isinstance(widget, Fold):
        title = f'<div class="nbsessions-fold-title">{html.escape(widget.titles[0])}</div>'
        return f'<div class="{widget.css}">{title}{inner}</div>'
    if isinstance(widget, Block):
        return f'<div class="{widget.css}">{inner}</div>'
    return inner
