"""Runs that hold other runs, as cells and ``%agent history`` show them: team runs with their member runs,
workflow runs with their steps.

Member replies, step outputs and errors come from models or user code, so text goes through
``render.markdown_to_html`` (replies, outputs) or ``html.escape`` (names, errors, footers) — nothing else reaches
the page. Every function returns ``(plain, html)`` or a display bundle with both.
"""

from __future__ import annotations

import html
import json
from collections import defaultdict

from nbsessions import theme
from nbsessions.formatting import one_line, tokens, when
from nbsessions.formatting import seconds as _seconds
from nbsessions.render import format_cost, format_footer, markdown_to_html
from nbsessions.schema import RunOutput, RunStatus, StepRecord

Bundle = dict[str, str]
_DIM = 'style="opacity:.7;font-size:85%"'
_INDENT = f'style="margin-left:1.2em;padding-left:8px;border-left:2px solid {theme.BORDER}"'
_ERROR = f'style="color:{theme.ERROR}"'


def run_notes(run: RunOutput) -> str:
    notes = [run.status.value]
    if run.superseded_by:
        notes.append("superseded")
    return ", ".join(notes)


# -- team runs ---------------------------------------------------------------------------------------
def member_names(team_run: RunOutput, members: list[RunOutput]) -> list[str]:
    """Which member made each run: its stored agent name when it has one, else the leader's ``ask_<member>``
    call whose task is the run's input (stored too, so runs of earlier kernels are named), else its model."""
    calls = []
    for message in team_run.messages:
        for call in message.tool_calls or []:
            if str(call.get("name", "")).startswith("ask_"):
                try:
                    task = json.loads(call.get("arguments") or "{}").get("task")
                except (ValueError, AttributeError):
                    task = None
                calls.append([call["name"][4:], task])
    names = []
    for run in members:
        match = next((c for c in calls if c[1] == run.input), None)
        if match is not None:
            calls.remove(match)
        names.append(getattr(run, "agent_name", None) or (match[0] if match else (run.model or "member")))
    return names


def member_summary(team_run: RunOutput, members: list[RunOutput]) -> Bundle:
    """One line under a team reply's footer: each member run's member, tokens and status."""
    if not members:
        parts = ["no member was asked"]
    else:
        parts = [f"{name} · {tokens(run.metrics.total_tokens, run.metrics.tokens_estimated)} tokens · "
                 f"{run.status.value}"
                 for name, run in zip(member_names(team_run, members), members, strict=True)]
    text = "members: " + " | ".join(parts)
    return {"text/html": f'<div class="nbsessions-members" {_DIM}>{html.escape(text)}</div>', "text/plain": text}


# -- workflow runs -----------------------------------------------------------------------------------
def workflow_footer(run: RunOutput, label: str, total: int | None = None) -> str:
    """``workflow NAME · session · steps done · tokens · duration · cost`` (and the error, when it failed).

    ``total`` is the workflow's number of steps when known (a failed run records only the steps it reached).
    """
    m = run.metrics
    done = sum(1 for s in run.steps if s.status == RunStatus.completed)
    steps = f"{done}/{total} steps" if total else f"{done} step{'' if done == 1 else 's'} completed"
    name = "workflow" if run.model in (None, "", "workflow") else f"workflow {run.model}"
    parts = [name, label, steps,
             f"{tokens(m.input_tokens, m.tokens_estimated)} in / "
             f"{tokens(m.output_tokens, m.tokens_estimated)} out tokens", _seconds(m.duration),
             format_cost(m.cost)]
    if run.status != RunStatus.completed:
        parts.append(run.status.value + (f": {one_line(run.error)}" if run.error else ""))
    return " · ".join(parts)


def _step(index: int, step: StepRecord, inner: tuple[str, str] | None = None) -> tuple[str, str]:
    """One step: its name, kind and status, then its output (Markdown) or its error (one escaped line)."""
    head = f"step {index} · {step.name or '?'} · {step.kind or '?'} · {step.status.value}"
    if step.status == RunStatus.error:
        error = one_line(step.error or "failed")
        plain, body = f"{head}\n  error: {error}", f'<div {_ERROR}>error: {html.escape(error)}</div>'
    else:
        output = str(step.output or "")
        plain = f"{head}\n{_indent(output, 1)}" if output else head
        body = markdown_to_html(output)
    if inner is not None:
        plain, body = f"{plain}\n{inner[0]}", body + inner[1]
    return plain, (f'<div class="nbsessions-step"><div {_DIM}><b>{html.escape(head)}</b></div>'
                   f"<div {_INDENT}>{body}</div></div>")


