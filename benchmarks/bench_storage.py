"""Storage benchmarks: what a run costs as a session grows, measured against baselines from the same run.

    python benchmarks/bench_storage.py [--quick] [--dir DIR] [--no-readme]

Every number is a ratio or a difference against a baseline measured in the same process, on the same disk,
so results from different machines can be compared. The table goes into benchmarks/README.md between markers.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE.parent / "tests")]

import cli  # noqa: E402
from tinydb import TinyDB  # noqa: E402

from nbsessions import Agent  # noqa: E402
from nbsessions.db import InMemoryDb, TinyDb  # noqa: E402
from nbsessions.llm import FunctionModel, OfflineModel  # noqa: E402
from nbsessions.records.redact import redact_data  # noqa: E402
from nbsessions.records.schema import RunOutput, Session, new_id  # noqa: E402

START, END = "<!-- bench_storage -->", "<!-- /bench_storage -->"
INTRO = """## Storage

`python benchmarks/bench_storage.py` (add `--quick` for fewer samples) measures the storage and rewrites this
section. Each number is compared with a baseline measured in the same run:

- **append**: `TinyDb.upsert_run` of a run as the Agent stores it, against `os.write` + `os.fsync` of the very
  bytes the journal appends (so the ratio is our overhead: lock, serialisation, bookkeeping).
- **growth**: `Agent.run` with history on (3 runs) in a session of 10,000 runs against one of 100.
- **OpenAIChat**: `Agent.run` against a raw `openai` SDK call of the same kind (not streamed) with the same
  messages, calls alternating, both to a loopback server (`tests/openai_server.py`) in its own process; targets
  <= 1.2x in memory and <= 1.4x on `TinyDb`. With `TinyDb` each run appends twice: the run as it starts
  (buffered, no fsync) and the run as it ends together with its session's new `updated_at` (fsync'd); the
  fsyncs of the timed runs are counted (`os.fsync`/`os.fdatasync` wrapped: one per run, plus compaction's when the
  journal has doubled) and the floor row subtracts the cost of those bare writes.
- **machinery**: `Agent.run` (offline model, in-memory store, history on, no tools, summaries or state in use)
  against the bare minimum of a run in the same process: the same model call and two stores of the run.
- **redaction**: the machinery row's `Agent.run` with a 178-character key in `OPENAI_API_KEY` (so every record
  written is scanned for its 8-character pieces) against the same with no key, samples alternated.
- **long reply**: streaming a reply of 20,000 deltas (offline function model, in memory) against one of 2,000,
  per delta: a reply is kept growing in place, not re-joined from all its parts on every delta.
- **open**: a new `TinyDb` on a file of 10,000 runs in 100 sessions, then `list_sessions()`.
- **stock TinyDB**: `JSONStorage` rewrites the whole file on every insert (and never fsyncs).
- **Agno** (only when `agno` and `sqlalchemy` are installed: `pip install -e ".[bench]"`): Agno's Agent with its
  `JsonDb`, `SqliteDb` and `InMemoryDb` against ours, streamed from the same loopback server, per run early in a
  session and later.
