"""What the benchmark scripts share: their flags, their working folder, the timed steps and the report."""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from readme_section import write_section


def parse(doc: str, quick_help: str, argv: list[str] | None) -> argparse.Namespace:
    """``--quick``, ``--dir`` and ``--no-readme``, described by the script's own docstring."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--dir", help="where to put the files (default: a temporary directory)")
    parser.add_argument("--no-readme", action="store_true", help="print only; leave benchmarks/README.md alone")
    return parser.parse_args(argv)


def parse_repeat(doc: str, argv: list[str] | None, default: int = 5,
                 what: str = "rounds of each mode") -> argparse.Namespace:
    """``--repeat N`` and ``--no-readme``, for the scripts that time a few rounds rather than files."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=default, help=what)
    parser.add_argument("--no-readme", action="store_true", help="print the table only")
    return parser.parse_args(argv)


@contextmanager
def workdir(args: argparse.Namespace) -> Iterator[Path]:
    """``--dir`` (created when missing), else a temporary folder removed afterwards."""
    if args.dir:
        path = Path(args.dir)
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    with tempfile.TemporaryDirectory() as tmp:
        yield Path(tmp)


def median_time(fn: Callable[[], Any], repeat: int) -> float:
    """The median wall time of ``repeat`` calls of ``fn``, in seconds."""
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def run_steps(steps: Sequence[tuple[Callable[..., list[Any]], tuple[Any, ...]]]) -> list[Any]:
    """Each benchmark's rows, in order, with its duration on stderr (so a slow step is easy to spot)."""
    rows: list[Any] = []
    for fn, fn_args in steps:
        t0 = time.perf_counter()
        rows += fn(*fn_args)
        print(f"  {fn.__name__}: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return rows


Row = tuple[str, str, str, str, str, bool | None]  # measure, nbsessions, baseline, ratio, target, met
MET = {True: "yes", False: "**no**", None: ""}  # a row's target: met, missed, or none (a row for comparison)


def measured_on() -> str:
    """When and on what the numbers were taken, for the line above a table."""
    return (f"Measured {time.strftime('%Y-%m-%d')} on Python {platform.python_version()}, {platform.system()}, "
            f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} as the table was written")


def table(preface: str, rows: Sequence[Row], ratio: str = "ratio") -> str:
    """``preface``, then a Markdown table of ``rows``; ``ratio`` heads the ratio column."""
    head = [preface, "", f"| measure | nbsessions | baseline | {ratio} | target | met |", "|---|---|---|---|---|---|"]
    return "\n".join(head + [f"| {a} | {b} | {c} | {d} | {e} | {MET[f]} |" for a, b, c, d, e, f in rows])


def against_ideal(seconds: float, ideal: float, target: float, targeted: bool | None) -> tuple[str, str, str]:
    """A timed row's ratio to the ideal time, its target (only where ``targeted``) and whether it met it."""
    ratio = seconds / ideal
    return f"{ratio:.2f}×", f"≤ {target}×" if targeted else "", MET[ratio <= target] if targeted else ""


def report(text: str, met: Iterable[bool | None], args: argparse.Namespace, markers: tuple[str, str],
           above: str = "") -> int:
    """Print the table and write ``above`` and it between the script's ``markers`` in benchmarks/README.md (unless
    ``--no-readme``); the exit status is 1 when a row missed its target."""
    print(text)
    if not args.no_readme:
        write_section(*markers, above + text)
    return 0 if all(m is not False for m in met) else 1
