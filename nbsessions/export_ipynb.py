"""A session as a Jupyter notebook: one ``%%agent`` cell per run, its reply saved as the cell's output.

The outputs are the ones the live cell showed — ``render.reply_bundle``'s sanitised HTML and plain text with the
footer — so the file opens with every reply visible and nothing in it can run. Prompts are written so that running
the cell again sends the same text (``{field}`` braces are escaped). Built from stored records only: no API key.
"""

from __future__ import annotations

import html
import sys
import time
from types import ModuleType
from typing import Any

from nbsessions.formatting import tokens, when
from nbsessions.render import format_cost, format_in_out, reply_bundle
from nbsessions.schema import Metrics, RunOutput, RunStatus, Session
from nbsessions.templating import escape_prompt

IPYNB_FORMAT = "nbsessions.ipynb"
IPYNB_VERSION = 1
KERNEL_NAME = "python3"  # the name ipykernel installs its kernelspec under


def _v4() -> ModuleType:
    """``nbformat.v4``, imported on the first export: nbformat brings jsonschema (~1 s to import), which
    ``%load_ext nbsessions`` must not pay for an export nobody asked for yet."""
    from nbformat import v4

    return v4


def kernel_language_info() -> dict[str, Any]:
    """``language_info`` as the kernel reports it on connect: the exporting kernel's own, else ipykernel's for this
    Python. JupyterLab writes what the kernel reports into the notebook, so anything less marks it unsaved."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    info = getattr(getattr(shell, "kernel", None), "language_info", None)
    if isinstance(info, dict) and info.get("name"):
        return dict(info)
    return {"name": "python", "version": sys.version.split()[0], "mimetype": "text/x-python",
            "codemirror_mode": {"name": "ipython", "version": sys.version_info[0]},
            "pygments_lexer": "ipython3", "nbconvert_exporter": "python", "file_extension": ".py"}


def kernelspec() -> dict[str, str]:
    """The installed ``python3`` kernelspec as JupyterLab writes it on connect (name, display name, language);
    ipykernel's own display name when no spec can be read."""
    display_name = f"Python {sys.version_info[0]} (ipykernel)"
    try:
        from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

        display_name = KernelSpecManager().get_kernel_spec(KERNEL_NAME).display_name or display_name
    except (ImportError, NoSuchKernel, OSError, ValueError):
        pass
    return {"name": KERNEL_NAME, "display_name": display_name, "language": "python"}


def _title(session: Session, top: list[RunOutput]) -> str:
    """Name, user, model(s), totals: what the notebook is, before any run."""
    totals = Metrics.total([r.metrics for r in top if r.status == RunStatus.completed])
    models = ", ".join(dict.fromkeys(r.model for r in top if r.model)) or "none"
    statuses = {s: sum(1 for r in top if r.status == s) for s in RunStatus}
    other = ", ".join(f"{n} {s.value}" for s, n in statuses.items() if n and s != RunStatus.completed)
    superseded = sum(1 for r in top if r.superseded_by)
    runs = f"{len(top)} ({statuses[RunStatus.completed]} completed" + (f", {other}" if other else "") + \
        (f", {superseded} superseded" if superseded else "") + ")"
    lines = [
        f"# {html.escape(session.session_name or 'Session ' + session.session_id[:8])}",
        "",
        f"- session: `{session.session_id}`",
        f"- user: {html.escape(session.user_id) if session.user_id else '(none)'}",
        f"- model(s): {html.escape(models)}",
        f"- runs: {runs}",
        f"- tokens: {format_in_out(totals, ' in / ')} out · "
        f"{format_cost(totals.cost)} · created {when(session.created_at)}",
        "",
        "Exported by nbsessions. The outputs are the saved replies; to continue the session, point the notebook "
        "at the original database with `%agent db PATH` before running a cell.",
    ]
    return "\n".join(lines)


def _marks(run: RunOutput) -> list[str]:
    marks = [] if run.status == RunStatus.completed else [run.status.value]
    if run.superseded_by:
        marks.append("superseded")
    return marks


def _text(lines: list[str]) -> list[Any]:
    return [_v4().new_output("stream", name="stdout", text="\n".join(lines) + "\n")] if lines else []


