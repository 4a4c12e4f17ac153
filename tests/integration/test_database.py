"""The database's connections: reused, checked, rolled back, closed; a dead server said plainly."""

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psycopg
import pytest

from batchdesk.errors import DatabaseUnavailable
from batchdesk.storage import job_queue
from batchdesk.storage.database import Database
from batchdesk.storage.pool import Connection, only_row


def backend_pid(database: Database) -> int:
    with database.connect() as connection:
        return int(only_row(connection.execute("SELECT pg_backend_pid()"))[0])


def studio_setting(database: Database, key: str) -> str | None:
    with database.connect() as connection:
        row = connection.execute(
            "SELECT value FROM studio_settings WHERE key = %s", (key,)
        ).fetchone()
    return None if row is None else str(row[0])


def test_connections_are_reused_between_queries(database: Database) -> None:
    assert backend_pid(database) == backend_pid(database)


def test_a_connection_the_server_dropped_is_replaced_without_an_error(
    database: Database, database_conninfo: str
) -> None:
    dropped = backend_pid(database)
    with psycopg.connect(database_conninfo, autocommit=True) as admin:
        # Waits until the backend has gone: its farewell is on the pooled connection's socket.
        admin.execute("SELECT pg_terminate_backend(%s, 10000)", (dropped,))

    replacement = backend_pid(database)  # the pooled connection is dead: seen, not handed out

    assert replacement != dropped


def test_the_next_operation_after_a_backend_is_killed_works(
    database: Database, database_conninfo: str
) -> None:
    dropped = backend_pid(database)
    with psycopg.connect(database_conninfo, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (dropped,))  # not waiting: a race

    pid = job_queue.with_retry(
        database, lambda connection: only_row(connection.execute("SELECT pg_backend_pid()"))[0]
    )

    assert pid != dropped


def test_a_transaction_whose_connection_dies_before_its_commit_runs_once_more(
    database: Database, database_conninfo: str
) -> None:
    tries: list[int] = []

    def work(connection: Connection) -> int:
        pid = int(only_row(connection.execute("SELECT pg_backend_pid()"))[0])
        tries.append(pid)
        connection.execute("INSERT INTO studio_settings (key, value) VALUES ('try', %s)", (pid,))
        if len(tries) == 1:
            with psycopg.connect(database_conninfo, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s, 10000)", (pid,))
            connection.execute("SELECT 1")  # the connection is gone: nothing was committed
        return pid

    kept = job_queue.with_retry(database, work)

    assert len(tries) == 2
    assert tries[0] != tries[1] == kept
    assert studio_setting(database, "try") == str(kept)


def test_begin_commits_and_connect_rolls_back_what_it_left_open(database: Database) -> None:
    with database.begin() as connection:
        connection.execute("INSERT INTO studio_settings (key, value) VALUES ('kept', 'yes')")
    with database.connect() as connection:
        connection.execute("INSERT INTO studio_settings (key, value) VALUES ('dropped', 'yes')")

    assert studio_setting(database, "kept") == "yes"
    assert studio_setting(database, "dropped") is None


def test_a_failed_block_rolls_back_and_leaves_a_usable_connection(database: Database) -> None:
    def half_done() -> None:
        with database.begin() as connection:
            connection.execute("INSERT INTO studio_settings (key, value) VALUES ('half', 'done')")
            connection.execute("SELECT * FROM no_such_table")

    with pytest.raises(psycopg.errors.UndefinedTable):
        half_done()

    assert studio_setting(database, "half") is None
    assert backend_pid(database) > 0  # the aborted transaction did not poison the pool


def test_close_ends_the_server_sessions(database: Database, database_conninfo: str) -> None:
    pid = backend_pid(database)
    database.close()

    def session_alive() -> bool:
        with psycopg.connect(database_conninfo) as admin:
            row = admin.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,))
            return bool(only_row(row)[0])

    # The server ends a session a moment after its client says goodbye: wait for that moment.
    deadline = time.monotonic() + 10
    while session_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not session_alive()
    # A thread still at work then stops as on a lost connection, with a sentence.
    with pytest.raises(DatabaseUnavailable, match=r"has been closed\.$"), database.connect():
        pass


def test_a_server_that_refuses_is_one_sentence_at_once() -> None:
    nowhere = Database("postgresql://postgres@127.0.0.1:9/test", "the server at 127.0.0.1:9")
    with pytest.raises(DatabaseUnavailable) as raised, nowhere.connect():
        pass
    assert str(raised.value) == (
        "Cannot use the database the server at 127.0.0.1:9: Connection refused."
    )


def test_opening_a_current_database_and_reading_batches_loads_no_sqlalchemy(
    database_conninfo: str, tmp_path: Path
) -> None:
    """SQLAlchemy and Alembic (half a second of imports) load only to migrate; keyring only
    when a server asks for a password. A fresh interpreter shows what a start really loads."""
    probe = textwrap.dedent(
        f"""
        import sys
        from batchdesk.app import open_app
        from batchdesk.domain.batch_query import BatchQuery
        from batchdesk.storage import batch_queries

        environ = {{"BATCHDESK_HOME": {str(tmp_path)!r}}}
        with open_app({database_conninfo!r}, environ=environ) as app:
            with app.database.connect() as connection:
                batch_queries.list_batches(connection, BatchQuery())
        print(sorted(m for m in ("sqlalchemy", "alembic", "keyring") if m in sys.modules))
        """
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_a_connection_comes_back_out_of_autocommit(database: Database) -> None:
    with database.connect() as connection:
        connection.autocommit = True  # as the delivery lock does while it holds a session lock
    with database.connect() as connection:
        connection.execute("INSERT INTO studio_settings (key, value) VALUES ('left', 'open')")
    assert studio_setting(database, "left") is None  # in a transaction, so rolled back