def _steps(run: RunOutput, tree: _Tree | None = None, depth: int = 0) -> tuple[str, str]:
    """A workflow run's steps; with ``tree``, a team step's member runs are folded under the step."""
    parts = []
    for i, step in enumerate(run.steps, 1):
        step_run = tree.by_id.get(step.run_id or "") if tree else None
        nested = tree.children.get(step_run.run_id) if tree and step_run else None
        parts.append(_step(i, step, tree.folded(step_run, nested, depth + 1) if tree and nested else None))
    return "\n".join(p for p, _ in parts), "".join(h for _, h in parts)


def workflow_bundle(run: RunOutput, label: str, total: int | None = None) -> Bundle:
    """A finished (or failed) workflow run in its cell: each step, the final output, the footer."""
    steps_plain, steps_html = _steps(run)
    footer = workflow_footer(run, label, total)
    final_plain = f"\n\n{run.content}" if run.content else ""
    final_html = (f'<div class="nbsessions-final"><div {_DIM}><b>final output</b></div>'
                  f"{markdown_to_html(run.content)}</div>") if run.content else ""
    return {"text/html": f'<div class="nbsessions-workflow">{steps_html}{final_html}'
                         f'<div class="nbsessions-footer" {_DIM}>{html.escape(footer)}</div></div>',
            "text/plain": f"{steps_plain}{final_plain}\n\n— {footer}"}


# -- %agent history ----------------------------------------------------------------------------------
def _indent(text: str, depth: int) -> str:
    pad = "    " * depth
    return "\n".join(pad + line if line else line for line in str(text).splitlines())


class _Tree:
    """A session's runs as a tree: top-level runs, and the runs each run made (in the order they were made)."""

    def __init__(self, runs: list[RunOutput], label: str) -> None:
        self.label = label
        self.by_id = {r.run_id: r for r in runs}
        self.children: dict[str, list[RunOutput]] = defaultdict(list)
        for run in runs:
            if run.parent_run_id in self.by_id:
                self.children[run.parent_run_id].append(run)
        # a run whose parent is gone is shown on its own rather than lost
        self.top = [r for r in runs if r.parent_run_id not in self.by_id]

    def folded(self, parent: RunOutput, kids: list[RunOutput], depth: int) -> tuple[str, str]:
        """Nested runs, indented (plain) and folded in a ``<details>`` (HTML); members carry their names."""
        names = member_names(parent, kids) if parent.kind == "team" else [None] * len(kids)
        parts = [self.run(kid, depth, name) for name, kid in zip(names, kids, strict=True)]
        what = "member run" if parent.kind == "team" else "nested run"
        summary = f"{len(kids)} {what}{'s' if len(kids) != 1 else ''}"
        return ("\n".join(_indent(p, 1) for p, _ in parts),
                f"<details><summary {_DIM}>{html.escape(summary)}</summary><div {_INDENT}>"
                + "".join(h for _, h in parts) + "</div></details>")

    def run(self, run: RunOutput, depth: int = 0, member: str | None = None) -> tuple[str, str]:
        """One run: heading, prompt, steps (workflows), reply, footer, then its nested runs folded."""
        label = "" if depth else self.label  # nested runs are in their parent's session
        kind = "" if run.kind == "agent" else f"{run.kind} · "
        head = (f"{member} · " if member else "") + f"{run.run_id[:8]} · {when(run.created_at)} · {kind}" \
            f"{run_notes(run)}"
        footer = workflow_footer(run, label) if run.kind == "workflow" else format_footer(run, label)
        footer = " · ".join(part for part in footer.split(" · ") if part)
        plain = [f"── {head}", f"> {run.input}"]
        body = f"<blockquote>{markdown_to_html(run.input)}</blockquote>"
        if run.kind == "workflow":
            steps_plain, steps_html = _steps(run, self, depth)
            plain.append(_indent(steps_plain, 1))
            body += steps_html
        plain += [run.content, f"— {footer}"] if run.content else [f"— {footer}"]
        body += f"{markdown_to_html(run.content)}<div {_DIM}>{html.escape(footer)}</div>"
        kids = self.children.get(run.run_id, []) if run.kind != "workflow" else []  # a workflow's are its steps
        if kids:
            inner_plain, inner_html = self.folded(run, kids, depth + 1)
            plain.append(inner_plain)
            body += inner_html
        failed = run.status == RunStatus.error
        look = f'class="nbsessions-error-run" style="color:{theme.ERROR}"' if failed else 'style="opacity:.7"'
        return ("\n".join(plain),
                f'<div class="nbsessions-run"><div {look}>{html.escape(head)}</div>{body}</div>')


def history_view(runs: list[RunOutput], label: str, last: int) -> tuple[str, str]:
    """The newest ``last`` top-level runs of a session (``runs``: all of them, oldest first), newest first as in
    the panel, each with the runs it made folded under it; nested runs are never listed on their own."""
    tree = _Tree(runs, label)
    parts = [tree.run(run) for run in reversed(tree.top[-last:] if last > 0 else [])]
    return "\n\n".join(p for p, _ in parts), "".join(f"{h}<hr>" for _, h in parts)