def _steps(run: RunOutput) -> list[str]:
    """A workflow's steps as plain text (inert wherever it is shown), before its final output as in the cell."""
    lines = []
    for i, step in enumerate(run.steps, 1):
        detail = step.error if step.status == RunStatus.error else step.output
        lines.append(f"step {i} · {step.name or '?'} · {step.kind or '?'} · {step.status.value}"
                     + (f": {' '.join(str(detail).split())[:300]}" if detail else ""))
    return lines


def _members(run: RunOutput, nested: list[RunOutput]) -> list[str]:
    """A team's member runs on one line, after its reply as in the cell."""
    if run.kind != "team":
        return []
    members = [f"{m.agent_name or m.model or 'member'} · {tokens(m.metrics.total_tokens, m.metrics.tokens_estimated)} "
               f"tokens · {m.status.value}"
               for m in nested]
    return ["members: " + (" | ".join(members) or "no member was asked")]


def _outputs(run: RunOutput, label: str, nested: list[RunOutput]) -> list[Any]:
    """What the live cell ended with: the reply and footer, then an error line or a note on what the run was."""
    v4 = _v4()
    outputs: list[Any] = _text(_steps(run))
    if run.content or run.status == RunStatus.completed:
        outputs.append(v4.new_output("display_data", data=reply_bundle(run, label)))
    outputs += _text(_members(run, nested))
    if run.status == RunStatus.error:
        message = run.error or "the model failed"
        outputs.append(v4.new_output("error", ename="ModelError", evalue=message,
                                     traceback=[f"\x1b[0;31mModelError\x1b[0m: {message}"]))
    notes = []
    if run.status in (RunStatus.cancelled, RunStatus.paused):
        notes.append(f"{run.status.value}: {run.error or 'the run did not finish'}")
    if run.superseded_by:
        notes.append(f"superseded by run {run.superseded_by[:8]}: later runs did not see this one as history")
    if notes:
        outputs.append(v4.new_output("stream", name="stdout", text="\n".join(notes) + "\n"))
    return outputs


def _run_cell(run: RunOutput, number: int, session: Session, nested: list[RunOutput]) -> Any:
    prompt = escape_prompt(run.input)
    cell = _v4().new_code_cell(source=f"%%agent -s {session.session_id[:8]}\n{prompt}",
                            execution_count=number, outputs=_outputs(run, session.label_with_id, nested))
    cell.metadata["nbsessions"] = {"run_id": run.run_id, "status": run.status.value, "model": run.model,
                                   "kind": run.kind, "superseded_by": run.superseded_by,
                                   "created_at": run.created_at}
    if _marks(run):
        cell.metadata["tags"] = [f"nbsessions-{m}" for m in _marks(run)]
    return cell


def session_notebook(session: Session, runs: list[RunOutput]) -> Any:
    """The session as an ``nbformat`` v4 notebook (validated), one cell per top-level run; a team's member runs
    and a workflow's steps are listed as text under their run (their tokens are already in its totals)."""
    import nbformat

    v4 = _v4()
    top = [r for r in runs if not r.parent_run_id]
    nb = v4.new_notebook()
    nb.metadata["kernelspec"] = kernelspec()
    nb.metadata["language_info"] = kernel_language_info()
    nb.metadata["nbsessions"] = {"format": IPYNB_FORMAT, "version": IPYNB_VERSION, "exported_at": time.time(),
                                 "session_id": session.session_id, "session_name": session.session_name,
                                 "user_id": session.user_id}
    nb.cells = [v4.new_markdown_cell(_title(session, top)), v4.new_code_cell("%load_ext nbsessions")]
    nested = {r.run_id: [n for n in runs if n.parent_run_id == r.run_id] for r in top if r.kind == "team"}
    nb.cells += [_run_cell(run, number, session, nested.get(run.run_id, [])) for number, run in enumerate(top, 1)]
    nbformat.validate(nb)
    return nb


def session_ipynb(session: Session, runs: list[RunOutput]) -> str:
    import nbformat

    return nbformat.writes(session_notebook(session, runs))
