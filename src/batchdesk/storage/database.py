"""Opening the database: embedded by default, a studio server when configured.

One code path: the embedded server and a studio server get the same connections, schema,
triggers and SQL. The connection string goes to libpq untouched, so `PG*` variables, `~/.pgpass` and
service files work; it is never printed with its password.
"""

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from batchdesk.errors import AccessDenied, DatabaseProblem, DatabaseUnavailable
from batchdesk.settings import AppPaths, Settings
from batchdesk.storage import conninfo as conninfo_text
from batchdesk.storage import credentials
from batchdesk.storage.access import ROLES_HELP, RoleAccess, read_access, write_refusal
from batchdesk.storage.access import require_write as require_write_access
from batchdesk.storage.embedded import EmbeddedServer
from batchdesk.storage.pool import Connection, ConnectionPool, PoolClosed
from batchdesk.storage.share_paths import SharePaths

log = logging.getLogger(__name__)

# libpq options batchdesk sets unless the connection string chooses otherwise. Keepalives let a
# silently dropped network be noticed in about 25 s instead of never.
_CONNECTION_DEFAULTS = {
    "application_name": "batchdesk",
    "connect_timeout": "10",
    "keepalives": "1",
    "keepalives_idle": "10",
    "keepalives_interval": "5",
    "keepalives_count": "3",
}


@dataclass(frozen=True)
class DatabaseTarget:
    """Which database to use and who chose it."""

    conninfo: str | None  # None: the embedded server
    chosen_by: str

    @property
    def is_embedded(self) -> bool:
        return self.conninfo is None


def resolve_target(
    cli_url: str | None, environ: dict[str, str], settings: Settings
) -> DatabaseTarget:
    """Pick the database: --database-url, BATCHDESK_DATABASE_URL, settings, else embedded."""
    for value, chosen_by in (
        (cli_url, "--database-url"),
        (environ.get("BATCHDESK_DATABASE_URL"), "BATCHDESK_DATABASE_URL"),
        (settings.database_url, "the settings file"),
    ):
        if value:
            return DatabaseTarget(conninfo_text.normalise(value), chosen_by)
    return DatabaseTarget(None, "default")


def _with_defaults(conninfo: str) -> str:
    """`conninfo` with batchdesk's defaults for the options it leaves unset."""
    given = conninfo_to_dict(conninfo)
    options = {k: v for k, v in _CONNECTION_DEFAULTS.items() if k not in given}
    host = str(given.get("host") or "")
    if host.startswith("/"):
        options = {k: v for k, v in options.items() if not k.startswith("keepalives")}
    return make_conninfo(conninfo, **options)


class Database:
    """An open database: its connections, a description safe to show, and the embedded server.

    `conninfo` is what libpq connects with (other connections of this process, such as the
    runner's LISTEN connection, use it) and may hold a password from the keyring: never show
    it; `description` is the text for people. Making one connects to nothing: `open` does that.
    """

    def __init__(
        self,
        conninfo: str,
        description: str,
        embedded: EmbeddedServer | None = None,
        *,
        keep_idle: int = 5,
    ) -> None:
        self.conninfo = conninfo
        self.description = description
        self.embedded = embedded
        # What the role may do; read with the schema's revision at start (migrations_runner).
        self.access: RoleAccess | None = None
        # Where the studio's share is mounted on this machine, for the file store (from the
        # local settings; app.py sets it). File bytes are read and written through file_bytes.
        self.share_paths = SharePaths()
        self._connect = partial(psycopg.connect, _with_defaults(conninfo))
        self._pool = ConnectionPool(self._connect, keep_idle)

    @property
    def is_embedded(self) -> bool:
        return self.embedded is not None

    @classmethod
    def open(
        cls,
        target: DatabaseTarget,
        paths: AppPaths,
        on_status: Callable[[str], None] | None = None,
    ) -> "Database":
        """Start or reach the database and check that it answers.

        A server is tried first as configured (libpq's own `~/.pgpass` and `PG*` variables
        apply); the keyring is asked for a password only when the server asks for one, because
        asking it costs a desktop-keyring probe (~0.1-0.3 s) on every start.
        """
        if target.conninfo is None:
            embedded = EmbeddedServer(paths.pgdata)
            conninfo = embedded.start(on_status)
            return cls._reach(conninfo, f"embedded database in {paths.pgdata}", embedded)
        # Described before the keyring adds a password, so the description cannot hold one.
        description = conninfo_text.describe(target.conninfo)
        try:
            return cls._reach(target.conninfo, description, None)
        except DatabaseUnavailable as exc:
            if not _asks_for_a_password(exc):
                raise
            with_password = credentials.conninfo_with_keyring_password(target.conninfo)
            if with_password == target.conninfo:
                raise  # the keyring has none either: libpq's sentence says what is missing
            return cls._reach(with_password, description, None)

    @classmethod
    def _reach(cls, conninfo: str, description: str, embedded: EmbeddedServer | None) -> "Database":
        database = cls(conninfo, description, embedded)
        try:
            with database.connect() as connection:
                connection.execute("SELECT 1")
        except BaseException:
            database.close()
            raise
        return database

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """Yield a connection inside a transaction that commits on success."""
        with self.connect() as connection:
            yield connection
            connection.commit()

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        """Yield a connection; what the block leaves uncommitted is rolled back.

        After `close()` this raises DatabaseUnavailable, so a thread still at work while the
        program shuts down (a job being given back) stops as it would on a lost connection.
        """
        try:
            with translate_errors(self.description), self._pool.connection() as connection:
                yield connection
        except PoolClosed as exc:
            raise DatabaseUnavailable(f"The database {self.description} has been closed.") from exc
        except AccessDenied as exc:
            access = self.access
            refused = isinstance(exc.__cause__, psycopg.errors.InsufficientPrivilege)
            if not refused or access is None or access.may_write:
                raise
            # A viewer's change that no command checked first (the window's Submit, Delete):
            # the same sentence as the command line's, naming the rights it lacks.
            raise write_refusal(access, self.description, "changing batches") from exc

    def require_write(self, action: str) -> None:
        """Raise AccessDenied unless this role may change batchdesk's data ("submitting")."""
        access = self.access
        if access is None:
            with self.connect() as connection:
                access = self.access = read_access(connection)
        require_write_access(access, self.description, action)

    def new_connection(self) -> Connection:
        """A connection outside the pool, for work that keeps one (the caller closes it)."""
        with translate_errors(self.description):
            return self._connect()

    def close(self) -> None:
        self._pool.close()
        if self.embedded is not None:
            self.embedded.stop()


