"""Async concurrency: 20 concurrent ``arun``s in one session against a loopback server that answers after 200 ms.

    python benchmarks/bench_async.py [--repeat N] [--no-readme]

``arun`` drives the run engine on ``AsyncOpenAI``, so 20 runs on one event loop wait on the server together:
the ideal is one latency, 200 ms, and the target is 1.5× of it. Baselines from the same run: one ``arun`` alone
(the latency plus one run's own overhead), the same 20 requests through the raw ``AsyncOpenAI`` SDK with nothing
stored (what the SDK, the server and the machine cost on their own), and the 20 prompts through sync ``run`` one
after another (what a loop of ``run`` calls costs). The server (``tests/openai_server.py``) runs in its own
process, as a real one would. The table goes into benchmarks/README.md between the ``bench_async`` markers.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import cli  # noqa: E402
from loopback import server_in_process  # noqa: E402

from nbsessions import Agent, RunStatus  # noqa: E402
from nbsessions.db import InMemoryDb, TinyDb  # noqa: E402
from nbsessions.llm import OpenAIChat  # noqa: E402

RUNS, LATENCY_MS, TARGET = 20, 200.0, 1.5
IDEAL = LATENCY_MS / 1000
KEY = "bench-key"  # the loopback server ignores it; a real key is never sent anywhere
START, END = "<!-- bench_async -->", "<!-- /bench_async -->"


async def median_time(fn: Callable[[], Awaitable[Any]], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        await fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def concurrent(agent: Agent) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        before = len(agent.get_runs(agent.session_id)) if agent.session_id else 0
        runs = await asyncio.gather(*(agent.arun(f"prompt {i}") for i in range(RUNS)))
        assert {r.status for r in runs} == {RunStatus.completed}, [r.error for r in runs]
        assert len({r.session_id for r in runs}) == 1, "the runs were not in one session"
        assert len(agent.get_runs(runs[0].session_id)) == before + RUNS, "the session lost runs"

    return run


def raw_sdk(base_url: str) -> Callable[[], Awaitable[None]]:
    """The same 20 requests straight through ``openai.AsyncOpenAI``, nothing stored: what the SDK, the server
    and the machine cost on their own."""
    import openai

    client = openai.AsyncOpenAI(base_url=base_url, api_key=KEY, max_retries=0)

    async def one(i: int) -> str:
        reply = await client.chat.completions.create(model="bench", messages=[{"role": "user",
                                                                                  "content": f"prompt {i}"}])
        return reply.choices[0].message.content or ""

    async def run() -> None:
        replies = await asyncio.gather(*(one(i) for i in range(RUNS)))
        assert all(replies), "the baseline lost replies"

    return run


def alone(agent: Agent) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        assert (await agent.arun("one prompt")).status == RunStatus.completed

    return run


def sequential(agent: Agent) -> Callable[[], Awaitable[None]]:
    async def run() -> None:  # sync ``run`` on purpose: the loop of blocking calls people write without arun
        for i in range(RUNS):
            assert agent.run(f"prompt {i}").status == RunStatus.completed

    return run


async def measure(base_url: str, tmp: str, repeat: int) -> list[tuple[str, float, bool]]:
    def agent(db: Any) -> Agent:
        return Agent(model=OpenAIChat("bench", base_url=base_url, api_key=KEY, max_retries=0), db=db)

    memory, tiny = agent(InMemoryDb()), agent(TinyDb(Path(tmp) / "bench.json"))
    raw = raw_sdk(base_url)
    for warm in (concurrent(memory), concurrent(tiny), raw):  # imports, the loop's clients, connection pools
        await warm()
    return [
        ("one `arun` alone (baseline)", await median_time(alone(memory), repeat), False),
        (f"{RUNS} concurrent requests, raw `AsyncOpenAI` (baseline)", await median_time(raw, repeat), False),
        (f"{RUNS} concurrent `arun`s, one session, InMemoryDb", await median_time(concurrent(memory), repeat), True),
        (f"{RUNS} concurrent `arun`s, one session, TinyDb file", await median_time(concurrent(tiny), repeat), True),
        (f"{RUNS} sync `run`s one after another (baseline)", await median_time(sequential(memory), 1), False),
    ]


def table(results: list[tuple[str, float, bool]], repeat: int) -> str:
    single = results[0][1]
    lines = [f"`python benchmarks/bench_async.py`: {RUNS} runs, {LATENCY_MS:.0f} ms server latency (server in its "
             f"own process); ideal {IDEAL * 1000:.0f} ms (one latency); median of {repeat}. "
             f"{cli.measured_on()}.", "",
             "| run | wall time | / 200 ms | / one run alone | / raw SDK | target | met |",
             "|---|---|---|---|---|---|---|"]
    raw = results[1][1]
    for name, seconds, targeted in results:
        ratio, target, met = cli.against_ideal(seconds, IDEAL, TARGET, targeted)
        lines.append(f"| {name} | {seconds * 1000:.0f} ms | {ratio} | {seconds / single:.2f}× | "
                     f"{seconds / raw:.2f}× | {target} | {met} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="timed repetitions of each case (median kept)")
    parser.add_argument("--no-readme", action="store_true", help="print the table only")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp, server_in_process(LATENCY_MS) as base_url:
        results = asyncio.run(measure(base_url, tmp, args.repeat))
    status = cli.report(table(results, args.repeat), [s / IDEAL <= TARGET if t else None for _, s, t in results],
                        args, (START, END), "## Async concurrency\n\n")
    for name, seconds, targeted in results:
        if targeted:
            print(f"ratio {name}: {seconds / IDEAL:.2f}x of {LATENCY_MS:.0f} ms, "
                  f"{seconds / results[1][1]:.2f}x of the raw SDK")
    return status


if __name__ == "__main__":
    sys.exit(main())
