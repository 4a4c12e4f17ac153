"""Benchmark: the claim with priority and pause, with 1,000,000 queued jobs against 1,000.

Target (farm-controls issue): the claim rate with 1,000,000 queued jobs is within 1.2x of the
rate with 1,000 queued (ratio small/large at most 1.2): the claim reads one partial index
(jobs_claim_idx, migration 0009) in its own order, so how many jobs wait must not matter.

Each of the two databases holds four batches, made by submit() with one small PNG each and
filled up by one INSERT ... SELECT from generate_series referencing the same stored blob:

- priorities 80, 50 and 20, each with 30% of the jobs, so the claim's order has levels to go
  through (it starts at the top one);
- priority 100, paused, with the other 10%: the highest priority of all, which the claim must
  step over without reading it (paused jobs are not in the index at all).

`--small` (default 1,000) and `--large` (default 1,000,000) jobs in all. Each round, two
workers (threads with a Database, a connection pool and a registered worker id each) claim and
complete 50 jobs untimed, then `--claims` jobs (default 800) between them with `job_queue.claim` and
`job_queue.complete(database, job, [])`, as the runner does: each its own transaction, the
attempt opened and closed with them. Timed from both workers starting until the last claim.
The small database is made afresh for each round; the large one once, and VACUUM ANALYZE runs
on it before each round (a round uses 800 of its million). The order of the two alternates.

Before the rounds the script prints EXPLAIN (ANALYZE, BUFFERS) of one claim in each database
(in a transaction rolled back), and checks that the large one reads jobs_claim_idx. After them
it checks that every claimed job came from the highest-priority batch that was not paused,
that no paused job was claimed, and that the batch counts agree with the jobs.

    .venv/bin/python bench/bench_claim_depth.py [--small 1000] [--large 1000000]
        [--claims 800] [--repeat 3] [--database-url URL]
"""

import argparse
import contextlib
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
from PIL import Image

from batchdesk.storage import farm_controls, job_queue, worker_liveness
from batchdesk.storage.database import Database
from batchdesk.storage.job_queue import _CLAIM
from benchsupport import BenchServer, bench_server, counts_drift, median, seconds, submit_paths

TARGET_RATIO = 1.2
WARM_UP_CLAIMS = 50  # per part per round, before the timed claims
# (name, priority, paused, share of the jobs)
BATCHES = (
    ("BENCH_HIGH", 80, False, 0.3),
    ("BENCH_MID", 50, False, 0.3),
    ("BENCH_LOW", 20, False, 0.3),
    ("BENCH_HELD", 100, True, 0.1),
)


def fill(server: BenchServer, name: str, folder: Path, jobs: int) -> dict[str, UUID]:
    """Make the four batches with `jobs` jobs in all; return their ids by name."""
    folder.mkdir(parents=True, exist_ok=True)
    database = server.open(name)
    ids: dict[str, UUID] = {}
    try:
        for index, (prefix, priority, paused, _share) in enumerate(BATCHES):
            png = folder / f"{prefix}_render_0000.png"
            Image.new("RGB", (8, 8), (index * 60, 30, 30)).save(png)
            batch = submit_paths(database, [png], "original")
            farm_controls.set_priority(database, [batch.id], priority)
            if paused:
                farm_controls.pause(database, [batch.id])
            ids[prefix] = batch.id
    finally:
        database.close()
    with psycopg.connect(server.conninfo(name)) as conn:
        for prefix, _priority, _paused, share in BATCHES:
            # The copies of the batch's priority and pause are inserted with the jobs, as a
            # submission's are, so the insert trigger has nothing to put right.
            conn.execute(
                "INSERT INTO jobs (batch_id, position, file_name, input_sha256, input_size, "
                "pipeline, priority, paused) "
                "SELECT j.batch_id, g, 'copy_' || g || '.png', j.input_sha256, j.input_size, "
                "j.pipeline, j.priority, j.paused "
                "FROM (SELECT * FROM jobs WHERE batch_id = %s LIMIT 1) AS j, "
                "generate_series(1, %s) AS g",
                (ids[prefix], max(int(jobs * share) - 1, 0)),
            )
        conn.commit()
    vacuum(server.conninfo(name))
    return ids


