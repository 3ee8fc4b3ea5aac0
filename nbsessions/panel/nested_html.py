"""Team and workflow runs in the History tab: member runs and steps folded under the run they belong to.

A team run shows its member runs — member, model, the task it was handed, its reply, status, tokens — in a block
that unfolds. A workflow run shows its steps in order — name, kind, status, output or error — and an agent or team
step unfolds the run it made. Replies, tasks and step outputs go through ``markdown_to_html``; names, kinds,
statuses and errors are escaped: a step function or a model chooses every byte of them. Only the structure
(``<details>``, labels, numbers) is ours.
"""

from __future__ import annotations

import html
import json

from nbsessions import theme
from nbsessions.panel import formatting as fmt
from nbsessions.panel.run_html import ERROR_STYLE, META_STYLE, render_run, tool_calls
from nbsessions.panel.run_tree import Nested
from nbsessions.render import markdown_to_html
from nbsessions.schema import RunOutput, StepRecord

FOLD_STYLE = f"margin:4px 0;padding:2px 6px;background:{theme.BOX_BG};border-radius:3px"
STEP_STYLE = f"margin:4px 0;padding-left:8px;border-left:3px solid {theme.BORDER}"
MEMBER_TOOL = "ask_"  # a team leader hands a task to member X with the tool ask_X


def render_tree_run(run: RunOutput, number: int, nested: Nested, *, prompt: bool = True) -> str:
    """A top-level run with what is nested under it; an agent run without nested runs renders as before."""
    return _render(run, number, nested, prompt=prompt)


def _render(run: RunOutput, number: int | None, nested: Nested, *, prompt: bool = True, title: str = "") -> str:
    """``title`` is escaped HTML naming a nested run (a member's name)."""
    children = nested.get(run.run_id, [])
    inner, skip, detail = "", frozenset(), ""
    if run.kind == "workflow":
        inner = _steps(run, children, nested)
        detail = _count(len(run.steps), "step")
    elif children:
        inner, skip = _members(run, children, nested)
        detail = _count(len(children), "member run" if run.kind == "team" else "nested run")
    label = " · ".join(part for part in (title, fmt.kind_label(run.kind, detail)) if part)
    css = "nbsessions-run" if number is not None else "nbsessions-nested-run"
    return render_run(run, number, prompt=prompt, kind=label, inner=inner, skip=skip, css=css)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


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


def _members(run: RunOutput, children: list[RunOutput], nested: Nested) -> tuple[str, frozenset[str]]:
    names, matched = member_names(run, children)
    blocks = "".join(_render(child, None, nested, title=_name(names.get(child.run_id))) for child in children)
    who = ", ".join(html.escape(names.get(c.run_id) or c.model or "?") for c in children)
    tokens = fmt.tokens(sum(c.metrics.total_tokens for c in children))
    noun = "member run" if run.kind == "team" else "nested run"
    summary = f"{_count(len(children), noun)}: {who} · {tokens} tokens{_worst(children)}"
    return (f'<details class="nbsessions-members" style="{FOLD_STYLE}"><summary>{summary}</summary>'
            f"{blocks}</details>"), matched


def _name(name: str | None) -> str:
    return f"<b>{html.escape(name)}</b>" if name else ""


def _worst(runs: list[RunOutput]) -> str:
    """Badges for the statuses among folded runs that are not "completed", so a folded failure still shows."""
    statuses = dict.fromkeys(r.status.value for r in runs)
    return "".join(fmt.status_badge(status) for status in statuses)


# -- workflows -------------------------------------------------------------------------------------
def _steps(run: RunOutput, children: list[RunOutput], nested: Nested) -> str:
    """The steps in order; nested runs no step names yet (a step still running) follow them, so none is hidden."""
    by_id = {child.run_id: child for child in children}
    rows = [_step(i, step, by_id, nested) for i, step in enumerate(run.steps, 1)]
    if by_id:
        rows.append(f'<div style="{META_STYLE}">runs of steps under way</div>'
                    + "".join(_render(child, None, nested) for child in by_id.values()))
    return f'<div class="nbsessions-steps">{"".join(rows)}</div>' if rows else ""


def _step(number: int, step: StepRecord, by_id: dict[str, RunOutput], nested: Nested) -> str:
    name, kind = str(step.name or f"step {number}"), str(step.kind or "?")
    head = (f'<div class="nbsessions-step-head" style="{META_STYLE}">step {number} · <b>{html.escape(name)}</b>'
            f' · {html.escape(kind)}{fmt.status_badge(step.status.value)}</div>')
    body = ""
    if step.output is not None:
        body += f'<div class="nbsessions-step-output">{markdown_to_html(str(step.output))}</div>'
    if step.error:
        body += f'<div class="nbsessions-step-error" style="{ERROR_STYLE}">{html.escape(str(step.error))}</div>'
    child = by_id.pop(step.run_id, None) if step.run_id is not None else None
    if child is not None:
        m = child.metrics
        summary = (f"its {html.escape(child.kind)} run · {html.escape(child.model or '?')} · "
                   f"{fmt.tokens(m.total_tokens)} tokens · {fmt.seconds(m.duration)}{fmt.run_badges(child)}")
        body += (f'<details class="nbsessions-step-run" style="{FOLD_STYLE}"><summary>{summary}</summary>'
                 f"{_render(child, None, nested)}</details>")
    return f'<div class="nbsessions-step" style="{STEP_STYLE}">{head}{body}</div>'
