"""Benchmark: no-op jobs claimed and completed, batchdesk against PgQueuer and plain SQL.

Targets (throughput issue), on one server, in one run:
- batchdesk at 4 workers at least 1.0x PgQueuer's rate, and at least 3,000 jobs/s;
- statements per job at least 3x fewer than before the issue (7 round trips a job then:
  a liveness query, the claim and its COMMIT, a second liveness query, `complete`'s SELECT,
  its UPDATE and COMMIT; BEGINs not counted).

Three systems, each with 1, 2 and 4 workers (threads, each with connections of its own), each
run on `--jobs` no-op jobs (default 3,000) in a fresh database, `--repeat` rounds (default 2)
in alternating order; medians are reported:

- **batchdesk**: a migrated database holding one batch of the jobs (one small PNG, the other
  jobs added by one INSERT ... generate_series, as before). Each worker claims
  `job_queue.claim_many(database, worker, --batch)` once, then loops
  `job_cycle.complete_and_claim` of what it claimed (no outputs) and the next `--batch` jobs,
  one statement a cycle, until a cycle claims nothing: what a runner with `--batch` threads
  does with jobs that take no time (its completions share a statement, which claims for the
  slots they free). The batch's counts are kept by the triggers as always, and checked at the
  end.
- **PgQueuer** (installed into `bench/.peers`, not batchdesk's dependencies: see README), its
  schema installed in a database of its own, the jobs enqueued in one call; each worker is a
  `QueueManager` on its own asyncpg connection, on a thread with its own event loop, running
  a no-op entrypoint with `batch_size=--batch` in drain mode: timed until every worker has
  stopped, so its buffered completions are in the database.
- **plain SQL on a bare table** `(id bigserial, status text, worker text)`, indexed on the
  queued rows: each worker (psycopg, autocommit) loops `UPDATE ... SET status = 'processing'
  WHERE id IN (SELECT id ... WHERE status = 'queued' ORDER BY id FOR UPDATE SKIP LOCKED LIMIT
  --batch) RETURNING id` then `UPDATE ... SET status = 'done' WHERE id = ANY(...)`.

Statements are counted in the client: every statement psycopg sends (an execute, executemany
or stream, a COMMIT or ROLLBACK, and the BEGIN psycopg sends before the first statement of a
transaction), and every query PgQueuer's asyncpg driver sends; the liveness polls of
batchdesk's pool send nothing. The machine's server has no pg_stat_statements loaded.

    .venv/bin/python bench/bench_claim.py [--jobs 3000] [--batch 10] [--repeat 2]
        [--workers 1,2,4] [--database-url URL]

Install the peers first: `.venv/bin/python -m pip install --target bench/.peers pgqueuer
asyncpg`. The last line printed is `ratio batchdesk/PgQueuer at 4 workers: R.RRx`.
"""

import argparse
import asyncio
import contextlib
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
from PIL import Image
from psycopg.pq import TransactionStatus

from batchdesk.storage import job_cycle, job_queue, worker_liveness
from batchdesk.storage.job_queue import Completion
from benchsupport import (
    BenchServer,
    add_jobs,
    at_least,
    bench_server,
    counts_drift,
    median,
    submit_paths,
)

PEERS = Path(__file__).with_name(".peers")
TARGET_RATIO = 1.0
TARGET_RATE = 3000.0
STATEMENTS_BEFORE = 7.0  # round trips per job before the issue (its profile)
SYSTEMS = ("batchdesk", "pgqueuer", "bare")
NAMES = {"batchdesk": "batchdesk", "pgqueuer": "PgQueuer", "bare": "plain SQL, bare table"}


# -- counting statements ------------------------------------------------------------------------


