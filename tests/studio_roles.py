"""A studio server's roles, made as README.md ("Roles on a studio server") says, on a test server.

Roles belong to the whole server (cluster), not to one database, and every test run shares the
servers: each set of roles gets names of its own (the pid and a counter) and is dropped after.
The README's statements are run as written, with only the names changed, so the README stays
true.
"""

import itertools
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from tests.e2e.processes import COMMAND_TIMEOUT, environment_for

README = Path(__file__).parents[1] / "README.md"
SECTION = "**Roles on a studio server.**"
_counter = itertools.count()


def readme_statements() -> tuple[list[str], list[str]]:
    """The README's two SQL blocks (as a superuser; then as the owner), one statement each."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index(SECTION) :]
    blocks = re.findall(r"```sql\n(.*?)```", section, flags=re.DOTALL)[:2]
    assert len(blocks) == 2, "the README's roles section lost its SQL"
    as_superuser, as_owner = (
        [s.strip() for s in block.split(";\n") if s.strip()] for block in blocks
    )
    return as_superuser, as_owner


@dataclass(frozen=True)
class StudioRoles:
    """The README's roles under unique names, and their database on one server."""

    admin_conninfo: str  # a superuser's
    suffix: str
    database: str

    def name(self, readme_name: str) -> str:
        return f"{readme_name}_{self.suffix}"

    @property
    def owner(self) -> str:
        return self.name("batchdesk_owner")

    @property
    def artist(self) -> str:
        return self.name("anna")

    @property
    def viewer(self) -> str:
        return self.name("leo")

    @property
    def stranger(self) -> str:
        """A login role that was given nothing at all."""
        return self.name("stranger")

    def conninfo(self, role: str) -> str:
        return make_conninfo(self.admin_conninfo, user=role, dbname=self.database)

    def rename(self, statement: str) -> str:
        """A README statement with this set's role and database names."""
        for readme_name in ("batchdesk_owner", "batchdesk_artists", "batchdesk_viewers"):
            statement = re.sub(rf"\b{readme_name}\b", self.name(readme_name), statement)
        for readme_name in ("anna", "leo"):
            statement = re.sub(rf"\b{readme_name}\b", self.name(readme_name), statement)
        # The database: the word on its own (role names above carry a suffix after '_').
        return re.sub(r"\bbatchdesk\b(?!_)", self.database, statement)

    def run_as(self, conninfo: str, statements: list[str]) -> None:
        with psycopg.connect(conninfo, autocommit=True) as connection:
            for statement in statements:
                connection.execute(self.rename(statement).encode())


def batchdesk_as(
    roles: StudioRoles, role: str, home: Path, *args: str | Path
) -> subprocess.CompletedProcess[str]:
    """Run `batchdesk --database-url ... ARGS` as `role`; stdin is not a terminal."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "batchdesk",
            "--database-url",
            roles.conninfo(role),
            *map(str, args),
        ],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=environment_for(home),
        cwd=home,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )


@contextmanager
def studio_roles(
    admin_conninfo: str, home: Path, *, installed: bool = True
) -> Iterator[StudioRoles]:
    """Make the README's roles and database and, if `installed`, the schema (by the owner, with
    `batchdesk db upgrade`) and the owner's GRANTs; drop them all afterwards."""
    suffix = f"{os.getpid()}_{next(_counter)}"
    roles = StudioRoles(admin_conninfo, suffix, f"bd_studio_{suffix}")
    as_superuser, as_owner = readme_statements()
    try:
        roles.run_as(admin_conninfo, as_superuser)
        roles.run_as(admin_conninfo, [f"CREATE ROLE {roles.stranger} LOGIN"])
        if installed:
            upgraded = batchdesk_as(roles, roles.owner, home, "db", "upgrade")
            assert upgraded.returncode == 0, upgraded
            roles.run_as(roles.conninfo(roles.owner), as_owner)
        yield roles
    finally:
        with psycopg.connect(admin_conninfo, autocommit=True) as connection:
            connection.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(roles.database)
                )
            )
            for readme_name in (
                "anna",
                "leo",
                "stranger",
                "batchdesk_artists",
                "batchdesk_viewers",
            ):
                connection.execute(
                    sql.SQL("DROP ROLE IF EXISTS {}").format(
                        sql.Identifier(roles.name(readme_name))
                    )
                )
            connection.execute(
                sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(roles.owner))
            )