"""


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


@contextlib.contextmanager
def counting_fsyncs() -> Iterator[list[int]]:
    """Count ``os.fsync``/``os.fdatasync`` calls in this process while the block runs (the journal's only way to
    make bytes durable), so "one fsync per run" is a count, not read off a timing."""
    count = [0]
    real = os.fsync, os.fdatasync

    def fsync(fd: int) -> None:
        count[0] += 1
        real[0](fd)

    def fdatasync(fd: int) -> None:
        count[0] += 1
        real[1](fd)

    os.fsync, os.fdatasync = fsync, fdatasync
    try:
        yield count
    finally:
        os.fsync, os.fdatasync = real


def template_run(tmp: Path, subject: str = "frame") -> dict[str, Any]:
    """A run as the Agent stores it with history on (system, 3 earlier exchanges, prompt, reply); each prompt asks
    about ``subject``."""
    with TinyDb(tmp / "template.json") as db:
        agent = Agent(model=OfflineModel(), db=db, add_history_to_context=True, num_history_runs=3,
                      instructions="You help with data analysis in notebooks.")
        sid = new_id()
        for i in range(5):
            run = agent.run(f"Question {i}: explain the shape of the {subject} and what to do next.", session_id=sid)
        return run.to_dict()


def runs_like(template: dict[str, Any], session_id: str, n: int) -> Iterator[dict[str, Any]]:
    for i in range(n):
        yield {**template, "run_id": new_id(), "session_id": session_id, "created_at": time.time() + i * 1e-6}


def prefill(db: TinyDb, template: dict[str, Any], sessions: int, runs_each: int) -> list[str]:
    """Write many runs in one commit (one fsync): only the measured writes pay per-run durability."""
    store = db.tinydb.storage
    ids = []
    for _ in range(sessions):
        session = Session()
        db.upsert_session(session)
        ids.append(session.session_id)
        store.commit(("runs", r["run_id"], r) for r in runs_like(template, session.session_id, runs_each))
    return ids


# -- measures -------------------------------------------------------------------------------------
def bench_append(tmp: Path, template: dict[str, Any], n: int) -> list[cli.Row]:
    """TinyDb.upsert_run against os.write + fsync of the very bytes the journal appends, interleaved."""
    db = TinyDb(tmp / "append.json")
    fd = os.open(tmp / "bare.jsonl", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    ours, bare = [], []
    for doc in runs_like(template, new_id(), n):
        line = (json.dumps({"t": "runs", "id": doc["run_id"], "doc": doc}, ensure_ascii=False,
                           separators=(",", ":")) + "\n").encode()
        run = RunOutput.from_dict(doc)
        bare.append(timed(lambda line=line: (os.write(fd, line), os.fsync(fd))))
        ours.append(timed(lambda run=run: db.upsert_run(run)))
    os.close(fd)
    db.close()
    ratio = statistics.median(ours) / statistics.median(bare)
    return [(f"append one run ({len(line):,} B), median", f"{median_ms(ours):.3f} ms",
             f"{median_ms(bare):.3f} ms (write+fsync)", f"{ratio:.2f}x", "<= 3x", ratio <= 3)]


def bench_growth(tmp: Path, template: dict[str, Any], n: int) -> list[cli.Row]:
    """Agent.run with history on, in a session holding 100 runs and one holding 10,000, calls interleaved."""
    samples: dict[int, list[float]] = {}
    calls = {}
    with contextlib.ExitStack() as stack:
        for stored in (100, 10_000):
            db = stack.enter_context(TinyDb(tmp / f"growth-{stored}.json"))
            (sid,) = prefill(db, template, 1, stored)
            agent = Agent(model=OfflineModel(), db=db, add_history_to_context=True, num_history_runs=3)
            calls[stored] = lambda i, agent=agent, sid=sid: agent.run(f"Prompt {i}: what changed?", session_id=sid)
            for i in range(3):  # warm-up
                calls[stored](i)
            samples[stored] = []
        for i in range(n):
            for stored, call in calls.items():
                samples[stored].append(timed(lambda i=i, call=call: call(i)))
    big, small = median_ms(samples[10_000]), median_ms(samples[100])
    return [("Agent.run, history on, 10,000 runs in session", f"{big:.2f} ms", f"{small:.2f} ms at 100 runs",
             f"{big / small:.2f}x", "<= 1.5x", big / small <= 1.5)]


def bench_openai(tmp: Path, template: dict[str, Any], n: int) -> list[cli.Row]:
    """Agent.run through OpenAIChat against a raw SDK call of the same kind (not streamed, as ``run()`` sends it)
    with the same messages, both on loopback.

    With TinyDb at 100 and at 10,000 stored runs in the session; with InMemoryDb at 100.
    """
    try:
        import openai
        from loopback import server_in_process

        from nbsessions.llm.openai import OpenAIChat, chat_message
    except ImportError as exc:
        return [("Agent.run vs raw openai SDK", f"skipped ({exc})", "", "", "<= +1 ms", None)]
    rows = []
    with server_in_process(0) as base_url:
        client = openai.OpenAI(base_url=base_url, api_key="bench")
        cases = [("InMemoryDb", 100, InMemoryDb(), 1.2), ("TinyDb", 100, TinyDb(tmp / "openai-100.json"), 1.4),
                 ("TinyDb", 10_000, TinyDb(tmp / "openai-10k.json"), 1.4)]
        for name, stored, db, target in cases:
            if isinstance(db, TinyDb):
                (sid,) = prefill(db, template, 1, stored)
            else:
                sid = new_id()
                db.upsert_session(Session(session_id=sid))
                for run in runs_like(template, sid, stored):
                    db.upsert_run(RunOutput.from_dict(run))
            agent = Agent(model=OpenAIChat(id="bench-model", base_url=base_url, api_key="bench"), db=db,
                          add_history_to_context=True, num_history_runs=3)
            for i in range(5):
                last = agent.run(f"warm up {i}", session_id=sid)
            messages = [chat_message(m) for m in last.messages]

            def raw(messages=messages) -> str:  # the request Agent.run (stream=False) sends: one whole reply
                reply = client.chat.completions.create(model="bench-model", messages=messages)
                return reply.choices[0].message.content or ""

            line = json.dumps(last.to_dict()).encode() + b"\n"
            fd = os.open(tmp / f"openai-bare-{name}-{stored}.jsonl", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

            def durable_floor(fd=fd, line=line) -> None:  # what a run must write: its start, then its fsync'd end
                os.write(fd, line)
                os.write(fd, line)
                os.fsync(fd)

            ours, base, floor, fsyncs = [], [], [], 0
            for i in range(n):  # interleaved, so drift in the server, the disk or the machine hits all alike
                base.append(timed(raw))
                with counting_fsyncs() as count:
                    ours.append(timed(lambda i=i, agent=agent, sid=sid: agent.run(f"Prompt {i}", session_id=sid)))
                fsyncs += count[0]
                if name == "TinyDb":
                    floor.append(timed(durable_floor))
            os.close(fd)
            diff = median_ms(ours) - median_ms(base)
            ratio = median_ms(ours) / median_ms(base)
            label = f"Agent.run vs raw openai SDK, {name} ({stored:,} runs stored), median"
            rows.append((label, f"{median_ms(ours):.2f} ms", f"{median_ms(base):.2f} ms raw SDK",
                         f"{ratio:.2f}x ({diff:+.2f} ms)", f"<= {target}x", ratio <= target))
            if name == "TinyDb":  # compaction (every time the journal doubles) adds its own few
                rows.append((f"  fsyncs per Agent.run, {stored:,} runs stored (mean of {n})", f"{fsyncs / n:.2f}",
                             "1 (the run's outcome)", "", "<= 1.05", fsyncs / n <= 1.05))
            if floor:  # the disk's own cost of a durable run, for comparison
                beyond = diff - median_ms(floor)
                rows.append(("  the same, beyond writing the run twice with one fsync", f"{beyond:+.2f} ms",
                             f"{median_ms(floor):.2f} ms for 2 writes + 1 fsync", f"{beyond:+.2f} ms",
                             "for comparison", None))
            db.close()
    return rows


def bench_agent_machinery(n: int) -> list[cli.Row]:
    """Agent.run with every optional feature off, against the same model call and the same two stores."""
    model = OfflineModel()
    agent_db, bare_db = InMemoryDb(), InMemoryDb()
    agent = Agent(model=model, db=agent_db, add_history_to_context=True)
    sid = agent.run("warm up").session_id
    bare_db.upsert_session(Session(session_id=sid))
    messages = agent.get_runs(sid)[-1].messages[:-1]

    def bare() -> None:  # what any run must do: call the model, store the run as it starts and as it ends
        run = RunOutput(session_id=sid, input="prompt", messages=messages)
        bare_db.upsert_run(run, durable=False)
        run.content = "".join(x for x in model.stream(messages) if isinstance(x, str))
        bare_db.upsert_run(run)

    ours, base = [], []
    for _ in range(n):
        base.append(timed(bare))
        ours.append(timed(lambda: agent.run("prompt", session_id=sid)))
    diff = median_ms(ours) - median_ms(base)
    return [("Agent.run machinery, no tools/summaries/state in use (history on)", f"{median_ms(ours):.3f} ms",
             f"{median_ms(base):.3f} ms model call + 2 stores", f"{diff:+.3f} ms", "<= +1 ms", diff <= 1.0)]


def bench_redaction(template: dict[str, Any], n: int) -> list[cli.Row]:
    """What the redaction step costs a run: Agent.run (as in the machinery row) with an OpenAI-sized key
    configured against none, samples alternated; and one stored run's record scanned for the key."""
    key = "sk-proj-" + "Qm7vR2xT9LpW4sZ8nK3jH6fD1cB5yA0eUw" * 5  # 178 characters, as long as project keys
    agent = Agent(model=OfflineModel(), db=InMemoryDb(), add_history_to_context=True)
    sid = agent.run("warm up").session_id
    saved = os.environ.pop("OPENAI_API_KEY", None)
    plain, keyed, scan = [], [], []
    try:
        for _ in range(n):
            plain.append(timed(lambda: agent.run("prompt", session_id=sid)))
            os.environ["OPENAI_API_KEY"] = key
            keyed.append(timed(lambda: agent.run("prompt", session_id=sid)))
            scan.append(timed(lambda: redact_data(template)))
            del os.environ["OPENAI_API_KEY"]
    finally:
        if saved is not None:
            os.environ["OPENAI_API_KEY"] = saved
    diff = median_ms(keyed) - median_ms(plain)
    size = len(json.dumps(template))
    return [("Agent.run with a 178-character API key configured (every write redacted)", f"{median_ms(keyed):.3f} ms",
             f"{median_ms(plain):.3f} ms with no key", f"{diff:+.3f} ms", "<= +0.2 ms", diff <= 0.2),
            (f"redaction scan of one stored run ({size:,} B), key configured", f"{median_ms(scan) * 1000:.1f} us",
             "", "", "for comparison", None)]


