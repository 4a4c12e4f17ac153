"""Connections for the queries: psycopg connections, kept open between uses.

Every query in batchdesk is SQL with bound values on a psycopg connection, so the pool hands out
psycopg connections and nothing wraps them. It is small on purpose, and it is not psycopg_pool,
whose connections are made by background threads: against a server that refuses, a caller there
waits the pool's whole timeout and gets "couldn't get a connection", where this pool connects on
the caller's thread and the caller gets libpq's own sentence ("Connection refused") at once,
which is what the window and the CLI show. (SQLAlchemy's pool behaves like this one, but
importing it imports all of SQLAlchemy: a third of a second at every start.)

- A connection is checked before it is handed out again (an empty query; a dead one is closed
  and the next is tried), as SQLAlchemy's `pool_pre_ping` did: a server restart or a dropped
  network costs nobody an error.
- A connection comes back rolled back, out of autocommit; a broken one is closed, never kept.
- At most `keep_idle` connections wait between uses. There is no ceiling on connections in use:
  everything that takes one is a thread of a bounded pool (the window's tasks, the runner's).
"""

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeAlias

import psycopg
from psycopg.pq import TransactionStatus

log = logging.getLogger(__name__)

Connection: TypeAlias = psycopg.Connection[Any]


class PoolClosed(Exception):
    """The pool has been closed: nothing more can be borrowed from it."""


class ConnectionPool:
    def __init__(self, connect: Callable[[], Connection], keep_idle: int = 5) -> None:
        self._connect = connect
        self._keep_idle = keep_idle
        self._idle: list[Connection] = []
        self._lock = threading.Lock()
        self._closed = False

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        """Lend a connection; what the block leaves uncommitted is rolled back."""
        connection = self._take()
        try:
            yield connection
        finally:
            self._give_back(connection)

    def close(self) -> None:
        """Close the waiting connections; those in use are closed when they come back."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    def _take(self) -> Connection:
        while True:
            with self._lock:
                if self._closed:
                    raise PoolClosed("the pool has been closed")
                connection = self._idle.pop() if self._idle else None
            if connection is None:
                return self._connect()
            if _answers(connection):
                return connection
            connection.close()

    def _give_back(self, connection: Connection) -> None:
        if not connection.closed:
            try:
                if connection.info.transaction_status != TransactionStatus.IDLE:
                    connection.rollback()
                connection.autocommit = False  # as every borrower expects to find it
            except psycopg.Error as exc:
                log.debug("closing a connection that could not be reset: %s", exc)
                connection.close()
        with self._lock:
            keep = not self._closed and not connection.closed and len(self._idle) < self._keep_idle
            if keep:
                self._idle.append(connection)
        if not keep:
            connection.close()


def _answers(connection: Connection) -> bool:
    """True when the server still answers on this connection (one round trip)."""
    if connection.closed:
        return False
    try:
        connection.autocommit = True  # an empty query opens no transaction then
        try:
            connection.execute("")
        finally:
            connection.autocommit = False
    except psycopg.Error:
        return False
    return True


def only_row(cursor: psycopg.Cursor[Any]) -> Any:
    """The row of a statement that always returns one (an aggregate, INSERT ... RETURNING)."""
    row = cursor.fetchone()
    if row is None:
        raise AssertionError("a statement that returns one row returned none")
    return row
