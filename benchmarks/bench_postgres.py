"""PostgreSQL store benchmarks, each against a baseline measured in the same run on the same machine.

    python benchmarks/bench_postgres.py [--quick] [--no-readme]

Starts its own server from Debian's binaries (tests/pg_server.py: Unix socket only, ``fsync=on`` like a real
one) and measures:

- **store**: ``PostgresDb.upsert_run`` against a bare ``INSERT`` of the same JSON text with psycopg, one commit
  each, interleaved: what the store adds to the server's own cost of a durable write (target <= +1 ms);
- **commits**: WAL flushes per ``Agent.run`` (the server's own count, ``pg_stat_wal``) against those of a bare
  ``INSERT`` + commit: one durable commit per run (target); the "running" record is committed without waiting
  for the disk, and the run's end is the one durable write;
- **overhead**: ``Agent.run`` (offline model, history on) on ``PostgresDb`` against the same on ``TinyDb``, calls
  interleaved, both durable (a WAL flush per commit, an fsync per run): on one machine this mostly compares the
  server's commit with the journal's fsync;
- **growth**: ``Agent.run`` in a session of 10,000 runs against one of 100 (target <= 1.2x), and what one row of
  the session list costs (``session_totals``: it reads only each run's status and metrics);
- **concurrency**: 8 writer processes storing runs at once, against 1 writer, in runs per second: into their own
  sessions (a team's kernels) and all into one session (each run also bumps that session's update time).
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE.parent / "tests"), str(HERE)]

import cli  # noqa: E402
from bench_storage import median_ms, runs_like, table, template_run, timed  # noqa: E402
from cli import Row  # noqa: E402

from nbsessions import Agent  # noqa: E402
from nbsessions.db import TinyDb  # noqa: E402
from nbsessions.db.base import BaseDb  # noqa: E402
from nbsessions.llm import OfflineModel  # noqa: E402
from nbsessions.schema import RunOutput, Session  # noqa: E402

START, END = "<!-- bench_postgres -->", "<!-- /bench_postgres -->"
INTRO = __doc__.split("\n\n", 2)[2].replace("measures:", "measures (`python benchmarks/bench_postgres.py`):", 1)


def fill(db: BaseDb, template: dict[str, Any], runs: int) -> str:
    session = Session()
    db.upsert_session(session)
    for doc in runs_like(template, session.session_id, runs):
        db.upsert_run(RunOutput.from_dict(doc), durable=False)
    return session.session_id


def agent_calls(db: BaseDb, session_id: str):
    agent = Agent(model=OfflineModel(), db=db, add_history_to_context=True, num_history_runs=3)
    for i in range(3):  # warm-up: connections made, statements prepared
        agent.run(f"warm up {i}", session_id=session_id)
    return lambda i: agent.run(f"Prompt {i}: what changed?", session_id=session_id)


def bench_overhead(url: str, tmp: Path, template: dict[str, Any], n: int) -> list[Row]:
    from nbsessions.db.postgres import PostgresDb

    with PostgresDb(url) as pg, TinyDb(tmp / "overhead.json") as tiny:
        calls = {"pg": agent_calls(pg, fill(pg, template, 100)), "tiny": agent_calls(tiny, fill(tiny, template, 100))}
        samples: dict[str, list[float]] = {k: [] for k in calls}
        for i in range(n):
            for name, call in calls.items():
                samples[name].append(timed(lambda i=i, call=call: call(i)))
    ours, base = median_ms(samples["pg"]), median_ms(samples["tiny"])
    return [("Agent.run, history on, 100 runs stored: PostgresDb vs TinyDb, median", f"{ours:.2f} ms",
             f"{base:.2f} ms TinyDb", f"{ours - base:+.2f} ms ({ours / base:.2f}x)", "for comparison", None)]


def bench_store(url: str, template: dict[str, Any], n: int) -> list[Row]:
    """PostgresDb.upsert_run against a bare psycopg INSERT of the very same JSON text, one commit each."""
    import json

    import psycopg

    from nbsessions.db.postgres import PostgresDb

    with PostgresDb(url) as pg, psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS bare (id text PRIMARY KEY, data json)")
        sid = fill(pg, template, 0)
        ours, bare = [], []
        for doc in runs_like(template, sid, n):
            run = RunOutput.from_dict(doc)
            text = json.dumps(run.to_dict(history_refs=True), ensure_ascii=False)
            bare.append(timed(lambda doc=doc, text=text: conn.execute(
                "INSERT INTO bare VALUES (%s, %s::json)", [doc["run_id"], text])))
            ours.append(timed(lambda run=run: pg.upsert_run(run)))
    diff = median_ms(ours) - median_ms(bare)
    return [(f"PostgresDb.upsert_run ({len(text):,} B), median", f"{median_ms(ours):.2f} ms",
             f"{median_ms(bare):.2f} ms bare INSERT + commit", f"{diff:+.2f} ms", "<= +1 ms", diff <= 1.0)]


def _server_counts(url: str, work: Any) -> tuple[int, int]:
    """WAL flushes (durable commits: ``pg_stat_wal.wal_sync``, the server runs with ``fsync=on``) and
    committed transactions of this database during ``work()``, which must close its connections: a backend
    hands its counts to the server's statistics as it exits, so they are read once its sessions are gone."""
    import psycopg

    def counts(conn: Any) -> tuple[int, int]:
        while conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                           "AND pid <> pg_backend_pid()").fetchone()[0]:
            time.sleep(0.01)  # the closed sessions' backends are still exiting (and reporting)
        conn.execute("SELECT pg_stat_clear_snapshot()")
        syncs = conn.execute("SELECT wal_sync FROM pg_stat_wal").fetchone()[0]
        xacts = conn.execute("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
        return syncs, xacts.fetchone()[0]

    with psycopg.connect(url, autocommit=True) as conn:
        before = counts(conn)
        work()
        after = counts(conn)
    return after[0] - before[0], after[1] - before[1] - 2  # less this connection's own two reads


def bench_commits(url: str, template: dict[str, Any], n: int) -> list[Row]:
    """How many durable commits an ``Agent.run`` costs the server, against a bare INSERT's one each."""
    import json

    import psycopg

    from nbsessions.db.postgres import PostgresDb

    with PostgresDb(url) as pg:
        sid = fill(pg, template, 100)

    def runs() -> None:
        with PostgresDb(url) as pg:
            call = agent_calls(pg, sid)
            for i in range(n):
                call(i)

    def inserts() -> None:
        text = json.dumps(template, ensure_ascii=False)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS bare_commits (id serial PRIMARY KEY, data json)")
            for _ in range(n):
                conn.execute("INSERT INTO bare_commits (data) VALUES (%s::json)", [text])

    warm = 3  # agent_calls' warm-up runs, counted with the measured ones
    (syncs, xacts), (base_syncs, _) = _server_counts(url, runs), _server_counts(url, inserts)
    per_run, per_insert = syncs / (n + warm), base_syncs / (n + 1)  # + 1: the CREATE TABLE
    return [("PostgresDb: durable commits (WAL flushes) per Agent.run, history on", f"{per_run:.2f}",
             f"{per_insert:.2f} per bare INSERT + commit", f"{per_run / per_insert:.2f}x",
             "<= 1 per run (1.1x: the WAL writer's background flushes count too)",
             per_run / per_insert <= 1.1),
            ("PostgresDb: transactions per Agent.run (reads included; the started run's commit does not wait "
             "for the disk)", f"{xacts / (n + warm):.1f}", "–", "–", "for comparison", None)]


def bench_growth(url: str, template: dict[str, Any], n: int) -> list[Row]:
    from nbsessions.db.postgres import PostgresDb

    with PostgresDb(url) as pg:
        sids = {stored: fill(pg, template, stored) for stored in (100, 10_000)}
        calls = {stored: agent_calls(pg, sid) for stored, sid in sids.items()}
        samples: dict[int, list[float]] = {k: [] for k in calls}
        for i in range(n):
            for stored, call in calls.items():
                samples[stored].append(timed(lambda i=i, call=call: call(i)))
        totals = {stored: [timed(lambda sid=sid: pg.session_totals(sid)) for _ in range(max(5, n // 10))]
                  for stored, sid in sids.items()}
    big, small = median_ms(samples[10_000]), median_ms(samples[100])
    t_big, t_small = median_ms(totals[10_000]), median_ms(totals[100])
    return [("PostgresDb: Agent.run, history on, 10,000 runs in session", f"{big:.2f} ms",
             f"{small:.2f} ms at 100 runs", f"{big / small:.2f}x", "<= 1.2x", big / small <= 1.2),
            ("PostgresDb: a session-list row (run count + summed metrics) of 10,000 runs", f"{t_big:.1f} ms",
             f"{t_small:.1f} ms at 100 runs", f"{t_big / t_small:.0f}x", "for comparison", None)]


def _writer(target: str, session_id: str | None, template: dict[str, Any], n: int, ready: Any, go: Any,
            result: Any) -> None:
    """One writer process: open the store, wait for the start signal, store ``n`` runs durably."""
    from nbsessions.db.urls import open_store

    with open_store(target) as db:
        sid = session_id or fill(db, template, 0)
        runs = [RunOutput.from_dict(doc) for doc in runs_like(template, sid, n)]
        ready.release()
        go.wait()
        t0 = time.perf_counter()
        for run in runs:
            db.upsert_run(run)
        result.put((t0, time.perf_counter()))


def throughput(target: str, template: dict[str, Any], writers: int, n: int, shared: bool) -> float:
    """Runs per second stored by ``writers`` processes together, from the first start to the last finish."""
    ctx = multiprocessing.get_context("spawn")
    session_id = None
    if shared:
        from nbsessions.db.urls import open_store

        with open_store(target) as db:
            session_id = fill(db, template, 0)
    ready, go, result = ctx.Semaphore(0), ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(target, session_id, template, n, ready, go, result))
             for _ in range(writers)]
    for proc in procs:
        proc.start()
    for _ in procs:
        ready.acquire()
    go.set()
    spans = [result.get() for _ in procs]
    for proc in procs:
        proc.join()
    return writers * n / (max(end for _, end in spans) - min(start for start, _ in spans))


def bench_concurrency(url: str, tmp: Path, template: dict[str, Any], n: int) -> list[Row]:
    rows = []
    for shared in (False, True):
        one = throughput(url, template, 1, n * 4, shared)
        eight = throughput(url, template, 8, n, shared)
        where = "one shared session" if shared else "own sessions"
        rows.append((f"PostgresDb: 8 writer processes, {where}, runs/s", f"{eight:,.0f}/s", f"{one:,.0f}/s 1 writer",
                     f"{eight / one:.2f}x", ">= 1x", eight / one >= 1.0))
    tiny = tmp / "writers.json"
    one = throughput(str(tiny), template, 1, n * 4, False)
    eight = throughput(str(tiny), template, 8, n, False)
    rows.append(("TinyDb: 8 writer processes on one file, own sessions, runs/s", f"{eight:,.0f}/s",
                 f"{one:,.0f}/s 1 writer", f"{eight / one:.2f}x", "for comparison", None))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples (about a quarter of the time)")
    parser.add_argument("--no-readme", action="store_true", help="print only; leave benchmarks/README.md alone")
    args = parser.parse_args(argv)
    from pg_server import PostgresServer, find_binaries, missing_reason

    if find_binaries() is None:
        print(missing_reason(), file=sys.stderr)
        return 2
    scale = 4 if args.quick else 1
    server = PostgresServer.start(fsync=True)
    try:
        with tempfile.TemporaryDirectory() as name:
            tmp = Path(name)
            template = template_run(tmp)
            steps = [(bench_store, (server.create_database()[0], template, 300 // scale)),
                     (bench_commits, (server.create_database()[0], template, 200 // scale)),
                     (bench_overhead, (server.create_database()[0], tmp, template, 200 // scale)),
                     (bench_growth, (server.create_database()[0], template, 200 // scale)),
                     (bench_concurrency, (server.create_database()[0], tmp, template, 200 // scale))]
            rows: list[Row] = cli.run_steps(steps)
    finally:
        server.close()
    return cli.report(table(rows, args.quick), [met for *_, met in rows], args, (START, END),
                      f"## PostgreSQL\n\n{INTRO}\n")


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
