"""Panel benchmark: building the session panel for a 1,000-run session, against baselines from the same run.

    python benchmarks/bench_panel.py [--quick] [--no-readme]

The panel shows the session list, the newest 50 runs (History and Metrics) and the state, so its cost should not
grow with the session. Baselines, measured in the same process: ``json.dumps`` of the session's 1,000 runs, and
constructing as many plain ``ipywidgets.HTML`` widgets as the panel creates. The table goes into
benchmarks/README.md between the ``bench_panel`` markers.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import cli  # noqa: E402
import ipywidgets  # noqa: E402
from bench_storage import template_run  # noqa: E402
from ipywidgets.widgets import widget as widget_module  # noqa: E402

from nbsessions import Agent, InMemoryDb  # noqa: E402
from nbsessions.db.base import BaseDb  # noqa: E402
from nbsessions.panel import SessionPanel, history_view  # noqa: E402
from nbsessions.records.schema import RunOutput, new_id  # noqa: E402

START, END = "<!-- bench_panel -->", "<!-- /bench_panel -->"
TARGET_MS = 100.0
RUNS = 1000
Row = tuple[str, float, str, str, bool | None]  # measure, median ms, baseline, ratio, met


Timed = tuple[Callable[[], Any], Callable[[Any], Any] | None]  # (measured call, untimed clean-up of its result)


def interleaved_medians(steps: dict[str, Timed], repeat: int) -> dict[str, float]:
    """Median ms of each step, taking turns, so a busy neighbour slows measure and baseline alike."""
    samples: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeat):
        for name, (fn, after) in steps.items():
            t0 = time.perf_counter()
            result = fn()
            samples[name].append(time.perf_counter() - t0)
            if after is not None:
                after(result)
    return {name: statistics.median(values) * 1000 for name, values in samples.items()}


TOOL_CALL = {"id": "call_1", "name": "describe_frame", "arguments": json.dumps({"name": "sales", "rows": 5})}
TOOL_RESULT = json.dumps({"columns": ["region", "units", "revenue"], "rows": 1204, "nulls": {"units": 3}})


def with_tool_call(record: dict[str, Any], result: bool = True) -> dict[str, Any]:
    """The run called a tool before answering (or waits before calling it, when ``result`` is False)."""
    *earlier, reply = record["messages"]
    steps = [{"role": "assistant", "content": None, "tool_calls": [TOOL_CALL]}]
    if result:
        steps.append({"role": "tool", "content": TOOL_RESULT, "tool_call_id": TOOL_CALL["id"]})
    return {**record, "messages": [*earlier, *steps, reply] if result else [*earlier, *steps]}


def big_session_records(template: dict[str, Any], session_id: str) -> list[dict[str, Any]]:
    """The long session: every 5th run calls a tool; the newest are a prompt with two variants and a paused run."""
    records = [{**template, "run_id": new_id(), "session_id": session_id, "created_at": time.time() + i * 1e-3}
               for i in range(RUNS)]
    records = [with_tool_call(r) if i % 5 == 0 else r for i, r in enumerate(records)]
    original, variant, paused = records[-3:]
    original["superseded_by"] = variant["run_id"]
    variant["variant_of"] = original["run_id"]
    records[-1] = {**with_tool_call(paused, result=False), "status": "paused", "content": "", "requirements": [
        {"tool_call_id": "call_1", "tool_name": TOOL_CALL["name"], "arguments": TOOL_CALL["arguments"],
         "kind": "confirmation", "fields": [], "resolved": False}]}
    return records


def fill(db: BaseDb, template: dict[str, Any]) -> tuple[Agent, str]:
    """One 1,000-run session (active) among 30 small ones, written through the public API."""
    agent = Agent(db=db)
    for i in range(30):
        small = agent.create_session(f"notebook session {i}", user_id=f"user{i % 3}")
        for _ in range(3):
            db.upsert_run(RunOutput.from_dict({**template, "run_id": new_id(), "session_id": small.session_id}))
    big = agent.create_session("long analysis", user_id="user0")
    for record in big_session_records(template, big.session_id):
        db.upsert_run(RunOutput.from_dict(record))
    agent.set_active_session(big.session_id)
    return agent, big.session_id


def widgets_made_by(fn: Callable[[], Any]) -> int:
    before = len(widget_module._instances)
    result = fn()
    made = len(widget_module._instances) - before
    result.close()
    return made


def bench_store(label: str, db: BaseDb, template: dict[str, Any], repeat: int) -> list[Row]:
    agent, sid = fill(db, template)
    runs = [r.to_dict() for r in agent.get_runs(sid)]
    assert len(runs) == RUNS

    def build() -> SessionPanel:
        return SessionPanel(agent)

    def build_without_sent_views() -> SessionPanel:
        """The baseline for the folded "Sent" view under each run: the same build with it left out."""
        real, history_view.sent_view = history_view.sent_view, lambda *_args, **_kw: None
        try:
            return SessionPanel(agent)
        finally:
            history_view.sent_view = real

    def close_all(made: Any) -> None:
        for item in made if isinstance(made, list) else [made]:
            item.close()

    warm = build()  # warm imports and caches that a second panel in a notebook would find warm too
    assert len(warm.history.paused) == 1 and len(warm.history.variant_groups) == 1, "not the page described"
    warm.close()
    widgets = widgets_made_by(build)
    panel = build()
    ms = interleaved_medians({
        "build": (build, close_all),
        "dumps": (lambda: json.dumps(runs), None),
        "html": (lambda: [ipywidgets.HTML("x") for _ in range(widgets)], close_all),
        "refresh": (panel.refresh, None),
        "totals": (lambda: db.session_totals(sid), None),
        "unsent": (build_without_sent_views, close_all),
    }, repeat)
    panel.close()
    panel_ms, dumps_ms, html_ms, refresh_ms, totals_ms, unsent_ms = (
        ms[k] for k in ("build", "dumps", "html", "refresh", "totals", "unsent"))
    return [
        (f"build panel, {label}", panel_ms, f"json.dumps of the {RUNS} runs: {dumps_ms:.1f} ms",
         f"{panel_ms / dumps_ms:.2f}×", panel_ms <= TARGET_MS),
        (f"build panel, {label}", panel_ms, f"{widgets} plain HTML widgets: {html_ms:.1f} ms",
         f"{panel_ms / html_ms:.2f}×", panel_ms <= TARGET_MS),
        (f"redraw after a run (listener / Refresh), {label}", refresh_ms,
         f"json.dumps of the {RUNS} runs: {dumps_ms:.1f} ms", f"{refresh_ms / dumps_ms:.2f}×", None),
        (f"the store's session_totals of the {RUNS}-run session alone, {label}", totals_ms, "", "", None),
        (f"build panel with a folded Sent view under each run, {label}", panel_ms,
         f"the same build without Sent views: {unsent_ms:.1f} ms", f"{panel_ms / unsent_ms:.2f}×", None),
    ]


def table(rows: list[Row], quick: bool, repeat: int) -> str:
    head = ["## Session panel", "", "`python benchmarks/bench_panel.py` rewrites this section: building "
            "`SessionPanel(agent)` (list, 50-run History page, Metrics, State) whose active session has "
            f"{RUNS:,} runs; on its newest page every 5th run called a tool, and the last three are a prompt "
            "with two variants (shown side by side) and a run paused for approval (Approve / Reject).", "",
            f"Python {platform.python_version()}, ipywidgets {ipywidgets.__version__}, {platform.machine()}; "
            f"median of {repeat} builds{' (--quick)' if quick else ''}; a {RUNS}-run active session among 30 "
            f"others; target ≤ {TARGET_MS:.0f} ms per build.", "",
            "| measure | median | baseline (same run) | ratio | target met |", "|---|---|---|---|---|"]
    lines = head + [f"| {m} | {ms:.1f} ms | {base} | {ratio} | {cli.MET[met]} |" for m, ms, base, ratio, met in rows]
    if any(met is False for *_, met in rows):
        lines += ["", "Where a build misses the target, compare it with the store's `session_totals` row: a store "
                  "that answers it by copying every run (`BaseDb`'s default) pays that on every build and redraw; "
                  "`InMemoryDb` and `TinyDb` keep what it needs of each run (top-level?, metrics when completed)."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--no-readme", action="store_true", help="print only; leave benchmarks/README.md alone")
    args = parser.parse_args(argv)
    repeat = 5 if args.quick else 21
    warnings.simplefilter("ignore", DeprecationWarning)
    with contextlib.ExitStack() as stack:
        from nbsessions.db.tinydb import TinyDb

        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        template = template_run(tmp, subject="**frame**")  # Markdown, so History renders some
        rows = bench_store("in-memory store", InMemoryDb(), template, repeat)
        db = stack.enter_context(TinyDb(tmp / "bench.nbsessions.json"))
        rows += bench_store("TinyDb file", db, template, repeat)
    return cli.report(table(rows, args.quick, repeat), [met for *_, met in rows], args, (START, END))


if __name__ == "__main__":
    raise SystemExit(main())
