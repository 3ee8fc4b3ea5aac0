"""Workflow ``Parallel`` blocks: the wall time of 4 agent steps in a ``Parallel`` against the same 4 in a ``Steps``.

    python benchmarks/bench_parallel.py [--repeat N] [--no-readme]

Each agent step asks the loopback server (``tests/openai_server.py``, its own process, 200 ms per reply), so the
wall time is mostly waiting: in order it is about 4 replies, at once about 1. The baseline, measured in the same
run, is the same steps in a ``Steps`` block (one after another); both under ``run`` (branches in threads) and
``arun`` (branches as tasks, all rounds in one event loop as in a kernel), the two blocks alternating so the
machine's load falls on both. The table goes into
benchmarks/README.md between the ``bench_parallel`` markers.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import cli  # noqa: E402
from loopback import server_in_process  # noqa: E402

from nbsessions import Agent, InMemoryDb, OpenAIChat, RunStatus  # noqa: E402
from nbsessions.workflow import Parallel, Step, Steps, Workflow  # noqa: E402

BRANCHES, LATENCY_MS = 4, 200.0
TARGET = 0.4  # at once: at most this fraction of the time in order (the ideal is 1/4)
KEY = "bench-key"  # the loopback server ignores it; a real key is never sent anywhere
START, END = "<!-- bench_parallel -->", "<!-- /bench_parallel -->"


def workflow(base_url: str, at_once: bool) -> Workflow:
    steps = [Step(name=f"research {i}", agent=Agent(name=f"researcher {i}", model=OpenAIChat(
        "bench", base_url=base_url, api_key=KEY, max_retries=0))) for i in range(BRANCHES)]
    block = Parallel(*steps, name="research") if at_once else Steps(name="research", steps=steps)
    return Workflow(name="bench", db=InMemoryDb(), steps=[block])


def timed(flow: Workflow) -> float:
    t0 = time.perf_counter()
    run = flow.run("topic")
    seconds = time.perf_counter() - t0
    assert run.status == RunStatus.completed and len(run.steps) == BRANCHES + 1, run.error
    return seconds


async def atimed(flow: Workflow) -> float:
    t0 = time.perf_counter()
    run = await flow.arun("topic")
    seconds = time.perf_counter() - t0
    assert run.status == RunStatus.completed and len(run.steps) == BRANCHES + 1, run.error
    return seconds


def measure(base_url: str, repeat: int) -> dict[tuple[bool, bool], float]:
    """Median wall time per (arun?, at once?), the two blocks alternating round by round; the ``arun`` rounds in
    one event loop, as in a notebook's kernel."""
    flows = {at_once: workflow(base_url, at_once) for at_once in (False, True)}
    samples: dict[tuple[bool, bool], list[float]] = {}
    for flow in flows.values():
        flow.run("warm up")  # the clients' connection pools
    for _ in range(repeat):
        for at_once in (True, False):
            samples.setdefault((False, at_once), []).append(timed(flows[at_once]))

    async def rounds() -> None:
        for flow in flows.values():
            await flow.arun("warm up")  # the async clients' connection pools, on this loop
        for _ in range(repeat):
            for at_once in (True, False):
                samples.setdefault((True, at_once), []).append(await atimed(flows[at_once]))

    asyncio.run(rounds())
    return {mode: statistics.median(values) for mode, values in samples.items()}


def table(results: dict[tuple[bool, bool], float], repeat: int) -> tuple[str, list[bool | None]]:
    rows: list[cli.Row] = []
    met: list[bool | None] = []
    for use_arun, how in ((False, "`run` (threads)"), (True, "`arun` (tasks)")):
        ours, base = results[(use_arun, True)], results[(use_arun, False)]
        met.append(ours <= TARGET * base)
        rows.append((f"{BRANCHES} agent steps in a Parallel, {how}, median", f"{ours * 1000:.0f} ms",
                     f"{base * 1000:.0f} ms in a Steps", f"{ours / base:.2f}×", f"≤ {TARGET}×", met[-1]))
    preface = (f"`python benchmarks/bench_parallel.py`: {BRANCHES} agent steps, each one reply from the loopback "
               f"server ({LATENCY_MS:.0f} ms per reply, its own process), in a `Parallel` against the same steps "
               f"in a `Steps` block (one after another, same run); {repeat} rounds of each, alternating, "
               f"the `arun` ones in one event loop. "
               f"{cli.measured_on()}.")
    return cli.table(preface, rows, ratio="/ baseline"), met


def main(argv: list[str] | None = None) -> int:
    args = cli.parse_repeat(__doc__, argv)
    with server_in_process(LATENCY_MS) as base_url:
        results = measure(base_url, args.repeat)
    text, met = table(results, args.repeat)
    return cli.report(text, met, args, (START, END), "## Workflow Parallel blocks\n\n")


if __name__ == "__main__":
    sys.exit(main())
