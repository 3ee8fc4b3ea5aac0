"""Scale benchmarks: file size with history on, opening a 100,000-run file, and `show --last N` on a long session.

    python benchmarks/bench_scale.py [--quick] [--dir DIR] [--no-readme]

Sizes are compared with a baseline written in the same run; time and peak memory (RSS) are measured in a fresh
process each, so nothing from this process counts. The table goes into benchmarks/README.md between markers.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT)]

import cli  # noqa: E402

from nbsessions import Agent  # noqa: E402
from nbsessions.db import TinyDb  # noqa: E402
from nbsessions.llm import OfflineModel  # noqa: E402
from nbsessions.records.schema import Session, new_id  # noqa: E402

START, END = "<!-- bench_scale -->", "<!-- /bench_scale -->"
INTRO = """## Scale

`python benchmarks/bench_scale.py` (add `--quick` for smaller files) rewrites this section. Runs are made by an
`Agent` with history on (newest 3 runs, the magic's default), an offline model and a one-line system prompt.

- **bytes per run**: the file after compaction, divided by the runs in it, with history on against history off.
  Each run keeps its own messages and filled system prompt; the history it sent is stored as references.
- **open + list**: a new process opens a file of 100,000 runs in 1,000 sessions and lists the sessions; the time
  after importing nbsessions (the import's own time beside it), peak RSS of that process against the file's size.
  Wall time is judged; the process's CPU time is shown beside it, since on a shared machine wall time includes
  waiting for a core.
- **show --last 5**: `python -m nbsessions show FILE SESSION --last 5` (its `main`) on a session of 20,000 runs,
  against the same on a session of 100 runs; time after the import, and peak RSS of the command's process.
"""

PROBE = """
import resource, sys, time
sys.path.insert(0, {root!r})
t0 = time.perf_counter()
{setup}
t1, c1 = time.perf_counter(), time.process_time()
{body}
t2, c2 = time.perf_counter(), time.process_time()
print(t1 - t0, t2 - t1, c2 - c1, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""


def probe(setup: str, body: str) -> tuple[float, float, float, int]:
    """Run ``setup`` then ``body`` in a fresh interpreter: setup and body wall seconds, body CPU seconds, and
    peak RSS in bytes. CPU time is shown beside wall time: on a shared machine the wall time includes waiting."""
    code = PROBE.format(root=str(ROOT), setup=setup, body=body)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=ROOT).stdout.split()
    return float(out[-4]), float(out[-3]), float(out[-2]), int(out[-1])


def median_of_3(setup: str, body: str) -> tuple[float, float, float, int]:
    """Median import, body wall and body CPU times, and the largest peak RSS, of 3 fresh processes."""
    samples = [probe(setup, body) for _ in range(3)]
    return (*(sorted(s[i] for s in samples)[1] for i in range(3)), max(s[3] for s in samples))


def fresh(path: Path) -> Path:
    """The same file name in every run of the benchmark (``--dir``), started empty."""
    path.unlink(missing_ok=True)
    return path


def agent_session(path: Path, runs: int, history: bool) -> None:
    with TinyDb(fresh(path)) as db:
        agent = Agent(model=OfflineModel(), db=db, add_history_to_context=history, num_history_runs=3,
                      instructions="You help with data analysis in notebooks.")
        sid = agent.run("Question 0: explain the shape of the frame and what to do next.").session_id
        for i in range(1, runs):
            agent.run(f"Question {i}: explain the shape of the frame and what to do next.", session_id=sid)
        db.compact()


def template(tmp: Path) -> list[dict[str, Any]]:
    """Stored records of a real session with history on (references included), to copy into big files."""
    path = tmp / "template.json"
    agent_session(path, 8, history=True)
    with TinyDb(path) as db:
        (session,) = db.list_sessions()
        ids = db.tinydb.storage.group("runs", session.session_id)
        return [db.tinydb.storage.load("runs", i) for i in ids]


def runs_like(records: list[dict[str, Any]], session_id: str, n: int) -> Iterator[dict[str, Any]]:
    """``n`` runs shaped like the template's last one, each referring to the 3 runs before it as history."""
    model = records[-1]
    ids: list[str] = []
    for i in range(n):
        run_id = new_id()
        refs = [m for m in model["messages"] if "ref" in m]
        earlier = ids[-len(refs):] if len(ids) >= len(refs) else []
        mapping = dict(zip([r["ref"] for r in refs], earlier, strict=False))
        messages = [({**m, "ref": mapping[m["ref"]]} if "ref" in m else m) for m in model["messages"]
                    if "ref" not in m or m["ref"] in mapping]
        ids.append(run_id)
        yield {**model, "run_id": run_id, "session_id": session_id, "created_at": time.time() + i * 1e-6,
               "messages": messages}


def prefill(path: Path, records: list[dict[str, Any]], sessions: int, runs_each: int) -> list[str]:
    ids = []
    with TinyDb(fresh(path)) as db:
        store = db.tinydb.storage
        for _ in range(sessions):
            session = Session()
            ids.append(session.session_id)
            store.commit([("sessions", session.session_id, session.to_dict())], durable=False)
            store.commit((("runs", r["run_id"], r) for r in runs_like(records, session.session_id, runs_each)),
                         durable=False)
        db.compact()
    return ids


# -- measures -------------------------------------------------------------------------------------
def bench_bytes(tmp: Path, runs: int) -> list[cli.Row]:
    sizes = {}
    for history in (False, True):
        path = tmp / f"bytes-{history}.json"
        agent_session(path, runs, history)
        sizes[history] = path.stat().st_size / runs
    ratio = sizes[True] / sizes[False]
    return [(f"bytes per run, history on (3 runs), {runs} runs", f"{sizes[True]:,.0f} B",
             f"{sizes[False]:,.0f} B with history off", f"{ratio:.2f}x", "<= 1.3x", ratio <= 1.3)]


def bench_open(tmp: Path, records: list[dict[str, Any]], sessions: int, runs_each: int) -> list[cli.Row]:
    path = tmp / "big.json"
    prefill(path, records, sessions, runs_each)
    size = path.stat().st_size
    body = f"db = TinyDb({str(path)!r})\nassert len(db.list_sessions()) == {sessions}"
    imports, seconds, cpu, rss = median_of_3("from nbsessions.db import TinyDb", body)
    label = f"open {sessions * runs_each:,} runs in {sessions:,} sessions ({size / 1e6:.0f} MB) + list sessions"
    return [(f"{label}, median of 3", f"{seconds:.2f} s ({cpu:.2f} s CPU)", f"(import: {imports:.2f} s)", "",
             "<= 1.5 s", seconds <= 1.5),
            ("  peak RSS of that process", f"{rss / 1e6:.0f} MB", f"{size / 1e6:.0f} MB file",
             f"{rss / size:.2f}x", "<= 2x", rss <= 2 * size)]


def bench_show(tmp: Path, records: list[dict[str, Any]], long_runs: int) -> list[cli.Row]:
    out = {}
    for runs in (100, long_runs):
        path = tmp / f"show-{runs}.json"
        (sid,) = prefill(path, records, 1, runs)
        body = f"assert main(['show', {str(path)!r}, {sid!r}, '--last', '5'], io.StringIO()) == 0"
        _, seconds, cpu, rss = median_of_3("import io\nfrom nbsessions.__main__ import main", body)
        out[runs] = (seconds, cpu, rss, path.stat().st_size)
    (t_small, _, rss_small, _), (t_big, cpu_big, rss_big, size_big) = out[100], out[long_runs]
    return [(f"show --last 5, session of {long_runs:,} runs ({size_big / 1e6:.0f} MB), median of 3",
             f"{t_big:.2f} s ({cpu_big:.2f} s CPU)", f"{t_small:.2f} s at 100 runs", f"{t_big / t_small:.2f}x",
             "for comparison", None),
            ("  peak RSS of that process", f"{rss_big / 1e6:.0f} MB", f"{rss_small / 1e6:.0f} MB at 100 runs",
             f"{rss_big / rss_small:.2f}x", "for comparison", None)]


# -- report ---------------------------------------------------------------------------------------
def table(rows: list[cli.Row], quick: bool) -> str:
    return cli.table(f"{cli.measured_on()}{' (--quick: smaller files)' if quick else ''}.", rows)


def main(argv: list[str] | None = None) -> int:
    args = cli.parse(__doc__, "files a tenth of the size", argv)
    scale = 10 if args.quick else 1
    with cli.workdir(args) as tmp:
        records = template(tmp)
        rows: list[cli.Row] = cli.run_steps([(bench_bytes, (tmp, 30)), (bench_open, (tmp, records, 1000 // scale, 100)),
                                         (bench_show, (tmp, records, 20_000 // scale))])
    return cli.report(table(rows, args.quick), [met for *_, met in rows], args, (START, END), f"{INTRO}\n")


if __name__ == "__main__":
    sys.exit(main())
