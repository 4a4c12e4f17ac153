"""Database passwords come from the OS keyring, reach libpq, and are never shown.

The keyring is a real backend class (`MemoryKeyring`) chosen with `keyring.set_keyring`, as a
studio's desktop keyring would be; `keyring.backends.fail.Keyring` is what a headless machine
without one gets.
"""

import os
from collections.abc import Iterator
from pathlib import Path

import keyring
import keyring.backends.fail
import keyring.errors
import psycopg
import pytest
from keyring.backend import KeyringBackend
from keyring.compat import properties
from psycopg import sql
from psycopg.conninfo import make_conninfo

from batchdesk.errors import DatabaseUnavailable, KnownError
from batchdesk.settings import AppPaths
from batchdesk.storage import credentials
from batchdesk.storage.conninfo import strip_password
from batchdesk.storage.database import Database, DatabaseTarget, server_version
from tests.database_fixtures import TestServer

SECRET = "kr-s3cret pa'ss"


class MemoryKeyring(KeyringBackend):
    """A keyring that keeps passwords in a dict, for the duration of one test."""

    @properties.classproperty
    def priority(cls) -> float:  # noqa: N805 - a class property, as keyring declares it
        # Never picked on its own (keyring skips backends whose priority raises): only when a
        # test sets it.
        raise RuntimeError("a test keyring, chosen only with keyring.set_keyring")

    def __init__(self) -> None:
        super().__init__()
        self.passwords: dict[tuple[str, str], str] = {}
        self.asked: list[str] = []

    def get_password(self, service: str, username: str) -> str | None:
        self.asked.append(username)
        return self.passwords.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.passwords[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if self.passwords.pop((service, username), None) is None:
            raise keyring.errors.PasswordDeleteError("no such password")


@pytest.fixture
def memory_keyring() -> Iterator[MemoryKeyring]:
    previous = keyring.get_keyring()
    ring = MemoryKeyring()
    keyring.set_keyring(ring)
    yield ring
    keyring.set_keyring(previous)


@pytest.fixture
def no_keyring() -> Iterator[None]:
    previous = keyring.get_keyring()
    keyring.set_keyring(keyring.backends.fail.Keyring())
    yield
    keyring.set_keyring(previous)


@pytest.fixture(autouse=True)
def no_libpq_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PGUSER", "PGHOST", "PGPORT", "PGDATABASE"):
        monkeypatch.delenv(name, raising=False)


def test_the_key_names_user_host_port_and_database_as_pgpass_would() -> None:
    key = "anna@db.studio:5432/batchdesk"
    assert credentials.credential_key("postgresql://anna:pw@db.studio/batchdesk") == key
    assert credentials.credential_key("postgresql://anna@db.studio:5432/batchdesk") == key
    assert credentials.credential_key("host=db.studio user=anna dbname=batchdesk") == key
    assert credentials.credential_key("service=studio") == "service=studio"


def test_a_stored_password_is_added_to_a_connection_without_one(
    memory_keyring: MemoryKeyring,
) -> None:
    credentials.store_password("postgresql://anna@db.studio/batchdesk", SECRET)
    assert memory_keyring.passwords == {("batchdesk", "anna@db.studio:5432/batchdesk"): SECRET}
    conninfo = credentials.conninfo_with_keyring_password(
        "host=db.studio user=anna dbname=batchdesk"
    )
    assert credentials.password_in(conninfo) == SECRET


def test_a_password_in_the_connection_string_wins_over_the_keyring(
    memory_keyring: MemoryKeyring,
) -> None:
    credentials.store_password("postgresql://anna@db/x", SECRET)
    given = "postgresql://anna:own@db/x"
    assert credentials.conninfo_with_keyring_password(given) == given


def test_a_connection_the_keyring_knows_nothing_about_is_unchanged(
    memory_keyring: MemoryKeyring,
) -> None:
    assert credentials.conninfo_with_keyring_password("postgresql://bob@db/x") == (
        "postgresql://bob@db/x"
    )


def test_a_forgotten_password_is_gone_and_forgetting_twice_is_fine(
    memory_keyring: MemoryKeyring,
) -> None:
    credentials.store_password("postgresql://anna@db/x", SECRET)
    credentials.forget_password("postgresql://anna@db/x")
    credentials.forget_password("postgresql://anna@db/x")
    assert memory_keyring.passwords == {}
    assert credentials.stored_password("postgresql://anna@db/x") is None


def test_without_a_keyring_connections_go_on_and_storing_says_where_to_put_it(
    no_keyring: None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG", logger="batchdesk")
    assert credentials.conninfo_with_keyring_password("postgresql://anna@db/x") == (
        "postgresql://anna@db/x"
    )
    credentials.forget_password("postgresql://anna@db/x")
    with pytest.raises(KnownError, match=r"no keyring .*~/\.pgpass") as raised:
        credentials.store_password("postgresql://anna@db/x", SECRET)
    assert SECRET not in str(raised.value)
    assert "no keyring backend is usable" in caplog.text
    assert SECRET not in caplog.text


@pytest.fixture
def password_server(embedded_server: TestServer) -> Iterator[str]:
    """A role on the embedded test server that must give a password; yields its conninfo.

    Only this role's lines are added to the server's pg_hba.conf (ahead of its `trust` ones),
    and they are taken out again afterwards.
    """
    role = f"batchdesk_pw_{os.getpid()}"
    name = embedded_server.create_database()
    with psycopg.connect(embedded_server.admin_conninfo, autocommit=True) as admin:
        admin.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(role), sql.Literal(SECRET)
            )
        )
        hba = Path(str(admin.execute("SHOW hba_file").fetchone()[0]))  # type: ignore[index]
        original = hba.read_text()
        lines = "".join(
            f"{kind} all {role} {where} scram-sha-256\n"
            for kind, where in (("local", ""), ("host", "127.0.0.1/32"), ("host", "::1/128"))
        )
        hba.write_text(lines + original)
        admin.execute("SELECT pg_reload_conf()")
    try:
        yield make_conninfo(embedded_server.conninfo(name), user=role)
    finally:
        with psycopg.connect(embedded_server.admin_conninfo, autocommit=True) as admin:
            hba.write_text(original)
            admin.execute("SELECT pg_reload_conf()")
            embedded_server.drop_database(name)
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def open_database(conninfo: str, tmp_path: Path) -> Database:
    paths = AppPaths(tmp_path / "config", tmp_path / "data", tmp_path / "logs")
    return Database.open(DatabaseTarget(conninfo, "test"), paths)