def bench_long_reply(repeats: int) -> list[cli.Row]:
    """Streaming cost per delta of a very long reply (20,000 deltas) against a short one (2,000): flat when the
    reply is kept without re-joining every part on each delta."""
    def per_delta(deltas: int) -> float:
        agent = Agent(model=FunctionModel(lambda messages: ("word " for _ in range(deltas))))
        return statistics.median(timed(lambda: agent.run("prompt")) for _ in range(repeats)) / deltas

    short, long = per_delta(2_000), per_delta(20_000)
    return [("stream a reply of 20,000 deltas, per delta (vs 2,000)", f"{long * 1e6:.1f} us",
             f"{short * 1e6:.1f} us", f"{long / short:.2f}x", "<= 1.5x", long / short <= 1.5)]


def bench_cold_open(tmp: Path, template: dict[str, Any], repeats: int) -> list[cli.Row]:
    path = tmp / "cold.json"
    with TinyDb(path) as db:
        prefill(db, template, 100, 100)

    def open_and_list() -> None:
        with TinyDb(path) as db:
            assert len(db.list_sessions()) == 100

    samples = [timed(open_and_list) for _ in range(repeats)]
    ms = median_ms(samples)
    size = path.stat().st_size / 1e6
    return [(f"open 10,000 runs in 100 sessions ({size:.0f} MB) + list sessions, median", f"{ms:.0f} ms",
             f"(fastest of {repeats}: {min(samples) * 1000:.0f} ms)", "", "<= 300 ms", ms <= 300)]


