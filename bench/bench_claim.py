"""Benchmark: claim + complete with a no-op pipeline, 2 workers: jobs per second.

Target (job-engine issue): at least 500 jobs a second here.

Each round starts from a freshly migrated database holding two batches in the one `jobs` table:
each is created by submit() with one small PNG and filled up by one INSERT ... SELECT from
generate_series referencing the same stored blob.

- queue: `--jobs` jobs (default 5,000). Two workers, each a thread with its own Database (engine
  and connection pool) and a worker id registered with `job_queue.register_worker`, loop
  `job_queue.claim` then `job_queue.complete(database, job, [])` until claim finds nothing.
  Each claim and each completion is its own transaction, as in the runner. Timed from both
  workers starting until both have found the queue empty.
- baseline, for context: as many jobs in another batch (their run_after is 'infinity', so no
  claim ever looks at them). Two threads, each with its own psycopg connection, move their half
  of them queued -> processing -> completed with a bare `UPDATE jobs SET status = ... WHERE id =
  ...; COMMIT` per step: the two status changes every job goes through, with nothing else (no
  queue search, lease token, fencing or pooled connection). The same triggers run.

Both parts connect before their clock starts; a CHECKPOINT runs before each; the order
alternates between rounds. The script checks that every job completed exactly once with one
attempt and that the batch counts kept by the triggers match the jobs.

    .venv/bin/python bench/bench_claim.py [--jobs 5000] [--workers 2] [--repeat 3]
        [--database-url URL]
"""

import argparse
import contextlib
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
from PIL import Image

from batchdesk.storage import job_queue
from batchdesk.storage.database import Database
from benchsupport import (
    BenchServer,
    add_jobs,
    at_least,
    bench_server,
    counts_drift,
    median,
    seconds,
    submit_paths,
)

TARGET_RATE = 500.0
SLICES = 5  # the rate over each fifth of a run: does it slow down as the table churns?


def tiny_png(path: Path, colour: tuple[int, int, int]) -> Path:
    Image.new("RGB", (8, 8), colour).save(path)
    return path


