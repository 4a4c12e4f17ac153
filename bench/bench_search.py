"""Benchmark: text search (`batchdesk list --text`) at 1,000 against 100,000 batches.

Target (throughput issue): a search over 100,000 batches takes at most 1.2x its time over
1,000, the one over 1,000 measured in the same run.

For each size a freshly migrated database is filled as bench_window.py fills it (its
`fill_database`: batches over four weeks, 10 jobs each by default, names, descriptions and file
names like a studio's), then VACUUM ANALYZE. Then, for each search text:

- **query:** `batch_queries.batch_page(connection, BatchQuery(text=...))`, the page of 100 and
  the total that `list` and the window read, on one open connection, 15 times; the median.
- **without the index:** the same with index and bitmap scans turned off for the statement
  (`SET LOCAL enable_bitmapscan, enable_indexscan = off`): how the search runs where pg_trgm is
  missing (the embedded server). Same data, same run.
- **before:** the statement `batch_page` ran for a search until this issue: page and total in
  one statement with `count(*) OVER ()`, with the index there (the planner did not use it).
- **CLI:** `batchdesk list --text <the first text> --json` as a new process, 5 times; the
  median (most of it is starting Python and opening the database).

Whether the index exists depends on the server: migration 0011 creates it only where pg_trgm
is available (the machine's PostgreSQL has it; the embedded server's build does not). The
script says which.

    .venv/bin/python bench/bench_search.py [--sizes 1000,100000] [--jobs-per-batch 10]
        [--database-url URL]
"""

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg

from batchdesk.domain.batch_query import BatchQuery
from batchdesk.storage import batch_queries
from bench_window import fill_database
from benchsupport import BenchServer, bench_server, install_pipelines, seconds

TARGET_RATIO = 1.2
REPEAT = 15
CLI_REPEAT = 5
TEXTS = (
    "sofa",  # in descriptions: many batches
    "Oslo",  # a word of some descriptions
    "batch-7",  # names
    "KL_AMS731_0",  # the file names of one or two batches
    "no such batch",  # nothing
    "_012.png",  # a file name in a quarter of the batches: the total is counted over them
)
BATCHDESK = Path(sys.executable).with_name("batchdesk")


def has_index(conninfo: str) -> bool:
    with psycopg.connect(conninfo) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_indexes WHERE indexname = 'batch_search_content_trgm_idx'"
        ).fetchone()
    return bool(row and row[0])


def page_before(connection: psycopg.Connection[Any], query: BatchQuery) -> tuple[list[Any], int]:
    """A search's page and total as `batch_page` read them before: one statement."""
    where, params = batch_queries.where_clause(query)
    rows = connection.execute(
        f"SELECT {', '.join(batch_queries.BATCH_COLUMNS)}, count(*) OVER () FROM batches{where} "
        f"ORDER BY {batch_queries.order_clause(query)} LIMIT %s OFFSET %s",
        [*params, query.limit, query.offset],
    ).fetchall()
    return rows, int(rows[0][-1]) if rows else 0


def time_queries(
    conninfo: str, *, use_index: bool = True, before: bool = False
) -> dict[str, tuple[float, int]]:
    """Median seconds and the total found, for each text."""
    page = page_before if before else batch_queries.batch_page
    found: dict[str, tuple[float, int]] = {}
    with psycopg.connect(conninfo) as conn:
        for text in TEXTS:
            times = []
            total = 0
            for _ in range(REPEAT):
                if not use_index:
                    conn.execute("SET LOCAL enable_bitmapscan = off")
                    conn.execute("SET LOCAL enable_indexscan = off")
                started = time.perf_counter()
                _rows, total = page(conn, BatchQuery(text=text))
                times.append(time.perf_counter() - started)
                conn.rollback()
            found[text] = (statistics.median(times), total)
    return found


def time_cli(conninfo: str, text: str) -> float:
    times = []
    for _ in range(CLI_REPEAT):
        started = time.perf_counter()
        subprocess.run(
            [str(BATCHDESK), "--database-url", conninfo, "list", "--text", text, "--json"],
            check=True,
            capture_output=True,
            env={**os.environ, "BATCHDESK_DATABASE_URL": ""},
        )
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def measure(server: BenchServer, batches: int, per_batch: int) -> dict[str, Any]:
    name = server.create_migrated_database("search")
    try:
        conninfo = server.conninfo(name)
        database = server.open(name)
        try:
            install_pipelines(database)  # the batches name them (as bench_window.py does)
        finally:
            database.close()
        started = time.perf_counter()
        fill_database(conninfo, batches, batches * per_batch)
        filled = time.perf_counter() - started
        result = {
            "index": has_index(conninfo),
            "with": time_queries(conninfo),
            "without": time_queries(conninfo, use_index=False),
            "before": time_queries(conninfo, before=True),
            "cli": time_cli(conninfo, TEXTS[0]),
        }
        print(
            f"{batches:,} batches, {batches * per_batch:,} jobs (filled in {filled:.0f} s, not "
            f"timed); trigram index: {'yes' if result['index'] else 'no'}",
            flush=True,
        )
        for text in TEXTS:
            (fast, total), (slow, _) = result["with"][text], result["without"][text]
            old, old_total = result["before"][text]
            print(
                f"  {text!r:18} {total:>7,} found   query {seconds(fast):>9}   "
                f"without the index {seconds(slow):>9}   before {seconds(old):>9}"
                + ("" if old_total == total else "  [TOTALS DIFFER]")
            )
        print(f"  CLI list --text {TEXTS[0]!r}: {seconds(result['cli'])}", flush=True)
        return result
    finally:
        server.drop_database(name)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,100000", help="batch counts (1000,100000)")
    parser.add_argument("--jobs-per-batch", type=int, default=10)
    parser.add_argument(
        "--database-url",
        help="server to use (a database is created and dropped on it); default: a temporary "
        "embedded server",
    )
    args = parser.parse_args()
    try:
        sizes = [int(s) for s in args.sizes.split(",")]
    except ValueError:
        parser.error("--sizes takes batch counts separated by commas, such as 1000,100000")
    if len(sizes) < 2 or min(sizes) < 1 or args.jobs_per_batch < 1:
        parser.error("give two or more sizes of at least 1, and at least 1 job per batch")
    with bench_server(args.database_url) as server:
        print(f"Server: {server.description}", flush=True)
        results = [measure(server, size, args.jobs_per_batch) for size in sizes]
    small, large = results[0], results[-1]
    print()
    print(f"Search at {sizes[-1]:,} against {sizes[0]:,} batches (median query times)")
    worst = 0.0
    for text in TEXTS:
        ratio = large["with"][text][0] / small["with"][text][0]
        unindexed = large["without"][text][0] / small["without"][text][0]
        before = large["before"][text][0] / small["before"][text][0]
        worst = max(worst, ratio)
        print(
            f"  {text!r:18} {ratio:6.2f}x   (without the index {unindexed:6.2f}x, "
            f"before {before:6.2f}x)   "
            f"{'PASS' if ratio <= TARGET_RATIO else 'MISS'}"
        )
    cli = large["cli"] / small["cli"]
    print(
        f"  CLI list --text {TEXTS[0]!r}: {cli:.2f}x "
        f"({seconds(small['cli'])} -> {seconds(large['cli'])})"
    )
    print(f"worst ratio {worst:.2f}x, target <= {TARGET_RATIO}x")
    return 0 if worst <= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