def bench_stock(tmp: Path, template: dict[str, Any], inserts: int) -> list[cli.Row]:
    """Stock TinyDB (JSONStorage rewrites the whole file, no fsync) against TinyDb, at 100 and 10,000 runs.

    TinyDb goes first: the stock runs leave much dirty page cache, which would slow the next fsyncs.
    """
    out: dict[tuple[str, int], float] = {}
    docs = {stored: list(runs_like(template, "s", stored + inserts)) for stored in (100, 10_000)}
    with contextlib.ExitStack() as stack:
        samples: dict[int, list[float]] = {100: [], 10_000: []}
        dbs = {stored: stack.enter_context(TinyDb(tmp / f"ours-{stored}.json")) for stored in docs}
        for stored, db in dbs.items():
            db.tinydb.storage.commit(("runs", d["run_id"], d) for d in docs[stored][:stored])
        for i in range(inserts):
            for stored, db in dbs.items():
                run = RunOutput.from_dict(docs[stored][stored + i])
                samples[stored].append(timed(lambda db=db, run=run: db.upsert_run(run)))
        out.update({("ours", stored): median_ms(ms) for stored, ms in samples.items()})
    for stored, all_docs in docs.items():
        with TinyDB(tmp / f"stock-{stored}.json") as stock:
            stock.storage.write({"runs": {str(i): d for i, d in enumerate(all_docs[:stored])}})
            table = stock.table("runs")
            out["stock", stored] = median_ms([timed(lambda d=d, t=table: t.insert(d)) for d in all_docs[stored:]])
    rows = []
    for who, label in (("ours", "nbsessions TinyDb (fsync)"), ("stock", "stock TinyDB JSONStorage (no fsync)")):
        growth = out[who, 10_000] / out[who, 100]
        rows.append((f"insert one run at 10,000 stored, {label}", f"{out[who, 10_000]:.2f} ms",
                     f"{out[who, 100]:.2f} ms at 100", f"{growth:.1f}x", "for comparison", None))
    return rows


