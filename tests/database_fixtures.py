"""Real PostgreSQL for tests: the embedded server, and the CI server when given.

Every test gets a database of its own, copied from a template that has the schema migrated once
per session. Tests run against each available server: the embedded one always, the one in
BATCHDESK_TEST_DATABASE_URL when that is set.
"""

import itertools
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from batchdesk.storage import migrations_runner
from batchdesk.storage.database import Database
from batchdesk.storage.embedded import DATABASE_OPTIONS, EmbeddedServer

SERVER_URL = os.environ.get("BATCHDESK_TEST_DATABASE_URL")
BACKENDS = ["embedded"] + (["server"] if SERVER_URL else [])
_names = itertools.count()


class TestServer:
    """One PostgreSQL server and a migrated template database on it."""

    __test__ = False  # a helper, not a test class

    def __init__(self, admin_conninfo: str, create_options: str = "") -> None:
        self.admin_conninfo = admin_conninfo
        self.template = f"batchdesk_tpl_{os.getpid()}"
        self._drop(self.template)
        self._admin(
            sql.SQL("CREATE DATABASE {} " + create_options).format(sql.Identifier(self.template))
        )
        template_db = self.open(self.template)
        migrations_runner.upgrade(template_db)
        template_db.close()

    def _admin(self, statement: sql.Composable) -> None:
        with psycopg.connect(self.admin_conninfo, autocommit=True) as conn:
            conn.execute(statement)

    def _drop(self, name: str) -> None:
        self._admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def conninfo(self, name: str) -> str:
        return make_conninfo(self.admin_conninfo, dbname=name)

    def open(self, name: str) -> Database:
        conninfo = self.conninfo(name)
        return Database(conninfo, f"test database {name}")

    def create_database(self) -> str:
        name = f"batchdesk_t_{os.getpid()}_{next(_names)}"
        self._admin(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(self.template)
            )
        )
        return name

    def drop_database(self, name: str) -> None:
        self._drop(name)

    def close(self) -> None:
        self._drop(self.template)


@pytest.fixture(scope="session")
def embedded_server() -> Iterator[TestServer]:
    root = Path(tempfile.mkdtemp(prefix="batchdesk-test-pg-"))
    server = EmbeddedServer(root / "postgres")
    url = server.start()
    # Made like the embedded database batchdesk makes for users.
    test_server = TestServer(make_conninfo(url, dbname="postgres"), DATABASE_OPTIONS)
    yield test_server
    test_server.close()
    server.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def ci_server() -> Iterator[TestServer]:
    assert SERVER_URL
    test_server = TestServer(SERVER_URL)
    yield test_server
    test_server.close()


@pytest.fixture(params=BACKENDS)
def pg_server(request: pytest.FixtureRequest) -> TestServer:
    fixture = "embedded_server" if request.param == "embedded" else "ci_server"
    server: TestServer = request.getfixturevalue(fixture)
    return server


@pytest.fixture
def database_name(pg_server: TestServer) -> Iterator[str]:
    name = pg_server.create_database()
    yield name
    pg_server.drop_database(name)


@pytest.fixture
def database(pg_server: TestServer, database_name: str) -> Iterator[Database]:
    """A migrated, empty database of this test's own."""
    db = pg_server.open(database_name)
    yield db
    db.close()


@pytest.fixture
def database_conninfo(pg_server: TestServer, database_name: str) -> str:
    return pg_server.conninfo(database_name)


@pytest.fixture(scope="session")
def readonly_conninfo(embedded_server: TestServer) -> Iterator[str]:
    """A migrated database shared by a whole session, for tests that only read functions."""
    name = embedded_server.create_database()
    yield embedded_server.conninfo(name)
    embedded_server.drop_database(name)