class StatementCounter:
    """Counts the statements this process sends, through psycopg and PgQueuer's driver."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count = 0

    def add(self, n: int = 1) -> None:
        with self._lock:
            self.count += n

    @contextlib.contextmanager
    def counting(self) -> Iterator[None]:
        patched: list[tuple[Any, str, Any]] = []

        def patch(owner: Any, name: str, make: Callable[[Any], Any]) -> None:
            original = getattr(owner, name)
            patched.append((owner, name, original))
            setattr(owner, name, make(original))

        def statement(original: Any) -> Any:
            def wrapper(cursor: Any, *args: Any, **kwargs: Any) -> Any:
                connection = cursor.connection
                begins = (
                    not connection.autocommit
                    and connection.info.transaction_status == TransactionStatus.IDLE
                )
                self.add(2 if begins else 1)  # psycopg sends BEGIN first, on its own
                return original(cursor, *args, **kwargs)

            return wrapper

        def ending(original: Any) -> Any:
            def wrapper(connection: Any, *args: Any, **kwargs: Any) -> Any:
                if connection.info.transaction_status != TransactionStatus.IDLE:
                    self.add()
                return original(connection, *args, **kwargs)

            return wrapper

        for name in ("execute", "executemany", "stream"):
            patch(psycopg.Cursor, name, statement)
        for name in ("commit", "rollback"):
            patch(psycopg.Connection, name, ending)
        try:
            from pgqueuer.db import AsyncpgDriver

            def sent(original: Any) -> Any:
                async def wrapper(driver: Any, *args: Any, **kwargs: Any) -> Any:
                    self.add()
                    return await original(driver, *args, **kwargs)

                return wrapper

            for name in ("fetch", "execute"):
                patch(AsyncpgDriver, name, sent)
        except ImportError:
            pass
        try:
            yield
        finally:
            for owner, name, original in reversed(patched):
                setattr(owner, name, original)


COUNTER = StatementCounter()


def run_threads(count: int, target: Callable[[int, threading.Barrier], Any]) -> float:
    """Run `target(index, barrier)` on `count` threads; the seconds from the barrier on."""
    errors: list[BaseException] = []
    barrier = threading.Barrier(count + 1)

    def body(index: int) -> None:
        try:
            target(index, barrier)
        except BaseException as exc:
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=body, args=(i,), daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    with contextlib.suppress(threading.BrokenBarrierError):
        barrier.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise errors[0]
    return elapsed


# -- batchdesk ----------------------------------------------------------------------------------


def batchdesk_run(server: BenchServer, folder: Path, jobs: int, workers: int, batch: int) -> dict:
    name = server.create_migrated_database("claim")
    try:
        database = server.open(name)
        try:
            png = folder / "BENCH_CLAIM_render_0000.png"
            Image.new("RGB", (8, 8), (200, 30, 30)).save(png)
            queue = submit_paths(database, [png], "original")
        finally:
            database.close()
        conninfo = server.conninfo(name)
        add_jobs(conninfo, queue.id, jobs - 1)
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
        databases = [server.open(name) for _ in range(workers)]
        ids = [worker_liveness.new_worker_id(f"bench-claim-{i}") for i in range(workers)]
        done = [0] * workers
        try:
            for database, worker_id in zip(databases, ids, strict=True):
                worker_liveness.register_worker(database, worker_id, batch)

            def work(index: int, barrier: threading.Barrier) -> None:
                database, worker_id = databases[index], ids[index]
                barrier.wait()
                claimed = job_queue.claim_many(database, worker_id, batch)
                while claimed:
                    cycle = job_cycle.complete_and_claim(
                        database, worker_id, [Completion(job) for job in claimed], batch
                    )
                    done[index] += len(cycle.completed)
                    claimed = cycle.claimed

            before = COUNTER.count
            seconds = run_threads(workers, work)
            statements = COUNTER.count - before
        finally:
            for database in databases:
                database.close()
        with psycopg.connect(conninfo) as conn:
            row = conn.execute(
                "SELECT count(*) FILTER (WHERE status = 'completed' AND attempts = 1), "
                "(SELECT completed_count FROM batches WHERE id = %s) FROM jobs",
                (queue.id,),
            ).fetchone()
        problem = ""
        if row is None or not row[0] == row[1] == sum(done) == jobs:
            problem = f"expected {jobs} jobs completed once, found {row} ({sum(done)} reported)"
        elif counts_drift(conninfo):
            problem = "batch counts drifted from the jobs"
        return {"seconds": seconds, "statements": statements, "problem": problem}
    finally:
        server.drop_database(name)


# -- plain SQL on a bare table ------------------------------------------------------------------


def bare_run(server: BenchServer, jobs: int, workers: int, batch: int) -> dict:
    name = server.create_database("bare")
    conninfo = server.conninfo(name)
    try:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(
                "CREATE TABLE bare_jobs (id bigserial PRIMARY KEY, status text NOT NULL "
                "DEFAULT 'queued', worker text)"
            )
            conn.execute("CREATE INDEX bare_jobs_queued ON bare_jobs (id) WHERE status = 'queued'")
            conn.execute(
                "INSERT INTO bare_jobs (status) SELECT 'queued' FROM generate_series(1, %s)",
                (jobs,),
            )
            conn.execute("VACUUM ANALYZE bare_jobs")
        connections = [psycopg.connect(conninfo, autocommit=True) for _ in range(workers)]
        done = [0] * workers
        try:

            def work(index: int, barrier: threading.Barrier) -> None:
                conn = connections[index]
                barrier.wait()
                while True:
                    ids = [
                        row[0]
                        for row in conn.execute(
                            "UPDATE bare_jobs SET status = 'processing', worker = %s "
                            "WHERE id IN (SELECT id FROM bare_jobs WHERE status = 'queued' "
                            "ORDER BY id FOR UPDATE SKIP LOCKED LIMIT %s) RETURNING id",
                            (f"w{index}", batch),
                        )
                    ]
                    if not ids:
                        return
                    conn.execute("UPDATE bare_jobs SET status = 'done' WHERE id = ANY(%s)", (ids,))
                    done[index] += len(ids)

            before = COUNTER.count
            seconds = run_threads(workers, work)
            statements = COUNTER.count - before
        finally:
            for conn in connections:
                conn.close()
        with psycopg.connect(conninfo) as conn:
            row = conn.execute("SELECT count(*) FROM bare_jobs WHERE status = 'done'").fetchone()
        problem = "" if row == (jobs,) and sum(done) == jobs else f"done {row}, {sum(done)}"
        return {"seconds": seconds, "statements": statements, "problem": problem}
    finally:
        server.drop_database(name)


# -- PgQueuer ------------------------------------------------------------------------------------


def pgqueuer_run(server: BenchServer, jobs: int, workers: int, batch: int) -> dict:
    import asyncpg
    from pgqueuer.db import AsyncpgDriver
    from pgqueuer.qm import QueueManager
    from pgqueuer.queries import Queries
    from pgqueuer.types import QueueExecutionMode

    name = server.create_database("pgqueuer")
    dsn = asyncpg_params(server.conninfo(name))
    try:

        async def prepare() -> None:
            connection = await asyncpg.connect(**dsn)
            try:
                queries = Queries(AsyncpgDriver(connection))
                await queries.install()
                await queries.enqueue(["noop"] * jobs, [None] * jobs, [0] * jobs)
                await connection.execute("VACUUM ANALYZE")
            finally:
                await connection.close()

        asyncio.run(prepare())
        done = [0] * workers
        loops: list[asyncio.AbstractEventLoop] = []
        managers: list[Any] = []
        ready = threading.Lock()

        def work(index: int, barrier: threading.Barrier) -> None:
            async def main() -> None:
                connection = await asyncpg.connect(**dsn)
                try:
                    manager = QueueManager(Queries(AsyncpgDriver(connection)))

                    @manager.entrypoint("noop")
                    async def noop(_job: Any) -> None:
                        done[index] += 1

                    with ready:
                        loops.append(asyncio.get_running_loop())
                        managers.append(manager)
                    await asyncio.to_thread(barrier.wait)
                    await manager.run(batch_size=batch, mode=QueueExecutionMode.drain)
                finally:
                    await connection.close()

            asyncio.run(main())

        before = COUNTER.count
        seconds = run_threads(workers, work)
        statements = COUNTER.count - before

        async def remaining() -> int:
            connection = await asyncpg.connect(**dsn)
            try:
                return int(await connection.fetchval("SELECT count(*) FROM pgqueuer"))
            finally:
                await connection.close()

        left = asyncio.run(remaining())
        problem = "" if left == 0 and sum(done) == jobs else f"{left} left, {sum(done)} run"
        return {"seconds": seconds, "statements": statements, "problem": problem}
    finally:
        server.drop_database(name)


def asyncpg_params(conninfo: str) -> dict[str, Any]:
    """asyncpg's connection arguments from a libpq key=value string."""
    from psycopg.conninfo import conninfo_to_dict

    parts = conninfo_to_dict(conninfo)
    names = {"user": "user", "password": "password", "host": "host", "port": "port"}
    params: dict[str, Any] = {names[k]: v for k, v in parts.items() if k in names and v}
    params["database"] = parts["dbname"]
    return params