def vacuum(conninfo: str) -> None:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE jobs")
        conn.execute("VACUUM ANALYZE job_attempts")
        conn.execute("VACUUM ANALYZE batches")


def explain(conninfo: str) -> str:
    """EXPLAIN (ANALYZE, BUFFERS) of one claim, rolled back."""
    with psycopg.connect(conninfo) as conn:
        conn.execute(
            "INSERT INTO workers (id, host, pid, threads) VALUES ('bench-explain', 'bench', 0, 1)"
        )
        rows = conn.execute(
            "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF, SUMMARY OFF) " + _CLAIM,
            {"worker": "bench-explain", "limit": 1},  # one job, as job_queue.claim takes
        ).fetchall()
        conn.rollback()
    return "\n".join(str(row[0]) for row in rows)


def claim_some(server: BenchServer, name: str, claims: int, workers: int) -> dict[str, Any]:
    """Two workers claim and complete `claims` jobs between them; return times and job ids."""
    databases: list[Database] = []
    taken = 0
    lock = threading.Lock()
    results: list[dict[str, Any]] = [{} for _ in range(workers)]
    barrier = threading.Barrier(workers + 1)
    errors: list[BaseException] = []
    try:
        for _ in range(workers):
            database = server.open(name)
            databases.append(database)
            with database.connect() as connection:
                connection.execute("SELECT 1")

        def work(index: int) -> None:
            nonlocal taken
            try:
                database = databases[index]
                worker_id = worker_liveness.new_worker_id(f"bench-depth-{index}")
                worker_liveness.register_worker(database, worker_id, 1)
                claimed: list[int] = []
                claim_times: list[float] = []
                barrier.wait()
                while True:
                    with lock:
                        if taken >= claims:
                            break
                        taken += 1
                    began = time.perf_counter()
                    job = job_queue.claim(database, worker_id)
                    claim_times.append(time.perf_counter() - began)
                    if job is None:
                        raise RuntimeError("the queue ran dry: raise --small or lower --claims")
                    if not job_queue.complete(database, job, []):
                        raise RuntimeError(f"job {job.id} was fenced off")
                    claimed.append(job.id)
                worker_liveness.unregister_worker(database, worker_id)
                results[index] = {"claimed": claimed, "claim": claim_times}
            except BaseException as exc:
                errors.append(exc)
                barrier.abort()

        threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(workers)]
        for thread in threads:
            thread.start()
        with contextlib.suppress(threading.BrokenBarrierError):  # a thread failed: see below
            barrier.wait()
        start = time.perf_counter()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - start
    finally:
        for database in databases:
            database.close()
    if errors:
        raise errors[0]
    return {
        "seconds": elapsed,
        "claimed": [job for r in results for job in r["claimed"]],
        "claim": [t for r in results for t in r["claim"]],
    }


def check_order(conninfo: str, ids: dict[str, UUID], claimed: list[int]) -> str:
    """'' when the claimed jobs came from the top unpaused batch(es) in order, else what not."""
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute(
            "SELECT batch_id, count(*) FROM jobs WHERE id = ANY(%s) GROUP BY batch_id",
            (claimed,),
        ).fetchall()
        queued: dict[UUID, int] = dict(
            conn.execute(
                "SELECT batch_id, count(*) FROM jobs WHERE status = 'queued' GROUP BY batch_id"
            ).fetchall()
        )
    by_batch = {batch_id: count for batch_id, count in rows}
    if by_batch.get(ids["BENCH_HELD"]):
        return "jobs of the paused batch were claimed"
    # Every lower level may have been touched only once the level above it ran out.
    for upper, lower in (("BENCH_HIGH", "BENCH_MID"), ("BENCH_MID", "BENCH_LOW")):
        if by_batch.get(ids[lower]) and queued.get(ids[upper]):
            return f"{lower} jobs were claimed while {upper} jobs still waited"
    if counts_drift(conninfo) != 0:
        return "batch counts drifted from the jobs (see batch_count_drift)"
    return ""


