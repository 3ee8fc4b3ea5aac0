"""Each benchmark rewrites only its own marked section of benchmarks/README.md, so they can run in any order."""

from __future__ import annotations

from pathlib import Path

README = Path(__file__).resolve().parent / "README.md"


def write_section(start: str, end: str, body: str, readme: Path = README) -> None:
    """Replace the text between ``start`` and ``end`` (appending both when absent); the rest stays as it is."""
    block = f"{start}\n{body}\n{end}"
    old = readme.read_text(encoding="utf-8") if readme.exists() else "# Benchmarks\n"
    if start in old and end in old:
        new = old[: old.index(start)] + block + old[old.index(end) + len(end):]
    else:
        new = old.rstrip("\n") + "\n\n" + block + "\n"
    readme.write_text(new, encoding="utf-8")