# -- the run ------------------------------------------------------------------------------------


def measure(
    server: BenchServer, folder: Path, system: str, args: argparse.Namespace, workers: int
) -> dict:
    if system == "batchdesk":
        return batchdesk_run(server, folder, args.jobs, workers, args.batch)
    if system == "pgqueuer":
        return pgqueuer_run(server, args.jobs, workers, args.batch)
    return bare_run(server, args.jobs, workers, args.batch)


def run(args: argparse.Namespace, worker_counts: list[int]) -> int:
    sys.path.append(str(PEERS))  # after batchdesk's own packages: they win any clash
    try:
        import pgqueuer  # noqa: F401
    except ImportError:
        print(
            f"PgQueuer is not installed in {PEERS}: .venv/bin/python -m pip install --target "
            "bench/.peers pgqueuer asyncpg",
            file=sys.stderr,
        )
        return 2
    folder = Path(tempfile.mkdtemp(prefix="batchdesk-bench-claim-", dir="/tmp"))
    results: dict[tuple[str, int], list[dict]] = {}
    try:
        with bench_server(args.database_url) as server, COUNTER.counting():
            print(f"Server: {server.description}")
            print(f"{args.jobs:,} no-op jobs a run, batches of {args.batch}", flush=True)
            for workers in worker_counts:
                for index in range(args.repeat):
                    order = SYSTEMS if index % 2 == 0 else tuple(reversed(SYSTEMS))
                    line = []
                    for system in order:
                        server.checkpoint()
                        result = measure(server, folder, system, args, workers)
                        results.setdefault((system, workers), []).append(result)
                        rate = args.jobs / result["seconds"]
                        line.append(
                            f"{NAMES[system]} {rate:,.0f}/s"
                            + (f" [{result['problem']}]" if result["problem"] else "")
                        )
                    print(f"  {workers} worker(s), round {index + 1}: " + "; ".join(line))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return summarise(args, worker_counts, results)