@contextmanager
def translate_errors(description: str) -> Iterator[None]:
    """Turn what the server or the network did into a KnownError with a sentence to act on.

    A lost or refused connection is DatabaseUnavailable; a right the role lacks (or read-only
    transactions) is AccessDenied; a full disk, a timeout or lock timeout the administrator set,
    or damage the server reports is DatabaseProblem. Anything else (a statement batchdesk got
    wrong) stays a bug; deadlocks and serialization failures stay as they are, for the caller
    to retry.
    """
    try:
        yield
    except psycopg.Error as exc:
        known = _known_error(description, exc)
        if known is None:
            raise
        raise known from exc


def _known_error(description: str, exc: psycopg.Error) -> Exception | None:
    if isinstance(exc, psycopg.OperationalError) and _is_connection_problem(exc):
        return DatabaseUnavailable(_unavailable_message(description, exc))
    state = exc.sqlstate or ""
    reason = _first_line(exc)
    if state == "42501":  # insufficient_privilege
        return AccessDenied(f"The database {description} refused: {reason} ({ROLES_HELP}).")
    if state == "25006":  # read_only_sql_transaction
        return AccessDenied(
            f"The database {description} is read-only for this role or server: {reason}."
        )
    # 53: insufficient resources (disk full, out of memory, too many connections); 57014: a
    # statement_timeout; 55P03: a lock_timeout; 58: the server's own I/O; XX: damaged data.
    if state.startswith(("53", "58", "XX")) or state in ("57014", "55P03"):
        return DatabaseProblem(f"The database {description} could not do it: {reason}.")
    return None


def _first_line(exc: psycopg.Error) -> str:
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return (lines[0] if lines else exc.__class__.__name__).rstrip(".")


def _asks_for_a_password(error: DatabaseUnavailable) -> bool:
    """True when the server refused for want of a (right) password."""
    cause = error.__cause__
    if not isinstance(cause, psycopg.Error):
        return False
    text = str(cause)
    return (
        cause.sqlstate == "28P01"
        or "no password supplied" in text
        or ("password authentication failed" in text)
    )


def _is_connection_problem(exc: psycopg.Error) -> bool:
    # No SQLSTATE: libpq failed to connect or lost the connection. 08xxx: connection exception;
    # 28xxx: authentication; 57P0x: the server is shutting down or unreachable; 3D000: no such db.
    state = exc.sqlstate
    return state is None or state.startswith(("08", "28", "57P0", "3D000"))


def _unavailable_message(description: str, exc: psycopg.Error) -> str:
    # libpq says 'connection to server at "h", port 5432 failed: Connection refused' and then a
    # hint on the next line; the part after the last "failed:" is the reason a person needs.
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    reason = lines[0] if lines else exc.__class__.__name__
    reason = reason.removeprefix("connection failed:").strip()
    if "failed:" in reason:
        reason = reason.rsplit("failed:", 1)[1].strip()
    reason = reason.removeprefix("FATAL:").strip().rstrip(".")
    return f"Cannot use the database {description}: {reason}."


def server_version(conninfo: str, timeout_seconds: int = 5) -> str:
    """Connect once and return the server's version as "PostgreSQL 15.19".

    For the settings dialog's "Test connection": at most `timeout_seconds` per address, whatever
    the connection string says, so a wrong host fails in seconds rather than minutes.

    Raises:
        DatabaseUnavailable: with one sentence naming the server, never its password.
    """
    description = conninfo_text.describe(conninfo)
    full_conninfo = make_conninfo(
        conninfo_text.normalise(conninfo),
        connect_timeout=str(timeout_seconds),
        application_name="batchdesk",
    )
    try:
        with translate_errors(description), psycopg.connect(full_conninfo) as connection:
            number = connection.info.server_version
    except psycopg.Error as exc:
        # Whatever else connecting can raise (a bad option value, say) is still one sentence.
        raise DatabaseUnavailable(_unavailable_message(description, exc)) from exc
    # Since PostgreSQL 10 the number is major * 10000 + minor: 150019 is 15.19.
    return f"PostgreSQL {number // 10000}.{number % 10000}"


def is_retryable(exc: BaseException) -> bool:
    """True for a deadlock or serialization failure: the transaction may simply be run again."""
    return isinstance(exc, psycopg.errors.DeadlockDetected | psycopg.errors.SerializationFailure)
