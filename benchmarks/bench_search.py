"""Panel search benchmark: the session list's filter finding sessions by words in their prompts and replies.

    python benchmarks/bench_search.py [--quick] [--no-readme]

A TinyDb file of 10,000 runs in 100 sessions, one of them with a word no other run holds. Measured: the first
search (which reads every session's prompts and replies once, through the Agent) against reading every session's
runs through the Agent, and each later keystroke (a substring test per session, the sessions unchanged) against
the filter by name alone, all in the same run. The table goes into benchmarks/README.md between the
``bench_search`` markers.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import cli  # noqa: E402
from bench_storage import prefill, template_run  # noqa: E402

from nbsessions import Agent, RunOutput  # noqa: E402
from nbsessions.db.tinydb import TinyDb  # noqa: E402
from nbsessions.panel.session_list import SessionList  # noqa: E402
from nbsessions.schema import Metrics  # noqa: E402

START, END = "<!-- bench_search -->", "<!-- /bench_search -->"
WORD = "zanzibar"


def build(tmp: Path) -> Path:
    path = tmp / "search.json"
    with TinyDb(path) as db:
        ids = prefill(db, template_run(tmp), 100, 100)
        needle = RunOutput(session_id=ids[37], input=f"What about {WORD.title()}?", content="An island.")
        db.upsert_run(needle)
    return path


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def measure(path: Path, repeats: int) -> list[cli.Row]:
    first, keystroke, by_name, read_all = [], [], [], []
    for _ in range(repeats):
        db = TinyDb(path)
        agent = Agent(db=db)
        t0 = time.perf_counter()
        for session in agent.get_sessions():
            agent.get_runs(session.session_id)
        read_all.append(time.perf_counter() - t0)
        found = SessionList(agent, lambda _sid: None, lambda: None, page_size=10)
        # "-" is in every session id: the name filter answers and no prompt is read (the filter as it was)
        for samples, text in ((by_name, "-"), (first, WORD), (keystroke, WORD[:-1])):
            found.text_filter.value = text
            t0 = time.perf_counter()
            found.refresh(None, lambda _sid: (0, Metrics()))
            samples.append(time.perf_counter() - t0)
        assert len(found.shown_ids) == 1, "the word was not found in exactly one session"
        found.close()
        db.close()
    first_ms, read_ms, key_ms, name_ms = (median_ms(x) for x in (first, read_all, keystroke, by_name))
    return [("first search by words said (reads the 10,000 runs' prompts and replies once), median",
             f"{first_ms:.0f} ms", f"Agent.get_runs of every session: {read_ms:.0f} ms", f"{first_ms / read_ms:.2f}x",
             "<= 1.5x", first_ms <= 1.5 * read_ms),
            ("each later keystroke (sessions unchanged), median", f"{key_ms:.1f} ms",
             f"filter by name, id or user only: {name_ms:.1f} ms", f"{key_ms / name_ms:.2f}x", "<= 3x",
             key_ms <= 3 * name_ms)]


def main(argv: list[str] | None = None) -> int:
    args = cli.parse(__doc__, "fewer repetitions", argv)
    with cli.workdir(args) as tmp:
        path = build(tmp)
        rows = measure(path, 3 if args.quick else 9)
    preface = ("## Panel search\n\n`python benchmarks/bench_search.py`: the session list's filter on a TinyDb file "
               "of 10,000 runs in 100 sessions, finding the one session whose prompt holds a word. "
               + cli.measured_on() + ".")
    return cli.report(cli.table(preface, rows), [met for *_, met in rows], args, (START, END))


if __name__ == "__main__":
    raise SystemExit(main())
