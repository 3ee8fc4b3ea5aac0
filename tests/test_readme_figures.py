"""README.md quotes benchmark figures only as ``benchmarks/readme_figures.py`` copied them from benchmarks/README.md."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import readme_figures  # noqa: E402


def test_the_readmes_figures_are_the_ones_the_benchmarks_wrote():
    block = readme_figures.render((ROOT / "benchmarks" / "README.md").read_text(encoding="utf-8"))
    assert readme_figures.current((ROOT / "README.md").read_text(encoding="utf-8")) == block, (
        "README.md's figures differ from benchmarks/README.md: run python benchmarks/readme_figures.py")


def test_a_changed_figure_is_caught():
    bench = (ROOT / "benchmarks" / "README.md").read_text(encoding="utf-8")
    block = readme_figures.render(bench)
    header, rows = readme_figures.table_rows(readme_figures.sections(bench)["bench_storage"])
    row = next(r for r in rows if r[0].startswith("append one run"))
    changed = bench.replace(f"| {row[1]} |", "| 99.999 ms |", 1)
    assert readme_figures.render(changed) != block
