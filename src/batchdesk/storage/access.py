"""What the connected database role may do with batchdesk's tables: read, write, migrate.

A studio server gives people the rights their job needs (README, "Roles on a studio server"):
an owner that migrates, artists and render nodes that read and write, viewers that read. The
rights are read once at start (one query over the catalogue) so that a role that may not do
something is told so in one sentence, naming the rights it lacks, before it tries: a viewer's
`worker` never starts, a viewer's window never starts its workers.

The tables are those in the schema that holds `alembic_version`, so tables added by later
revisions are checked without a list to keep up to date here.
"""

from collections.abc import Sequence
from dataclasses import dataclass

from batchdesk.errors import AccessDenied
from batchdesk.storage.pool import Connection

ROLES_HELP = 'see "Roles on a studio server" in batchdesk\'s README'
_WRITE_PRIVILEGES = ("INSERT", "UPDATE", "DELETE")
_VERSION_TABLE = "alembic_version"  # Alembic's own: read by everyone, written by migrations


@dataclass(frozen=True)
class RoleAccess:
    """The rights of the connected role, as the catalogue says."""

    role: str
    schema: str  # where batchdesk's tables are (or would be created)
    unreadable: tuple[str, ...]  # tables it may not SELECT from
    unwritable: tuple[tuple[str, str], ...]  # (privilege, table) it lacks to change data
    read_only_transactions: bool  # default_transaction_read_only, or a standby server
    may_create: bool  # CREATE on the schema
    owns_tables: bool  # member of the role owning every batchdesk table
    owner: str  # who may migrate: the tables' owner, or the database's when there are none

    @property
    def may_read(self) -> bool:
        return not self.unreadable

    @property
    def may_write(self) -> bool:
        return self.may_read and not self.unwritable and not self.read_only_transactions

    @property
    def may_migrate(self) -> bool:
        return self.may_create and self.owns_tables and not self.read_only_transactions


# One round trip. Views (batch_count_drift) are read, never written; alembic_version is written
# only by migrations. pg_has_role and has_*_privilege are true for a superuser.
_ACCESS_QUERY = """
WITH target AS (
    SELECT coalesce(
        (SELECT relnamespace FROM pg_class WHERE oid = to_regclass(%(version_table)s)),
        (SELECT oid FROM pg_namespace WHERE nspname = current_schema())
    ) AS schema_oid
), tables AS (
    SELECT c.oid, c.relname, c.relkind, c.relowner
    FROM pg_class c, target
    WHERE c.relnamespace = target.schema_oid AND c.relkind IN ('r', 'p', 'v')
)
SELECT
    current_user,
    (SELECT nspname FROM pg_namespace, target WHERE oid = target.schema_oid),
    coalesce((SELECT has_schema_privilege(target.schema_oid, 'CREATE') FROM target), false),
    current_setting('transaction_read_only') = 'on',
    coalesce(
        (SELECT array_agg(relname ORDER BY relname) FROM tables
         WHERE NOT has_table_privilege(oid, 'SELECT')),
        '{}'
    ),
    coalesce(
        (SELECT array_agg(p.privilege || ' ' || t.relname ORDER BY t.relname, p.ord)
         FROM tables t, unnest(%(write_privileges)s::text[]) WITH ORDINALITY AS p(privilege, ord)
         WHERE t.relkind <> 'v' AND t.relname <> %(version_table)s
           AND NOT has_table_privilege(t.oid, p.privilege)),
        '{}'
    ),
    coalesce((SELECT bool_and(pg_has_role(relowner, 'USAGE')) FROM tables), true),
    coalesce(
        (SELECT pg_get_userbyid(relowner) FROM tables WHERE relname = %(version_table)s),
        (SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database())
    )
"""


def read_access(connection: Connection) -> RoleAccess:
    """Return what the connected role may do with batchdesk's tables."""
    row = connection.execute(
        _ACCESS_QUERY,
        {"version_table": _VERSION_TABLE, "write_privileges": list(_WRITE_PRIVILEGES)},
    ).fetchone()
    assert row is not None
    role, schema, may_create, read_only, unreadable, unwritable, owns, owner = row
    return RoleAccess(
        role=role,
        schema=schema or "(none)",
        unreadable=tuple(unreadable),
        unwritable=tuple(tuple(item.split(" ", 1)) for item in unwritable),
        read_only_transactions=read_only,
        may_create=may_create,
        owns_tables=owns,
        owner=owner,
    )


def require_read(access: RoleAccess, description: str) -> None:
    """Raise AccessDenied unless the role may read every batchdesk table."""
    if access.may_read:
        return
    raise AccessDenied(
        f"The database role {access.role} may not read batchdesk's tables in the database "
        f"{description}: "
        f"it lacks SELECT on {_names(access.unreadable)}; ask the database's owner "
        f"({access.owner}) to grant it ({ROLES_HELP})."
    )


def require_write(access: RoleAccess, description: str, action: str) -> None:
    """Raise AccessDenied unless the role may change batchdesk's data; `action` is e.g.
    "submitting"."""
    if not access.may_write:
        raise write_refusal(access, description, action)


def write_refusal(access: RoleAccess, description: str, action: str) -> AccessDenied:
    """The sentence for a role that may read but not write, naming the rights it lacks."""
    if access.read_only_transactions and not access.unwritable:
        lacks = "its transactions are read-only (default_transaction_read_only, or a standby)"
    else:
        lacks = f"it lacks {_rights(access.unwritable)}"
    return AccessDenied(
        f"The database role {access.role} may only read the database {description}: {action} "
        f"needs "
        f"{_and(list(_WRITE_PRIVILEGES))} on batchdesk's tables, and {lacks} "
        f"({ROLES_HELP})."
    )


def refuse_migration(
    access: RoleAccess, description: str, current: str | None, head: str
) -> AccessDenied:
    """The sentence for a role that finds the schema older than its batchdesk (or missing)."""
    if current is None:
        where = f"The database {description} has no batchdesk schema yet, and the role "
        why = (
            f"{access.role} may not create it (it lacks CREATE on schema {access.schema})"
            if not access.may_create
            else f"{access.role} may not create it"
        )
    else:
        where = (
            f"The database {description} has schema revision {current} and this batchdesk "
            f"needs {head}, but the role "
        )
        why = f"{access.role} may not upgrade it (only the owner of its tables may)"
    return AccessDenied(
        f"{where}{why}: run `batchdesk db upgrade` once as {access.owner} ({ROLES_HELP})."
    )


def _rights(missing: Sequence[tuple[str, str]]) -> str:
    """'INSERT, UPDATE and DELETE on batches, blobs and 7 more tables'."""
    privileges = [p for p in _WRITE_PRIVILEGES if any(m[0] == p for m in missing)]
    tables = sorted({table for _privilege, table in missing})
    return f"{_and(privileges)} on {_names(tables)}"


def _names(tables: Sequence[str], shown: int = 3) -> str:
    if len(tables) <= shown + 1:
        return _and(list(tables))
    return f"{', '.join(tables[:shown])} and {len(tables) - shown} more tables"


def _and(words: list[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"