def run(args: argparse.Namespace) -> int:
    folder = Path(tempfile.mkdtemp(prefix="batchdesk-bench-depth-", dir="/tmp"))
    try:
        with bench_server(args.database_url) as server:
            print(f"Server: {server.description}", flush=True)
            began = time.perf_counter()
            large = server.create_migrated_database("depth_large")
            large_ids = fill(server, large, folder / "large", args.large)
            print(f"Filled {args.large:,} jobs in {seconds(time.perf_counter() - began)}")
            small = server.create_migrated_database("depth_small")
            small_ids = fill(server, small, folder / "small", args.small)

            plans = {
                "small": explain(server.conninfo(small)),
                "large": explain(server.conninfo(large)),
            }
            for label, plan in plans.items():
                print(f"\nOne claim's plan with the {label} queue (EXPLAIN ANALYZE, BUFFERS):")
                for line in plan.splitlines():
                    print(f"  {line}")
            problems = []
            if "Index Scan using jobs_claim_idx" not in plans["large"]:
                problems.append("the claim does not read jobs_claim_idx with the large queue")
            server.drop_database(small)

            rounds = []
            for index in range(args.repeat):
                small = server.create_migrated_database("depth_small")
                small_ids = fill(server, small, folder / f"small{index}", args.small)
                vacuum(server.conninfo(large))
                parts: dict[str, dict[str, Any]] = {}
                order = ("small", "large") if index % 2 == 0 else ("large", "small")
                for part in order:
                    name = small if part == "small" else large
                    # Untimed: connections, caches and the CPU's clock as for the timed part.
                    warm = claim_some(server, name, WARM_UP_CLAIMS, args.workers)
                    server.checkpoint()
                    parts[part] = claim_some(server, name, args.claims, args.workers)
                    parts[part]["claimed"] += warm["claimed"]
                for part, name, ids in (("small", small, small_ids), ("large", large, large_ids)):
                    problem = check_order(server.conninfo(name), ids, parts[part]["claimed"])
                    if problem:
                        problems.append(f"round {index + 1}, {part}: {problem}")
                server.drop_database(small)
                rates = {p: args.claims / parts[p]["seconds"] for p in parts}
                ratio = rates["small"] / rates["large"]
                rounds.append({"rates": rates, "ratio": ratio, "parts": parts})
                print(
                    f"round {index + 1} ({order[0]} first): {args.small:,} queued "
                    f"{rates['small']:,.0f} jobs/s, {args.large:,} queued "
                    f"{rates['large']:,.0f} jobs/s, ratio {ratio:.2f}",
                    flush=True,
                )
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    ratio = median([r["ratio"] for r in rounds])
    print()
    print(
        f"Claim depth benchmark: {args.claims:,} claims+completions by {args.workers} workers, "
        f"{len(rounds)} round(s)"
    )
    for part, size in (("small", args.small), ("large", args.large)):
        rate = median([r["rates"][part] for r in rounds])
        claim = median([t for r in rounds for t in r["parts"][part]["claim"]])
        print(
            f"  {size:>9,} queued   {rate:,.0f} jobs/s (median), one claim {claim * 1000:.2f} ms "
            "median"
        )
    verdict = "PASS" if ratio <= TARGET_RATIO else "MISS"
    print(
        f"  small / large rate  {ratio:.2f}x (median of per-round ratios)   target <= "
        f"{TARGET_RATIO}x   {verdict}"
    )
    for problem in problems:
        print(f"  ERROR: {problem}")
    return 0 if not problems and ratio <= TARGET_RATIO else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=1000, help="jobs in the small queue (1000)")
    parser.add_argument(
        "--large", type=int, default=1_000_000, help="jobs in the large queue (1000000)"
    )
    parser.add_argument("--claims", type=int, default=800, help="claims per part per round")
    parser.add_argument("--workers", type=int, default=2, help="claiming workers (default 2)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; medians are reported")
    parser.add_argument(
        "--database-url",
        help="server to use (a database is created and dropped on it); default: a temporary "
        "embedded server",
    )
    args = parser.parse_args()
    # The claims go down the priority levels of the small queue; they must not run it dry.
    if args.claims < 1 or args.claims + WARM_UP_CLAIMS > 0.9 * args.small - args.workers:
        parser.error("--claims must be at least 1 and below 90%% of --small")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
