"""The ``%%agent`` line with a large ``--state``: split into words in time linear in its size.

    python benchmarks/bench_flags.py [--quick] [--no-readme]

IPython's ``arg_split`` (``shlex``) grows each word one character at a time, so a 1 MB ``--state`` took seconds
and a 50 MB one never ended; the magic now splits with ``magic.cellopts.split_args``. Each row times
``parse_cell_line`` (splitting, then argparse) on ``--state '{"k": "xxx…"}' -m offline`` against a linear
baseline from the same run: ``json.loads`` of the same JSON, which the cell does next anyway. IPython's
``arg_split`` on the same line is timed beside it for the sizes where it ends in reasonable time (up to 1 MB).
The table goes into benchmarks/README.md between the ``bench_flags`` markers.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import cli  # noqa: E402
from IPython.utils.process import arg_split  # noqa: E402

from nbsessions.magic.magics import AgentMagics, parse_cell_line  # noqa: E402

SIZES_MB = (0.5, 1.0, 50.0)
OLD_UP_TO_MB = 1.0  # IPython's splitter beyond this takes minutes
TARGET = 3.0  # parse ≤ 3× a json.loads of the same text
START, END = "<!-- bench_flags -->", "<!-- /bench_flags -->"



def measure(sizes: tuple[float, ...], repeat: int) -> list[tuple[float, float, float, float | None]]:
    """(MB, parse_cell_line seconds, json.loads seconds, arg_split seconds or None) per size."""
    rows = []
    for mb in sizes:
        state = json.dumps({"k": "x" * int(mb * 2**20)})
        line = f"--state '{state}' -m offline"
        opts = parse_cell_line(AgentMagics.agent_magic, line)
        assert opts.state == state and opts.model == "offline", "the line was not split as written"
        ours = cli.median_time(lambda line=line: parse_cell_line(AgentMagics.agent_magic, line), repeat)
        baseline = cli.median_time(lambda state=state: json.loads(state), repeat)
        old = cli.median_time(lambda line=line: arg_split(line), 1) if mb <= OLD_UP_TO_MB else None
        rows.append((mb, ours, baseline, old))
    return rows


def table(rows: list[tuple[float, float, float, float | None]], repeat: int) -> str:
    head = [f"`python benchmarks/bench_flags.py`: `parse_cell_line` on `--state '<JSON of N MB>' -m offline`, "
            f"median of {repeat}; baseline `json.loads` of the same JSON (same run). {cli.measured_on()}, load "
            f"average {os.getloadavg()[0]:.1f}.", "",
            "| --state size | nbsessions | baseline (json.loads) | ratio | target | met | IPython arg_split before |",
            "|---|---|---|---|---|---|---|"]
    for mb, ours, baseline, old in rows:
        ratio = ours / baseline
        before = f"{old:.2f} s" if old is not None else "not run (minutes and more: quadratic)"
        head.append(f"| {mb:g} MB | {ours * 1000:.1f} ms | {baseline * 1000:.1f} ms | {ratio:.2f}× | ≤ {TARGET:g}× | "
                    f"{cli.MET[ratio <= TARGET]} | {before} |")
    return "\n".join(head)


def main(argv: list[str] | None = None) -> int:
    args = cli.parse(__doc__, "only 0.5 and 1 MB", argv)
    sizes = SIZES_MB[:2] if args.quick else SIZES_MB
    repeat = 5
    rows = measure(sizes, repeat)
    return cli.report(table(rows, repeat), [r[1] / r[2] <= TARGET for r in rows], args, (START, END),
                      "## A large --state flag\n\n")


if __name__ == "__main__":
    sys.exit(main())
