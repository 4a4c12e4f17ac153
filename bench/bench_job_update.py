"""Benchmark: the cost of one job-status update in a batch of 10,000 jobs against a batch of 10.

Target (foundation issue): at most 1.3x. The triggers keep each batch's counts by +1/-1 deltas
and never count a batch's jobs, so the cost of an update should not depend on the batch's size.

One migrated database holds both batches, so both live in the same `jobs` table and differ only
in size. Each batch is created by submit() with one small PNG, then filled up by one INSERT ...
SELECT from generate_series referencing the same stored blob. Each timed update is its own
transaction (UPDATE jobs SET status = ... WHERE id = ...; COMMIT) on one connection; updates to
the two batches are interleaved (A B, B A, A B, ...) so noise hits both alike. Every update
moves one job one step along queued -> processing -> completed -> queued: all ten jobs of the
small batch, and 1,000 jobs spread evenly over the big one, so both see the same transitions.

For scale the script also times recount_batch() on both batches: a full recount of a batch's
jobs, the O(n) work a counting trigger would add to every update.

    .venv/bin/python bench/bench_job_update.py [--small 10] [--big 10000] [--updates 3000]
        [--repeat 3] [--database-url URL]
"""

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from uuid import UUID

import psycopg
from PIL import Image

from batchdesk.domain.file_selection import select_files
from batchdesk.storage.database import Database
from batchdesk.storage.submission import SubmissionRequest, submit
from benchsupport import BenchServer, bench_server, median, verdict

TARGET_RATIO = 1.3
NEXT_STATUS = {"queued": "processing", "processing": "completed", "completed": "queued"}
BIG_WORKING_SET = 1000  # jobs of the big batch that the updates cycle through
WARMUP = 200  # updates per batch before timing starts (plans prepared, caches warm)
RECOUNTS = 30


def create_batch(database: Database, folder: Path, prefix: str, jobs: int) -> list[int]:
    """Submit a one-file batch, add `jobs - 1` more jobs by SQL; return its job ids in order."""
    path = folder / f"{prefix}_render_0000.png"
    Image.new("RGB", (8, 8), (200, 30, 30)).save(path)
    request = SubmissionRequest(
        files=select_files([path]).files, description=f"bench {prefix}", created_by="bench@bench"
    )
    batch = submit(database, request).batches[0]
    with psycopg.connect(database.conninfo) as conn:
        sha, size = conn.execute(
            "SELECT input_sha256, input_size FROM jobs WHERE batch_id = %s", (batch.id,)
        ).fetchone()  # type: ignore[misc]
        conn.execute(
            "INSERT INTO jobs (batch_id, position, file_name, input_sha256, input_size, pipeline) "
            "SELECT %s, g, 'copy_' || g || '.png', %s, %s, 'original' "
            "FROM generate_series(1, %s) AS g",
            (batch.id, sha, size, jobs - 1),
        )
        conn.commit()
        ids = [
            row[0]
            for row in conn.execute(
                "SELECT id FROM jobs WHERE batch_id = %s ORDER BY position", (batch.id,)
            )
        ]
        total = conn.execute(
            "SELECT total_files FROM batches WHERE id = %s", (batch.id,)
        ).fetchone()
    if total is None or not total[0] == jobs == len(ids):
        raise RuntimeError(f"the batch of {jobs} jobs came out with {total} counted")
    return ids


class Updater:
    """Moves jobs one status step at a time, each step its own transaction, and times it."""

    def __init__(self, conn: psycopg.Connection, ids: list[int]) -> None:
        self.conn = conn
        self.ids = ids
        self.status = dict.fromkeys(ids, "queued")
        self.count = 0

    def step(self) -> float:
        job = self.ids[self.count % len(self.ids)]
        self.count += 1
        status = NEXT_STATUS[self.status[job]]
        start = time.perf_counter()
        self.conn.execute("UPDATE jobs SET status = %s WHERE id = %s", (status, job))
        self.conn.commit()
        elapsed = time.perf_counter() - start
        self.status[job] = status
        return elapsed


