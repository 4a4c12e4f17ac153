"""Schema migrations: upgrade on start, report status, refuse a schema newer than this program.

Workstations of one studio may start at the same moment after an upgrade; an advisory lock makes
one of them migrate while the others wait and then find nothing left to do.

Alembic, and the SQLAlchemy it runs on, are imported only when the schema is not already this
program's (half a second that every start of the window would otherwise pay): `upgrade` first
reads the stored revision with one query and compares it with HEAD_REVISION, which a test keeps
equal to Alembic's head.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from batchdesk.errors import SchemaMismatch
from batchdesk.storage.access import RoleAccess, read_access, refuse_migration, require_read
from batchdesk.storage.database import Database, translate_errors
from batchdesk.storage.pool import Connection

if TYPE_CHECKING:
    import sqlalchemy
    from alembic.config import Config

MIGRATION_LOCK_KEY = 0x62617463_68646B01  # "batchdk" + 1: any fixed bigint unique to us
# The newest revision in migrations/versions; tests/integration/test_schema.py checks it.
HEAD_REVISION = "0014"


def _config() -> "Config":
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", "batchdesk.storage:migrations")
    return config


@contextmanager
def alembic_connection(
    database: Database, *, begin: bool = False
) -> Iterator["sqlalchemy.Connection"]:
    """A SQLAlchemy connection to `database` for Alembic, in a transaction if `begin`."""
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    engine = create_engine(
        "postgresql+psycopg://", creator=database.new_connection, poolclass=NullPool
    )
    try:
        with (
            translate_errors(database.description),
            engine.begin() if begin else engine.connect() as connection,
        ):
            yield connection
    finally:
        engine.dispose()


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


@dataclass(frozen=True)
class SchemaStatus:
    current: str | None
    head: str
    known: bool  # whether this program knows the current revision

    @property
    def is_current(self) -> bool:
        return self.current == self.head

    @property
    def is_newer(self) -> bool:
        return self.current is not None and not self.known

    def describe(self) -> str:
        if self.current is None:
            return f"empty: no batchdesk schema yet (this program installs revision {self.head})"
        if self.is_current:
            return f"up to date (revision {self.current})"
        if self.is_newer:
            return (
                f"revision {self.current}, newer than this batchdesk (which knows up to "
                f"{self.head}): upgrade batchdesk on this workstation"
            )
        return (
            f"revision {self.current}, behind this batchdesk ({self.head}): "
            "run `batchdesk db upgrade`"
        )


def _current_revision(connection: "sqlalchemy.Connection") -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


def _stored_revision(connection: Connection) -> str | None:
    """The schema's revision by plain SQL; None when there is no single one."""
    table = connection.execute("SELECT to_regclass('alembic_version')").fetchone()
    if table is None or table[0] is None:
        return None
    rows = connection.execute("SELECT version_num FROM alembic_version").fetchall()
    return str(rows[0][0]) if len(rows) == 1 else None


def check_access(database: Database) -> tuple[RoleAccess, str | None]:
    """Read the role's rights and the stored revision; refuse a role that may not read.

    The rights are kept on `database.access` for the commands and the window to consult.
    """
    with database.connect() as connection:
        access = read_access(connection)
        database.access = access
        stored = _stored_revision(connection) if access.may_read else None
    require_read(access, database.description)
    return access, stored


def schema_status(database: Database) -> SchemaStatus:
    from alembic.script import ScriptDirectory

    check_access(database)
    with alembic_connection(database) as connection:
        current = _current_revision(connection)
    script = ScriptDirectory.from_config(_config())
    known = current is None or current in {rev.revision for rev in script.walk_revisions()}
    return SchemaStatus(current=current, head=head_revision(), known=known)


def _refuse_newer(status: SchemaStatus, description: str) -> None:
    if status.is_newer:
        raise SchemaMismatch(
            f"The database {description} has schema revision {status.current}, which is newer "
            f"than this batchdesk understands (up to {status.head}): install the newer batchdesk "
            "on this workstation."
        )


def upgrade(database: Database) -> SchemaStatus:
    """Bring the schema to this program's head revision; refuse a newer one.

    Also refuse, with a sentence naming who may, a role that may not read batchdesk's tables,
    or may not change the schema when it needs changing.
    """
    access, stored = check_access(database)
    if stored == HEAD_REVISION:
        return SchemaStatus(current=HEAD_REVISION, head=HEAD_REVISION, known=True)
    from alembic import command
    from sqlalchemy import text

    status = schema_status(database)
    _refuse_newer(status, database.description)
    if status.is_current:
        return status
    if not access.may_migrate:
        raise refuse_migration(access, database.description, status.current, status.head)
    config = _config()
    with alembic_connection(database, begin=True) as connection:
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
    return schema_status(database)  # which reads the role's rights on the new tables again


def require_current(database: Database) -> None:
    """Raise SchemaMismatch unless the schema is exactly this program's."""
    status = schema_status(database)
    _refuse_newer(status, database.description)
    if not status.is_current:
        raise SchemaMismatch(f"The database {database.description} schema is {status.describe()}.")