def summarise(
    args: argparse.Namespace, worker_counts: list[int], results: dict[tuple[str, int], list[dict]]
) -> int:
    def rate(system: str, workers: int) -> float:
        return median([args.jobs / r["seconds"] for r in results[system, workers]])

    def per_job(system: str, workers: int) -> float:
        return median([r["statements"] / args.jobs for r in results[system, workers]])

    print()
    print(f"jobs/s (median of {args.repeat}) and statements per job")
    print("  workers  " + "".join(f"{NAMES[s]:>28}" for s in SYSTEMS))
    for workers in worker_counts:
        cells = [f"{rate(s, workers):>12,.0f}/s {per_job(s, workers):6.2f} st/job" for s in SYSTEMS]
        print(f"  {workers:>7}  " + "".join(f"{c:>28}" for c in cells))
    problems = [r["problem"] for rs in results.values() for r in rs if r["problem"]]
    for problem in problems:
        print(f"  ERROR: {problem}")
    top = max(worker_counts)
    ours = rate("batchdesk", top)
    statements = per_job("batchdesk", top)
    print(
        f"  batchdesk at {top} workers: {ours:,.0f} jobs/s, target >= {TARGET_RATE:,.0f}/s "
        f"{at_least(ours, TARGET_RATE)}; {statements:.2f} statements a job, "
        f"{STATEMENTS_BEFORE / statements:.1f}x fewer than the {STATEMENTS_BEFORE:.0f} before, "
        f"target >= 3x {at_least(STATEMENTS_BEFORE / statements, 3.0)}"
    )
    ratio = ours / rate("pgqueuer", top)
    print(
        f"  against PgQueuer: target >= {TARGET_RATIO:.1f}x {at_least(ratio, TARGET_RATIO)}; "
        f"against plain SQL on a bare table: {ours / rate('bare', top):.2f}x"
    )
    print(f"ratio batchdesk/PgQueuer at {top} workers: {ratio:.2f}x")
    return 0 if not problems and ratio >= TARGET_RATIO and ours >= TARGET_RATE else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=3000, help="jobs a run (default 3000)")
    parser.add_argument("--batch", type=int, default=10, help="jobs a claim (default 10)")
    parser.add_argument("--workers", default="1,2,4", help="worker counts (default 1,2,4)")
    parser.add_argument("--repeat", type=int, default=2, help="rounds; medians are reported")
    parser.add_argument(
        "--database-url",
        help="server to use (databases are created and dropped on it); default: a temporary "
        "embedded server",
    )
    args = parser.parse_args()
    try:
        worker_counts = [int(w) for w in args.workers.split(",")]
    except ValueError:
        parser.error("--workers takes counts separated by commas, such as 1,2,4")
    if args.jobs < 1 or args.batch < 1 or args.repeat < 1 or min(worker_counts) < 1:
        parser.error("--jobs, --batch, --repeat and the worker counts must be at least 1")
    return run(args, worker_counts)


if __name__ == "__main__":
    sys.exit(main())
