"""What the "Agent sessions" sidebar costs the Jupyter server: a listing, a poll of the change token, a search.

    python benchmarks/bench_sidebar.py [--quick] [--repeat N] [--no-readme]

A notebook's TinyDB file with 50 sessions of 40 runs (replies of ~1 KB), read the way the server extension reads
it (``nbsessions/server/``: an Agent as the notebook's user over the read-only store, owner-checked), against the
same store reads made directly on the store class (what ``python -m nbsessions ls`` does), in one process:

- **listing** (``/nbsessions/api/sessions``): every session with its run count and totals; target <= 1.2x the
  direct reads (the Agent's owner checks are the only extra).
- **poll** (``/nbsessions/api/version``, each second while the sidebar is shown): the file's ``stat``; target
  <= 1% of a listing, so polling costs nothing next to what it saves.
- **search** for a word only the last run of the oldest session has (every run is read): against reading every
  run of every session directly; target <= 1.3x.
- **a page of a team session** (``/nbsessions/api/sessions/ID/runs``, 50 team runs of 200, each with 2 member
  runs folded in its row): against the page of top-level runs alone, as the endpoint read it before member runs
  were shown (``newest_top_level`` and plain rows); target <= 1.5x (the same runs read, more rows built).

The kinds alternate (A B A B ...), each ratio is taken pair by pair, then the median. The table goes into
benchmarks/README.md between the ``bench_sidebar`` markers.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import cli  # noqa: E402

from nbsessions import Agent, FunctionModel, TinyDb  # noqa: E402
from nbsessions.db.locate import db_path_for  # noqa: E402
from nbsessions.records.schema import RunOutput, RunStatus  # noqa: E402
from nbsessions.runs.core.context import newest_top_level  # noqa: E402
from nbsessions.server.stores import StoreCache, locate  # noqa: E402
from nbsessions.server.views import list_runs, list_sessions, run_row  # noqa: E402

START, END = "<!-- bench_sidebar -->", "<!-- /bench_sidebar -->"
REPLY = ("A reply of about a kilobyte, with a code block and prose. " * 18)[:1000]
NEEDLE = "zanzibar"
TEAM_RUNS = 200


def fill(root: Path, sessions: int, runs: int) -> str:
    """The notebook and its store; returns the notebook's path under ``root``."""
    (root / "bench.ipynb").write_text("{}")
    db = TinyDb(db_path_for(root / "bench.ipynb"))
    for s in range(sessions):
        agent = Agent(model=FunctionModel(lambda m: REPLY), db=db)
        sid = agent.create_session(f"session {s}").session_id
        for r in range(runs):
            last = s == 0 and r == runs - 1
            agent.run(f"question {r} of session {s}" + (f" about {NEEDLE}" if last else ""), session_id=sid)
    team = Agent(model=FunctionModel(lambda m: REPLY), db=db)
    sid = team.create_session("team").session_id
    for t in range(TEAM_RUNS):
        run = team.run(f"team task {t}", session_id=sid)
        for member in ("researcher", "writer"):
            db.upsert_run(RunOutput(session_id=sid, parent_run_id=run.run_id, agent_name=member, content=REPLY,
                                    status=RunStatus.completed, input=f"{member} part of task {t}"))
    db.close()
    return "bench.ipynb"


def timed(fn, times: int) -> float:
    """Seconds per call, over ``times`` calls: one call is too short to time alone on a busy machine."""
    t0 = time.perf_counter()
    for _ in range(times):
        fn()
    return (time.perf_counter() - t0) / times


