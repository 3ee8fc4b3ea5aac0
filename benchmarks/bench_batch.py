"""Batch throughput: 100 prompts at concurrency 8 against a loopback server that answers after 50 ms.

    python benchmarks/bench_batch.py [--repeat N] [--server process|thread] [--no-readme]

The ideal is 100 / 8 × 50 ms = 625 ms (latency only, no overhead); ``batch`` should stay within 1.5× of it, also
the **first** batch of a new process (after a one-row ``batch`` as a warm-up, as a user tries a template on one row
first): each such sample is a new Python process. ``batch`` runs with its default retries, as a user's does. A
baseline from the same run — the same 100 streaming calls through the raw ``openai`` SDK on 8 threads — shows
how much of the gap is the SDK and the machine rather than nbsessions. The server (``tests/openai_server.py``,
loaded by path) runs in its own process by default, as a real one would: in this process its threads would
compete with the client for the GIL. The table goes into benchmarks/README.md between the ``bench_batch``
markers; other sections of that file are left alone.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from nbsessions import Agent  # noqa: E402
from nbsessions.db import InMemoryDb, TinyDb  # noqa: E402
from nbsessions.explore import batch  # noqa: E402
from nbsessions.llm import OpenAIChat  # noqa: E402

PROMPTS, CONCURRENCY, LATENCY_MS, TARGET = 100, 8, 50.0, 1.5
IDEAL = PROMPTS / CONCURRENCY * LATENCY_MS / 1000
KEY = "bench-key"  # the loopback server ignores it; a real key is never sent anywhere
import cli  # noqa: E402
from loopback import server_in_process  # noqa: E402

START, END = "<!-- bench_batch -->", "<!-- /bench_batch -->"
SERVER = HERE.parent / "tests" / "openai_server.py"


@contextmanager
def server_in_thread() -> Iterator[str]:
    """``tests/openai_server.py`` imported by path (the tests are not a package), serving from this process."""
    spec = importlib.util.spec_from_file_location("openai_server", SERVER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["openai_server"] = module
    spec.loader.exec_module(module)
    with module.OpenAIServer() as server:
        server.latency_ms = LATENCY_MS
        yield server.base_url



def raw_sdk(base_url: str) -> Callable[[], None]:
    import openai

    client = openai.OpenAI(base_url=base_url, api_key=KEY, max_retries=0)

    def one(i: int) -> str:
        stream = client.chat.completions.create(model="bench", messages=[{"role": "user", "content": f"prompt {i}"}],
                                                stream=True, stream_options={"include_usage": True})
        return "".join(c.choices[0].delta.content or "" for c in stream if c.choices)

    def run() -> None:
        with ThreadPoolExecutor(CONCURRENCY) as pool:
            replies = list(pool.map(one, range(PROMPTS)))
        assert all(replies), "the baseline lost replies"

    return run


def nbsessions_batch(base_url: str, db_factory: Callable[[], Any]) -> Callable[[], None]:
    def run() -> None:
        db = db_factory()
        agent = Agent(model=OpenAIChat("bench", base_url=base_url, api_key=KEY, max_retries=0), db=db)
        result = batch(agent, "prompt {i}", [{"i": i} for i in range(PROMPTS)], concurrency=CONCURRENCY,
                       progress=False)
        db.close()
        assert result.counts() == {"completed": PROMPTS}, result.counts()

    return run


FIRST_BATCH = """
import sys, time
from nbsessions import Agent, InMemoryDb
from nbsessions.explore import batch
from nbsessions.llm import OpenAIChat

agent = Agent(model=OpenAIChat("bench", base_url=sys.argv[1], api_key="bench-key"), db=InMemoryDb())
batch(agent, "prompt {i}", [{"i": 0}], progress=False)  # the warm-up: one row
t0 = time.perf_counter()
result = batch(agent, "prompt {i}", [{"i": i} for i in range(int(sys.argv[2]))], concurrency=int(sys.argv[3]),
               progress=False)
print(time.perf_counter() - t0)
assert result.counts() == {"completed": int(sys.argv[2])}, result.counts()
"""


def first_batch(base_url: str) -> Callable[[], float]:
    """A new process: a one-row batch, then the timed 100-row one (the child times it; the parent's clock also
    holds the interpreter's start and the imports, which are not the batch's)."""
    def run() -> float:
        out = subprocess.run([sys.executable, "-c", FIRST_BATCH, base_url, str(PROMPTS), str(CONCURRENCY)],
                             env={**os.environ, "PYTHONPATH": str(HERE.parent)}, capture_output=True, text=True,
                             timeout=300, check=True)
        return float(out.stdout.strip().splitlines()[-1])

    return run


def measure(repeat: int, where: str) -> list[tuple[str, float, bool | None]]:
    files = iter(range(1_000_000))
    server = server_in_process(LATENCY_MS) if where == "process" else server_in_thread()
    with tempfile.TemporaryDirectory() as tmp, server as base_url:
        cases = [
            ("raw openai SDK, 8 threads (baseline)", raw_sdk(base_url), None),
            ("`batch`, InMemoryDb", nbsessions_batch(base_url, InMemoryDb), True),
            ("`batch`, TinyDb file (one fsync per run)",
             nbsessions_batch(base_url, lambda: TinyDb(Path(tmp) / f"b{next(files)}.json")), None),
        ]
        for _, fn, _ in cases:  # warm up: imports, connection pools, first requests
            fn()
        results = [(name, cli.median_time(fn, repeat), target) for name, fn, target in cases]
        cold = first_batch(base_url)
        results.append(("first `batch` of a new process (after a one-row `batch`), InMemoryDb",
                        statistics.median(cold() for _ in range(repeat)), True))
        return results


def table(results: list[tuple[str, float, bool | None]], repeat: int, where: str) -> str:
    raw = results[0][1]
    lines = [f"`python benchmarks/bench_batch.py`: {PROMPTS} prompts, concurrency {CONCURRENCY}, {LATENCY_MS:.0f} ms "
             f"server latency (server in its own {'process' if where == 'process' else 'thread'}); ideal "
             f"{IDEAL * 1000:.0f} ms; median of {repeat}. {cli.measured_on()}.", "",
             "The raw SDK opens a new connection for each streamed call (it closes the stream at `[DONE]`, before "
             "the body's end); nbsessions' client reads those last bytes and keeps one connection per worker "
             "(`tests/test_keepalive.py`).", "",
             "| run | wall time | / ideal | / raw SDK | target | met |", "|---|---|---|---|---|---|"]
    for name, seconds, targeted in results:
        ratio, target, met = cli.against_ideal(seconds, IDEAL, TARGET, targeted)
        lines.append(f"| {name} | {seconds * 1000:.0f} ms | {ratio} | {seconds / raw:.2f}× | {target} | {met} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="timed repetitions of each case (median kept)")
    parser.add_argument("--server", choices=["process", "thread"], default="process",
                        help="run the loopback server in a child process (default) or in a thread of this one")
    parser.add_argument("--no-readme", action="store_true", help="print only; leave benchmarks/README.md alone")
    args = parser.parse_args(argv)
    results = measure(args.repeat, args.server)
    return cli.report(table(results, args.repeat, args.server),
                      [s / IDEAL <= TARGET if targeted else None for _, s, targeted in results], args, (START, END),
                      "## Batch throughput\n\n")


if __name__ == "__main__":
    sys.exit(main())