def spread(ids: list[int], count: int) -> list[int]:
    """`count` ids evenly spaced over `ids` (all of them if there are not more)."""
    if len(ids) <= count:
        return list(ids)
    return [ids[i * len(ids) // count] for i in range(count)]


def interleaved(small: Updater, big: Updater, updates: int) -> tuple[list[float], list[float]]:
    small_times: list[float] = []
    big_times: list[float] = []
    for k in range(updates):
        if k % 2 == 0:
            small_times.append(small.step())
            big_times.append(big.step())
        else:
            big_times.append(big.step())
            small_times.append(small.step())
    return small_times, big_times


def time_recounts(
    conn: psycopg.Connection, small_batch: UUID, big_batch: UUID
) -> tuple[float, float]:
    small_times: list[float] = []
    big_times: list[float] = []
    for _ in range(RECOUNTS):
        for batch, times in ((small_batch, small_times), (big_batch, big_times)):
            start = time.perf_counter()
            changed = conn.execute("SELECT recount_batch(%s)", (batch,)).fetchone()
            conn.commit()
            times.append(time.perf_counter() - start)
            if changed is None or changed[0] is not False:
                raise RuntimeError("recount_batch changed a batch: its counts had drifted")
    return median(small_times), median(big_times)


def ms(value: float) -> str:
    return f"{value * 1000:.3f} ms"


def run(args: argparse.Namespace) -> int:
    with bench_server(args.database_url) as server:
        print(f"Server: {server.description}")
        return measure(server, args)


MODES = (
    ("durable", "on", "durable commits (synchronous_commit on, as batchdesk runs)"),
    ("no-flush", "off", "without waiting for the WAL flush (synchronous_commit off): CPU cost"),
)


def measure(server: BenchServer, args: argparse.Namespace) -> int:
    name = server.create_migrated_database("jobs")
    database = server.open(name)
    folder = Path(tempfile.mkdtemp(prefix="batchdesk-bench-jobs-", dir="/tmp"))
    try:
        small_ids = create_batch(database, folder, "BENCH_SMALL", args.small)
        big_ids = create_batch(database, folder, "BENCH_BIG", args.big)
    finally:
        database.close()
        shutil.rmtree(folder, ignore_errors=True)
    conninfo = server.conninfo(name)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE jobs")
        conn.execute("VACUUM ANALYZE batches")
    small_label, big_label = f"batch of {len(small_ids):,}", f"batch of {len(big_ids):,}"
    print(
        f"  {small_label} and {big_label} jobs; {args.repeat} round(s) of {args.updates:,} "
        f"timed updates per batch, after {WARMUP} warm-up updates each"
    )
    results: dict[str, list[tuple[list[float], list[float], float]]] = {}
    with psycopg.connect(conninfo) as conn:
        small = Updater(conn, small_ids)
        big = Updater(conn, spread(big_ids, BIG_WORKING_SET))
        for mode, setting, _title in MODES:
            conn.execute("SELECT set_config('synchronous_commit', %s, false)", (setting,))
            conn.commit()
            interleaved(small, big, WARMUP)
            rounds = results[mode] = []
            for index in range(args.repeat):
                small_times, big_times = interleaved(small, big, args.updates)
                ratio = median(big_times) / median(small_times)
                rounds.append((small_times, big_times, ratio))
                print(
                    f"{mode} round {index + 1}: {small_label} {ms(median(small_times))}, "
                    f"{big_label} {ms(median(big_times))} per update (median), ratio {ratio:.2f}",
                    flush=True,
                )
        # Still without waiting for the flush, so the recount's own work shows.
        batch_ids = conn.execute(
            "SELECT (SELECT batch_id FROM jobs WHERE id = %s), "
            "(SELECT batch_id FROM jobs WHERE id = %s)",
            (small_ids[0], big_ids[0]),
        ).fetchone()
        if batch_ids is None:
            raise RuntimeError("the benchmark's batches disappeared")
        recount_small, recount_big = time_recounts(conn, batch_ids[0], batch_ids[1])
        drift = conn.execute("SELECT count(*) FROM batch_count_drift").fetchone()
        conn.commit()
    server.drop_database(name)

    drift_free = drift is not None and drift[0] == 0
    print()
    print(
        f"Job-status update benchmark: {small_label} vs {big_label} jobs, "
        f"{args.repeat} x {args.updates:,} updates each"
    )
    print(f"  server                      {server.description}")
    ratios = {}
    for mode, _setting, title in MODES:
        rounds = results[mode]
        print(f"  {title}")
        for label, times in (
            (small_label, [t for r in rounds for t in r[0]]),
            (big_label, [t for r in rounds for t in r[1]]),
        ):
            deciles = statistics.quantiles(times, n=10)
            print(
                f"    {label:<17} median {ms(median(times))}, p10 {ms(deciles[0])}, "
                f"p90 {ms(deciles[-1])}, mean {ms(statistics.fmean(times))}"
            )
        ratios[mode] = ratio = median([r[2] for r in rounds])
        print(
            f"    big / small       {ratio:.2f}x (median of per-round ratios of medians)   "
            f"target <= {TARGET_RATIO}x   {verdict(ratio, TARGET_RATIO)}"
        )
    print(
        f"  for scale: recount_batch    {ms(recount_small)} vs {ms(recount_big)} "
        f"({recount_big / recount_small:.0f}x): the work counting a batch's jobs would add "
        "to every update"
    )
    print(f"  batch counts match jobs     {'yes' if drift_free else 'NO (see batch_count_drift)'}")
    ok = drift_free and all(r <= TARGET_RATIO for r in ratios.values())
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=10, help="jobs in the small batch")
    parser.add_argument("--big", type=int, default=10_000, help="jobs in the big batch")
    parser.add_argument("--updates", type=int, default=3000, help="timed updates per batch/round")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; medians are reported")
    parser.add_argument(
        "--database-url",
        help="server to use (a database is created and dropped on it); default: a temporary "
        "embedded server",
    )
    args = parser.parse_args()
    if min(args.small, args.big, args.updates, args.repeat) < 1:
        parser.error("--small, --big, --updates and --repeat must be at least 1")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
