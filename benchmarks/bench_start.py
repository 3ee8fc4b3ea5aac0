"""A fresh kernel's start: ``%load_ext nbsessions`` and the first ``%%agent`` cell, each in a new process.

    python benchmarks/bench_start.py [--repeat N] [--no-readme]

- **load**: ``%load_ext nbsessions`` in a new IPython shell, against the time that shell took to start (target
  <= 1.5x): the extension imports what a first cell needs, nothing more; the ``openai`` SDK warms up in a
  background thread.
- **first cell**: IPython start + ``%load_ext`` + one ``%%agent`` cell (a model on a loopback server, the notebook's
  database a new file, history on as by default), against the floor: IPython start + ``import openai`` + one
  streamed SDK call of the same prompt (target <= 1.5x). The cell runs at once after the load, so the warm-up has
  no time of its own (a user writing the cell gives it that). Beside it, the same comparison in CPU time of the
  whole process (all threads): what the machine's load does not change.

Every sample is a new Python process; the two kinds alternate (A B A B ...) and each ratio is taken pair by pair,
then the median, so a machine that speeds up or slows down between samples moves both. The server
(``tests/openai_server.py``) runs in its own process. The table goes into benchmarks/README.md between the
``bench_start`` markers.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import cli  # noqa: E402
from loopback import server_in_process  # noqa: E402

TARGET = 1.5
START, END = "<!-- bench_start -->", "<!-- /bench_start -->"
PROMPT = "Say hello in five words."

# Each child times from its first line: the interpreter's own start is the same for both kinds.
SHELL = """
import time
t0 = time.perf_counter()
import json, sys
from IPython.core.interactiveshell import InteractiveShell
from traitlets.config import Config
config = Config()
config.HistoryManager.hist_file = ":memory:"
shell = InteractiveShell.instance(config=config)
t_ipython = time.perf_counter()
"""
CELL = SHELL + """
shell.run_line_magic("load_ext", "nbsessions")
t_load = time.perf_counter()
shell.run_line_magic("config", f"AgentMagics.base_url = {sys.argv[1]!r}")
shell.run_line_magic("config", "AgentMagics.model = 'bench'")
result = shell.run_cell("%%agent\\n" + sys.argv[2])
t_cell = time.perf_counter()
assert result.success, result.error_in_exec
print(json.dumps({"ipython": t_ipython - t0, "load": t_load - t_ipython, "total": t_cell - t0}))
"""
FLOOR = SHELL + """
import openai
client = openai.OpenAI(base_url=sys.argv[1], api_key="bench-key")
stream = client.chat.completions.create(model="bench", messages=[{"role": "user", "content": sys.argv[2]}],
                                        stream=True, stream_options={"include_usage": True})
text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
t_call = time.perf_counter()
assert text
print(json.dumps({"ipython": t_ipython - t0, "total": t_call - t0}))
"""


def child(code: str, base_url: str) -> dict[str, float]:
    """One new process in a new working folder (so the cell's database is new): its timings, and the CPU time the
    whole process used (all its threads, the interpreter's start included), which waiting for a core on a busy
    machine does not inflate."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "PYTHONPATH": str(HERE.parent)}
        env.pop("OPENAI_API_KEY", None)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        out = subprocess.run([sys.executable, "-c", code, base_url, PROMPT], cwd=tmp, env=env, capture_output=True,
                             text=True, timeout=300, check=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return {**json.loads(out.stdout.strip().splitlines()[-1]), "cpu": cpu}


def measure(repeat: int) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {k: [] for k in ("ipython", "load", "load_ratio", "cell", "floor",
                                                       "cell_ratio", "cell_cpu", "floor_cpu", "cpu_ratio")}
    with server_in_process(0) as base_url:
        child(CELL, base_url), child(FLOOR, base_url)  # warm up: the disk cache and bytecode of both
        for _ in range(repeat):
            cell, floor = child(CELL, base_url), child(FLOOR, base_url)
            samples["ipython"].append(cell["ipython"])
            samples["load"].append(cell["load"])
            samples["load_ratio"].append(cell["load"] / cell["ipython"])
            samples["cell"].append(cell["total"])
            samples["floor"].append(floor["total"])
            samples["cell_ratio"].append(cell["total"] / floor["total"])
            samples["cell_cpu"].append(cell["cpu"])
            samples["floor_cpu"].append(floor["cpu"])
            samples["cpu_ratio"].append(cell["cpu"] / floor["cpu"])
    return samples


def rows(samples: dict[str, list[float]]) -> list[cli.Row]:
    med = {k: statistics.median(v) for k, v in samples.items()}
    spread = {k: f"{min(v):.2f}–{max(v):.2f}x" for k, v in samples.items() if k.endswith("_ratio")}
    return [
        ("`%load_ext nbsessions` in a new IPython shell", f"{med['load'] * 1000:.0f} ms",
         f"{med['ipython'] * 1000:.0f} ms IPython start", f"{med['load_ratio']:.2f}x ({spread['load_ratio']})",
         f"<= {TARGET}x", med["load_ratio"] <= TARGET),
        ("first `%%agent` cell: IPython start + load + cell", f"{med['cell'] * 1000:.0f} ms",
         f"{med['floor'] * 1000:.0f} ms IPython start + `import openai` + one SDK call",
         f"{med['cell_ratio']:.2f}x ({spread['cell_ratio']})", f"<= {TARGET}x", med["cell_ratio"] <= TARGET),
        ("  the same in CPU time of the whole process", f"{med['cell_cpu'] * 1000:.0f} ms",
         f"{med['floor_cpu'] * 1000:.0f} ms", f"{med['cpu_ratio']:.2f}x ({spread['cpu_ratio']})", "for comparison",
         None),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=9, help="pairs of new processes (medians kept)")
    parser.add_argument("--no-readme", action="store_true", help="print only; leave benchmarks/README.md alone")
    args = parser.parse_args(argv)
    found = rows(measure(args.repeat))
    text = cli.table(f"`python benchmarks/bench_start.py`: each sample a new process, the two kinds alternating; "
                     f"ratios pair by pair, median of {args.repeat} pairs (min–max beside it). {cli.measured_on()}.",
                     found)
    return cli.report(text, [r[5] for r in found], args, (START, END), "## Kernel start\n\n")


if __name__ == "__main__":
    sys.exit(main())