def test_a_server_that_asks_for_a_password_gets_the_keyrings_and_never_shows_it(
    memory_keyring: MemoryKeyring, password_server: str, tmp_path: Path
) -> None:
    credentials.store_password(password_server, SECRET)
    database = open_database(password_server, tmp_path)
    try:
        with database.connect() as connection:
            assert connection.info.password == SECRET
        assert SECRET not in database.description
    finally:
        database.close()


def test_a_server_that_asks_for_a_password_the_keyring_lacks_says_so(
    memory_keyring: MemoryKeyring, password_server: str, tmp_path: Path
) -> None:
    with pytest.raises(DatabaseUnavailable, match="password") as raised:
        open_database(password_server, tmp_path)
    assert str(raised.value).startswith("Cannot use the database ")


def test_a_server_that_needs_no_password_is_reached_without_asking_the_keyring(
    memory_keyring: MemoryKeyring, database_conninfo: str, tmp_path: Path
) -> None:
    conninfo = strip_password(database_conninfo)
    credentials.store_password(conninfo, SECRET)
    database = open_database(conninfo, tmp_path)
    database.close()
    assert memory_keyring.asked == []  # the desktop keyring's probe costs every start time


def test_a_refused_connection_never_shows_the_keyring_password(
    memory_keyring: MemoryKeyring, tmp_path: Path
) -> None:
    conninfo = "postgresql://nobody@127.0.0.1:1/batchdesk"
    credentials.store_password(conninfo, SECRET)
    paths = AppPaths(tmp_path / "config", tmp_path / "data", tmp_path / "logs")
    with pytest.raises(DatabaseUnavailable) as raised:
        Database.open(DatabaseTarget(conninfo, "test"), paths)
    assert str(raised.value).startswith("Cannot use the database nobody@127.0.0.1:1/batchdesk: ")
    assert SECRET not in str(raised.value)
    assert SECRET not in str(raised.value.__cause__)


def test_server_version_names_the_server(database_conninfo: str) -> None:
    assert server_version(database_conninfo).startswith("PostgreSQL 1")


def test_server_version_of_a_closed_port_is_one_sentence_without_the_password() -> None:
    with pytest.raises(DatabaseUnavailable, match=r"^Cannot use the database .*\.$") as raised:
        server_version(credentials.conninfo_with_password("host=127.0.0.1 port=1", SECRET), 2)
    assert "kr-s3cret" not in str(raised.value)