def run_threads(count: int, target: Any) -> tuple[float, list[Any]]:
    """Run `target(index, barrier)` on `count` threads; return the time from the barrier on."""
    results: list[Any] = [None] * count
    errors: list[BaseException] = []
    barrier = threading.Barrier(count + 1)

    def body(index: int) -> None:
        try:
            results[index] = target(index, barrier)
        except BaseException as exc:
            errors.append(exc)
            barrier.abort()

    # Daemon threads: after Ctrl+C the database is dropped under them and the process exits.
    threads = [threading.Thread(target=body, args=(i,), daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    with contextlib.suppress(threading.BrokenBarrierError):  # a thread failed: see below
        barrier.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise errors[0]
    return elapsed, [(start, r) for r in results]


def bare_updates(conninfo: str, ids: list[int], threads: int) -> dict[str, Any]:
    """Each thread moves its share of the jobs queued -> processing -> completed, bare UPDATEs."""

    def work(index: int, barrier: threading.Barrier) -> list[float]:
        mine = ids[index::threads]
        done: list[float] = []
        with psycopg.connect(conninfo) as conn:
            conn.execute("SELECT 1")
            conn.commit()
            barrier.wait()
            for job in mine:
                conn.execute("UPDATE jobs SET status = 'processing' WHERE id = %s", (job,))
                conn.commit()
                conn.execute("UPDATE jobs SET status = 'completed' WHERE id = %s", (job,))
                conn.commit()
                done.append(time.perf_counter())
        return done

    elapsed, results = run_threads(threads, work)
    start = results[0][0]
    stamps = sorted(t - start for _, done in results for t in done)
    return {"seconds": elapsed, "jobs": len(stamps), "stamps": stamps}


def claim_and_complete(server: BenchServer, name: str, workers: int) -> dict[str, Any]:
    """Each worker thread claims and completes with no outputs until the queue is empty."""
    databases: list[Database] = []
    try:
        for _ in range(workers):
            database = server.open(name)
            databases.append(database)
            with database.connect() as connection:  # a pooled connection before the clock
                connection.execute("SELECT 1")

        def work(index: int, barrier: threading.Barrier) -> dict[str, Any]:
            database = databases[index]
            worker_id = job_queue.new_worker_id(f"bench-claim-{index}")
            job_queue.register_worker(database, worker_id, 1)
            done: list[float] = []
            claim_times: list[float] = []
            complete_times: list[float] = []
            fenced = 0
            barrier.wait()
            while True:
                began = time.perf_counter()
                job = job_queue.claim(database, worker_id)
                claimed = time.perf_counter()
                if job is None:
                    break
                if not job_queue.complete(database, job, []):
                    fenced += 1
                finished = time.perf_counter()
                done.append(finished)
                claim_times.append(claimed - began)
                complete_times.append(finished - claimed)
            job_queue.unregister_worker(database, worker_id)
            return {
                "done": done,
                "claim": claim_times,
                "complete": complete_times,
                "fenced": fenced,
            }

        elapsed, results = run_threads(workers, work)
    finally:
        for database in databases:
            database.close()
    start = results[0][0]
    stamps = sorted(t - start for _, r in results for t in r["done"])
    return {
        "seconds": elapsed,
        "jobs": len(stamps),
        "stamps": stamps,
        "per_worker": [len(r["done"]) for _, r in results],
        "claim": [t for _, r in results for t in r["claim"]],
        "complete": [t for _, r in results for t in r["complete"]],
        "fenced": sum(r["fenced"] for _, r in results),
    }


def slice_rates(stamps: list[float]) -> list[float]:
    """Jobs per second within each fifth of the jobs, in order."""
    rates = []
    size = len(stamps) // SLICES
    previous = 0.0
    for k in range(SLICES):
        end = stamps[(k + 1) * size - 1] if k < SLICES - 1 else stamps[-1]
        count = size if k < SLICES - 1 else len(stamps) - size * (SLICES - 1)
        rates.append(count / (end - previous) if end > previous else float("inf"))
        previous = end
    return rates


def prepare(server: BenchServer, name: str, folder: Path, jobs: int) -> tuple[Any, list[int]]:
    """Fill the database: the queue batch, and the baseline's batch kept out of the queue."""
    database = server.open(name)
    try:
        queue = submit_paths(
            database, [tiny_png(folder / "BENCH_CLAIM_render_0000.png", (200, 30, 30))], "original"
        )
        bare = submit_paths(
            database, [tiny_png(folder / "BENCH_BARE_render_0000.png", (30, 30, 200))], "original"
        )
    finally:
        database.close()
    conninfo = server.conninfo(name)
    add_jobs(conninfo, queue.id, jobs - 1)
    add_jobs(conninfo, bare.id, jobs - 1)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("UPDATE jobs SET run_after = 'infinity' WHERE batch_id = %s", (bare.id,))
        bare_ids = [
            row[0]
            for row in conn.execute(
                "SELECT id FROM jobs WHERE batch_id = %s ORDER BY id", (bare.id,)
            )
        ]
        conn.execute("VACUUM ANALYZE jobs")
        conn.execute("VACUUM ANALYZE batches")
    return queue.id, bare_ids


def check(conninfo: str, queue_id: Any, jobs: int) -> str:
    """Return '' when every queue job completed once with one attempt, else what is wrong."""
    with psycopg.connect(conninfo) as conn:
        row = conn.execute(
            "SELECT count(*) FILTER (WHERE status = 'completed' AND attempts = 1), count(*), "
            "(SELECT completed_count FROM batches WHERE id = %s) "
            "FROM jobs WHERE batch_id = %s",
            (queue_id, queue_id),
        ).fetchone()
    if row is None or not row[0] == row[1] == row[2] == jobs:
        return f"expected {jobs} jobs completed once, found {row}"
    if counts_drift(conninfo) != 0:
        return "batch counts drifted from the jobs (see batch_count_drift)"
    return ""


def measure_round(
    server: BenchServer, folder: Path, args: argparse.Namespace, index: int
) -> dict[str, Any]:
    name = server.create_migrated_database("claim")
    try:
        queue_id, bare_ids = prepare(server, name, folder, args.jobs)
        conninfo = server.conninfo(name)
        parts: dict[str, dict[str, Any]] = {}
        order = ("bare", "claim") if index % 2 == 0 else ("claim", "bare")
        for part in order:
            server.checkpoint()
            if part == "bare":
                parts[part] = bare_updates(conninfo, bare_ids, args.workers)
            else:
                parts[part] = claim_and_complete(server, name, args.workers)
        problem = check(conninfo, queue_id, args.jobs)
        claim = parts["claim"]
        if claim["jobs"] != args.jobs or claim["fenced"]:
            problem += f" workers completed {claim['jobs']}, fenced off {claim['fenced']}"
    finally:
        server.drop_database(name)
    bare = parts["bare"]
    claim_rate = claim["jobs"] / claim["seconds"]
    bare_rate = bare["jobs"] / bare["seconds"]
    print(
        f"round {index + 1} ({order[0]} first): claim+complete {claim_rate:,.0f} jobs/s "
        f"({seconds(claim['seconds'])}; per worker {claim['per_worker']}), bare UPDATEs "
        f"{bare_rate:,.0f} jobs/s ({seconds(bare['seconds'])}), ratio {claim_rate / bare_rate:.2f}"
        + (f"  [{problem.strip()}]" if problem else ""),
        flush=True,
    )
    return {
        "claim": claim,
        "bare": bare,
        "claim_rate": claim_rate,
        "bare_rate": bare_rate,
        "ratio": claim_rate / bare_rate,
        "problem": problem,
    }


def ms(value: float) -> str:
    return f"{value * 1000:.2f} ms"


def summarise(server: BenchServer, rounds: list[dict[str, Any]], args: argparse.Namespace) -> int:
    claim_rate = median([r["claim_rate"] for r in rounds])
    bare_rate = median([r["bare_rate"] for r in rounds])
    ratio = median([r["ratio"] for r in rounds])
    claims = [t for r in rounds for t in r["claim"]["claim"]]
    completes = [t for r in rounds for t in r["claim"]["complete"]]
    last = rounds[-1]
    print()
    print(
        f"Claim + complete benchmark: {args.jobs:,} jobs, {args.workers} workers, "
        f"{len(rounds)} round(s)"
    )
    print(f"  server                      {server.description}")
    print(
        f"  claim + complete (median)   {claim_rate:,.0f} jobs/s   (one claim "
        f"{ms(median(claims))} median, p90 {ms(statistics.quantiles(claims, n=10)[-1])}; one "
        f"completion {ms(median(completes))} median, p90 "
        f"{ms(statistics.quantiles(completes, n=10)[-1])})"
    )
    print(
        f"  bare UPDATEs (median)       {bare_rate:,.0f} jobs/s   ({2 * bare_rate:,.0f} "
        "single-row UPDATE transactions/s, two per job)"
    )
    print(
        f"  claim+complete / bare       {ratio:.2f}x (median of per-round ratios; "
        "for context, no target)"
    )
    print(
        "  rate by fifth, last round   claim+complete "
        + ", ".join(f"{r:,.0f}" for r in slice_rates(last["claim"]["stamps"]))
        + "; bare "
        + ", ".join(f"{r:,.0f}" for r in slice_rates(last["bare"]["stamps"]))
        + " jobs/s"
    )
    print(
        f"  jobs per second             {claim_rate:,.0f}   target >= {TARGET_RATE:,.0f}/s   "
        f"{at_least(claim_rate, TARGET_RATE)}"
    )
    problems = [r["problem"] for r in rounds if r["problem"]]
    for problem in problems:
        print(f"  ERROR: {problem.strip()}")
    return 0 if not problems and claim_rate >= TARGET_RATE else 1


def run(args: argparse.Namespace) -> int:
    folder = Path(tempfile.mkdtemp(prefix="batchdesk-bench-claim-", dir="/tmp"))
    try:
        with bench_server(args.database_url) as server:
            print(f"Server: {server.description}")
            if not server.can_checkpoint:
                print("  (no CHECKPOINT privilege: timed parts may pay for earlier writes)")
            rounds = [measure_round(server, folder, args, index) for index in range(args.repeat)]
            return summarise(server, rounds, args)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=5000, help="jobs in the queue (default 5000)")
    parser.add_argument("--workers", type=int, default=2, help="claiming workers (default 2)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; medians are reported")
    parser.add_argument(
        "--database-url",
        help="server to use (a database is created and dropped on it); default: a temporary "
        "embedded server",
    )
    args = parser.parse_args()
    if args.jobs < SLICES or args.workers < 1 or args.repeat < 1:
        parser.error(f"--jobs must be at least {SLICES}, --workers and --repeat at least 1")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
