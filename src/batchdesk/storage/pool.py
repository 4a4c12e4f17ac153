"""Connections for the queries: psycopg connections, kept open between uses.

Every query in batchdesk is SQL with bound values on a psycopg connection, so the pool hands out
psycopg connections and nothing wraps them. It is small on purpose, and it is not psycopg_pool,
whose connections are made by background threads: against a server that refuses, a caller there
waits the pool's whole timeout and gets "couldn't get a connection", where this pool connects on
the caller's thread and the caller gets libpq's own sentence ("Connection refused") at once,
which is what the window and the CLI show. (SQLAlchemy's pool behaves like this one, but
importing it imports all of SQLAlchemy: a third of a second at every start.)

- A connection is checked before it is handed out again without a round trip: one the server
  has closed (a restart, `pg_terminate_backend`, a timeout) has its farewell or its end waiting
  on the socket, which a zero-timeout poll sees; such a one is closed and the next is tried.
  Only a connection idle for `check_after` seconds or more is also asked an empty query (as
  SQLAlchemy's `pool_pre_ping` does on every checkout), for a network that dropped silently.
  A query on every checkout cost a busy worker an eighth of its time; what the poll cannot
  see (a server that closed the connection a moment ago) the caller recovers from by running
  its transaction once more on a fresh connection (`job_queue.with_retry`).
- A connection comes back rolled back, out of autocommit; a broken one is closed, never kept.
- At most `keep_idle` connections wait between uses. There is no ceiling on connections in use:
  everything that takes one is a thread of a bounded pool (the window's tasks, the runner's).
"""

import logging
import selectors
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeAlias

import psycopg
from psycopg.pq import TransactionStatus

log = logging.getLogger(__name__)

Connection: TypeAlias = psycopg.Connection[Any]

CHECK_AFTER_SECONDS = 5.0


class PoolClosed(Exception):
    """The pool has been closed: nothing more can be borrowed from it."""


class ConnectionPool:
    def __init__(
        self,
        connect: Callable[[], Connection],
        keep_idle: int = 5,
        check_after: float = CHECK_AFTER_SECONDS,
    ) -> None:
        self._connect = connect
        self._keep_idle = keep_idle
        self._check_after = check_after
        # Waiting connections with the monotonic time each came back; the last one is the
        # most recently used, taken first.
        self._idle: list[tuple[Connection, float]] = []
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
        for connection, _ in idle:
            connection.close()

    def _take(self) -> Connection:
        while True:
            with self._lock:
                if self._closed:
                    raise PoolClosed("the pool has been closed")
                waiting = self._idle.pop() if self._idle else None
            if waiting is None:
                return self._connect()
            connection, since = waiting
            if _still_open(connection) and (
                time.monotonic() - since < self._check_after or _answers(connection)
            ):
                return connection
            connection.close()

    def _give_back(self, connection: Connection) -> None:
        if not connection.closed and connection.info.transaction_status == TransactionStatus.ACTIVE:
            # A statement still under way: a stream or COPY its reader left when it failed (a
            # full disk mid-download). A rollback would wait for it forever; only closing ends it.
            log.debug("closing a connection given back in the middle of a statement")
            connection.close()
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
                self._idle.append((connection, time.monotonic()))
        if not keep:
            connection.close()


def _still_open(connection: Connection) -> bool:
    """False when the server has closed this idle connection, as far as can be seen for free.

    An idle connection has nothing to read: anything waiting on its socket is the server's
    farewell (an error such as "terminating connection due to administrator command") or the
    end of the stream. A zero-timeout poll, no round trip.
    """
    if connection.closed:
        return False
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(connection.fileno(), selectors.EVENT_READ)
            return not selector.select(timeout=0)
    except (OSError, ValueError, psycopg.Error):
        return False


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
