"""Event-loop stalls from storage: the longest pause a 5 ms ticker task sees while 20 concurrent ``arun``s run
against a store whose every call takes 10 ms.

    python benchmarks/bench_loop.py [--repeat N] [--no-readme]

nbsessions makes the async API's store calls in worker threads (``asyncio.to_thread``). The baseline, measured in
the same run, is the old behaviour: every store call made on the event loop's own thread. It is reproduced by a
store that hands each call to the loop thread and waits for it there, which blocks the loop exactly as calling it
on the loop did. A ticker task sleeps 5 ms at a time and notes how late it wakes: the longest lateness is the
longest any other task of the kernel (a widget, another run) would have waited. The model is the loopback server
(``tests/openai_server.py``, its own process, 200 ms per reply). The table goes into benchmarks/README.md between
the ``bench_loop`` markers.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import cli  # noqa: E402
from loopback import server_in_process  # noqa: E402

from nbsessions import Agent, RunStatus  # noqa: E402
from nbsessions.db import InMemoryDb  # noqa: E402
from nbsessions.llm import OpenAIChat  # noqa: E402

RUNS, LATENCY_MS, STORE_MS, TICK_MS = 20, 200.0, 10.0, 5.0
TARGET = 0.2  # the longest stall, at most this fraction of the old behaviour's
KEY = "bench-key"  # the loopback server ignores it; a real key is never sent anywhere
START, END = "<!-- bench_loop -->", "<!-- /bench_loop -->"
CALLS = ("get_session", "list_sessions", "create_session", "upsert_session", "update_session", "delete_session",
         "upsert_run", "upsert_run_if_session", "claim_run", "get_run", "list_runs", "session_totals", "get_meta",
         "set_meta")


class SlowDb(InMemoryDb):
    """An in-memory store whose every call takes ``STORE_MS`` first, as a remote or busy store's would."""

    on_loop: asyncio.AbstractEventLoop | None = None  # set: every call is made on this loop's thread (old way)
    loop_thread: int | None = None


def _slow(name: str) -> Any:
    plain = getattr(InMemoryDb, name)

    def call(self: SlowDb, *args: Any, **kwargs: Any) -> Any:
        def work() -> Any:
            time.sleep(STORE_MS / 1000)
            return plain(self, *args, **kwargs)

        if self.on_loop is None or threading.get_ident() == self.loop_thread:
            return work()
        done: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def on_loop() -> None:
            try:
                done.set_result(work())
            except BaseException as exc:  # noqa: BLE001 - handed back to the caller
                done.set_exception(exc)

        self.on_loop.call_soon_threadsafe(on_loop)
        return done.result()

    return call


for _name in CALLS:
    setattr(SlowDb, _name, _slow(_name))


async def ticker(stop: asyncio.Event) -> float:
    """The longest time the loop kept a 5 ms sleeper waiting beyond its 5 ms."""
    worst = 0.0
    while not stop.is_set():
        t0 = time.perf_counter()
        await asyncio.sleep(TICK_MS / 1000)
        worst = max(worst, time.perf_counter() - t0 - TICK_MS / 1000)
    return worst


async def one_round(base_url: str, on_loop: bool) -> tuple[float, float]:
    """(wall time, longest stall) of 20 concurrent ``arun``s in one session on a fresh slow store."""
    db = SlowDb()
    if on_loop:
        db.on_loop, db.loop_thread = asyncio.get_running_loop(), threading.get_ident()
    agent = Agent(model=OpenAIChat("bench", base_url=base_url, api_key=KEY, max_retries=0), db=db)
    await agent.arun("warm up")  # the session, the client's connection pool
    stop = asyncio.Event()
    ticking = asyncio.create_task(ticker(stop))
    t0 = time.perf_counter()
    runs = await asyncio.gather(*(agent.arun(f"prompt {i}") for i in range(RUNS)))
    wall = time.perf_counter() - t0
    stop.set()
    stall = await ticking
    assert {r.status for r in runs} == {RunStatus.completed}, [r.error for r in runs]
    assert len(agent.get_runs()) == RUNS + 1, "the session lost runs"
    return wall, stall


async def measure(base_url: str, repeat: int) -> dict[bool, tuple[float, float, float]]:
    """Per mode (on the loop or not): the median wall time, the median of each round's longest stall and the
    longest stall of all over ``repeat`` rounds, the two modes alternating so the machine's load falls on both."""
    samples: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
    for _ in range(repeat):
        for on_loop in (False, True):
            samples[on_loop].append(await one_round(base_url, on_loop))
    return {mode: (statistics.median(w for w, _ in rounds), statistics.median(s for _, s in rounds),
                   max(s for _, s in rounds)) for mode, rounds in samples.items()}


def table(results: dict[bool, tuple[float, float, float]], repeat: int) -> tuple[str, list[bool | None]]:
    (wall, stall, worst), (old_wall, old_stall, old_worst) = results[False], results[True]
    met = stall <= TARGET * old_stall
    rows: list[cli.Row] = [
        ("longest event-loop stall of a round (5 ms ticker), median", f"{stall * 1000:.1f} ms",
         f"{old_stall * 1000:.1f} ms", f"{stall / old_stall:.2f}×", f"≤ {TARGET}×", met),
        ("longest event-loop stall of all rounds", f"{worst * 1000:.1f} ms", f"{old_worst * 1000:.1f} ms",
         f"{worst / old_worst:.2f}×", "", None),
        (f"wall time of {RUNS} concurrent `arun`s, median", f"{wall * 1000:.0f} ms", f"{old_wall * 1000:.0f} ms",
         f"{wall / old_wall:.2f}×", "", None),
    ]
    preface = (f"`python benchmarks/bench_loop.py`: {RUNS} concurrent `arun`s in one session, each store call "
               f"taking {STORE_MS:.0f} ms, {LATENCY_MS:.0f} ms server latency (server in its own process); "
               f"nbsessions makes store calls in worker threads, the baseline (the old behaviour, same run) on the "
               f"loop's thread; {repeat} rounds of each, alternating. {cli.measured_on()}, "
               f"load average {os.getloadavg()[0]:.1f} (other work on the machine stalls the loop too).")
    return cli.table(preface, rows, ratio="/ baseline"), [met]


def main(argv: list[str] | None = None) -> int:
    args = cli.parse_repeat(__doc__, argv)
    with server_in_process(LATENCY_MS) as base_url:
        results = asyncio.run(measure(base_url, args.repeat))
    text, met = table(results, args.repeat)
    return cli.report(text, met, args, (START, END), "## Event-loop stalls from storage\n\n")


if __name__ == "__main__":
    sys.exit(main())