def measure(root: Path, notebook: str, repeat: int) -> dict[str, list[float]]:
    where = locate(root, notebook)
    stores = StoreCache()
    agent = stores.agent(where)
    direct = TinyDb(where.path, read_only=True)

    def listing() -> None:
        assert len(list_sessions(agent, "")) > 0

    def direct_listing() -> None:
        for session in direct.list_sessions():
            direct.session_totals(session.session_id)

    def search() -> None:
        assert len(list_sessions(agent, NEEDLE)) == 1

    def poll() -> None:
        stores.version(where)

    team = next(s.session_id for s in direct.list_sessions() if s.session_name == "team")

    def team_page() -> None:
        assert len(list_runs(agent, team, 50)["runs"][0]["nested"]) == 2

    def top_level_page() -> None:
        assert len([run_row(r) for r in newest_top_level(agent.db, team, 50)]) == 50

    def direct_read_all() -> None:
        for session in direct.list_sessions():
            direct.list_runs(session.session_id)

    samples: dict[str, list[float]] = {k: [] for k in ("list", "direct", "list_ratio", "poll", "poll_ratio",
                                                       "search", "read_all", "search_ratio",
                                                       "page", "top_page", "page_ratio")}
    listing(), direct_listing(), search(), direct_read_all()  # warm up: the journal's index and the disk cache
    for _ in range(repeat):
        a, b = timed(listing, 10), timed(direct_listing, 10)
        p = timed(poll, 1000)
        c, d = timed(search, 2), timed(direct_read_all, 2)
        samples["list"].append(a)
        samples["direct"].append(b)
        samples["list_ratio"].append(a / b)
        samples["poll"].append(p)
        samples["poll_ratio"].append(p / a)
        samples["search"].append(c)
        samples["read_all"].append(d)
        samples["search_ratio"].append(c / d)
        e, f = timed(team_page, 5), timed(top_level_page, 5)
        samples["page"].append(e)
        samples["top_page"].append(f)
        samples["page_ratio"].append(e / f)
    stores.close()
    direct.close()
    return samples


def rows(samples: dict[str, list[float]], shape: str) -> list[cli.Row]:
    med = {k: statistics.median(v) for k, v in samples.items()}
    spread = {k: f"{min(v):.3g}–{max(v):.3g}x" for k, v in samples.items() if k.endswith("_ratio")}
    return [
        (f"sidebar listing, {shape}", f"{med['list'] * 1000:.1f} ms",
         f"{med['direct'] * 1000:.1f} ms direct store reads", f"{med['list_ratio']:.2f}x ({spread['list_ratio']})",
         "<= 1.2x", med["list_ratio"] <= 1.2),
        ("poll of the change token", f"{med['poll'] * 1e6:.0f} µs", f"{med['list'] * 1000:.1f} ms listing",
         f"{med['poll_ratio'] * 100:.3f}% of a listing", "<= 1%", med["poll_ratio"] <= 0.01),
        ("search for a word in the last run of the oldest session", f"{med['search'] * 1000:.1f} ms",
         f"{med['read_all'] * 1000:.1f} ms reading every run directly",
         f"{med['search_ratio']:.2f}x ({spread['search_ratio']})", "<= 1.3x", med["search_ratio"] <= 1.3),
        (f"a page of 50 team runs of {TEAM_RUNS}, 2 member runs folded in each", f"{med['page'] * 1000:.1f} ms",
         f"{med['top_page'] * 1000:.1f} ms the page of top-level runs alone",
         f"{med['page_ratio']:.2f}x ({spread['page_ratio']})", "<= 1.5x", med["page_ratio"] <= 1.5),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 sessions of 10 runs, 3 pairs")
    parser.add_argument("--repeat", type=int, default=9, help="pairs of samples (medians kept)")
    parser.add_argument("--dir", help="where to put the files (default: a temporary directory)")
    parser.add_argument("--no-readme", action="store_true", help="print only; leave benchmarks/README.md alone")
    args = parser.parse_args(argv)
    sessions, runs, repeat = (10, 10, 3) if args.quick else (50, 40, args.repeat)
    with cli.workdir(args) as root:
        notebook = fill(root, sessions, runs)
        found = rows(measure(root, notebook, repeat), f"{sessions} sessions × {runs} runs")
    load = os.getloadavg()[0]
    text = cli.table(f"`python benchmarks/bench_sidebar.py`: in one process, the two kinds alternating; ratios pair "
                     f"by pair, median of {repeat} pairs (min–max beside it). {cli.measured_on()}, load average "
                     f"{load:.1f} at the end.", found)
    return cli.report(text, [r[5] for r in found], args, (START, END), "## The sidebar's server API\n\n")


if __name__ == "__main__":
    sys.exit(main())