def bench_agno(tmp: Path, n: int) -> list[cli.Row]:
    """Agno's Agent and stores against ours, same loopback model, per-run time early in a session and later."""
    os.environ.setdefault("AGNO_TELEMETRY", "false")  # no calls home from a benchmark
    try:
        from agno.agent import Agent as AgnoAgent
        from agno.db.in_memory import InMemoryDb as AgnoMemory
        from agno.db.json import JsonDb
        from agno.db.sqlite import SqliteDb
        from agno.models.openai import OpenAIChat as AgnoChat
        from openai_server import OpenAIServer

        from nbsessions.llm.openai import OpenAIChat
    except ImportError as exc:
        return [("Agno comparison", f"skipped ({exc}; pip install agno sqlalchemy)", "", "", "", None)]
    rows = []
    with OpenAIServer() as server:
        contenders: dict[str, Callable[[], Any]] = {
            "nbsessions TinyDb": lambda: Agent(model=OpenAIChat(id="m", base_url=server.base_url, api_key="k"),
                                               db=TinyDb(tmp / "vs-agno.json"), add_history_to_context=True),
            "Agno JsonDb": lambda: AgnoAgent(model=AgnoChat(id="m", base_url=server.base_url, api_key="k"),
                                             db=JsonDb(db_path=str(tmp / "agno-json")), add_history_to_context=True,
                                             num_history_runs=3, telemetry=False),
            "Agno SqliteDb": lambda: AgnoAgent(model=AgnoChat(id="m", base_url=server.base_url, api_key="k"),
                                               db=SqliteDb(db_file=str(tmp / "agno.sqlite")),
                                               add_history_to_context=True, num_history_runs=3, telemetry=False),
            "Agno InMemoryDb": lambda: AgnoAgent(model=AgnoChat(id="m", base_url=server.base_url, api_key="k"),
                                                 db=AgnoMemory(), add_history_to_context=True, num_history_runs=3,
                                                 telemetry=False),
        }
        for label, make in contenders.items():
            agent = make()

            def run(i: int, agent: Any = agent) -> None:  # streamed: the loopback server's fast path
                for _ in agent.run(f"Prompt {i}", session_id="s1", stream=True):
                    pass

            ms = [timed(lambda i=i, run=run: run(i)) for i in range(n)]
            first, last = median_ms(ms[:20]), median_ms(ms[-20:])
            rows.append((f"{label}: Agent.run, history on, runs {n - 19}-{n} (vs 1-20)", f"{last:.1f} ms",
                         f"{first:.1f} ms", f"{last / first:.2f}x", "for comparison", None))
    return rows


# -- report ---------------------------------------------------------------------------------------
def table(rows: list[cli.Row], quick: bool) -> str:
    return cli.table(f"{cli.measured_on()}{' (--quick)' if quick else ''}. Baselines are measured in the same run.",
                     rows, ratio="ratio / diff")


def main(argv: list[str] | None = None) -> int:
    args = cli.parse(__doc__, "fewer samples (about a quarter of the time)", argv)
    scale = 4 if args.quick else 1
    with cli.workdir(args) as tmp:
        template = template_run(tmp)
        steps = [(bench_append, (tmp, template, 800 // scale)), (bench_growth, (tmp, template, 200 // scale)),
                 (bench_agent_machinery, (1000 // scale,)), (bench_redaction, (template, 1000 // scale)),
                 (bench_long_reply, (8 // scale,)),
                 (bench_openai, (tmp, template, 300 // scale)),
                 (bench_cold_open, (tmp, template, 8 // scale * 2 or 3)),
                 (bench_stock, (tmp, template, 12 // scale)), (bench_agno, (tmp, 200 // scale + 10))]
        rows: list[cli.Row] = cli.run_steps(steps)
    return cli.report(table(rows, args.quick), [met for *_, met in rows], args, (START, END), f"{INTRO}\n")


if __name__ == "__main__":
    sys.exit(main())
