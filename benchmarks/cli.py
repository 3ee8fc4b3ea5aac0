"""What the storage-sized benchmark scripts share: their flags, their working folder and the timed steps."""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def parse(doc: str, quick_help: str, argv: list[str] | None) -> argparse.Namespace:
    """``--quick``, ``--dir`` and ``--no-readme``, described by the script's own docstring."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--dir", help="where to put the files (default: a temporary directory)")
    parser.add_argument("--no-readme", action="store_true", help="print only; leave benchmarks/README.md alone")
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


def run_steps(steps: Sequence[tuple[Callable[..., list[Any]], tuple[Any, ...]]]) -> list[Any]:
    """Each benchmark's rows, in order, with its duration on stderr (so a slow step is easy to spot)."""
    rows: list[Any] = []
    for fn, fn_args in steps:
        t0 = time.perf_counter()
        rows += fn(*fn_args)
        print(f"  {fn.__name__}: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return rows
