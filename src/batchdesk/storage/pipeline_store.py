"""Pipelines as rows: shared by every workstation, read by the runner, listed by the CLI."""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from psycopg.types.json import Jsonb

from batchdesk.errors import NotFound
from batchdesk.storage.database import Database
from batchdesk.storage.pool import Connection


@dataclass(frozen=True)
class PipelineRow:
    name: str
    description: str
    version: int
    steps: list[dict[str, Any]]


def list_pipelines(connection: Connection) -> list[PipelineRow]:
    rows = connection.execute(
        "SELECT name, description, version, steps FROM pipelines ORDER BY name"
    ).fetchall()
    return [PipelineRow(*row) for row in rows]


def load_pipeline(connection: Connection, name: str) -> PipelineRow:
    row = connection.execute(
        "SELECT name, description, version, steps FROM pipelines WHERE name = %s", (name,)
    ).fetchone()
    if row is None:
        raise NotFound(f"There is no pipeline named {name!r}.")
    return PipelineRow(*row)


def install_missing(database: Database, pipelines: Iterable[Mapping[str, Any]]) -> int:
    """Add the shipped pipelines a database does not have yet; never overwrite a studio's own."""
    added = 0
    with database.begin() as connection:
        for pipeline in pipelines:
            row = connection.execute(
                "INSERT INTO pipelines (name, description, version, steps) "
                "VALUES (%s, %s, %s, %s) ON CONFLICT (name) DO NOTHING RETURNING name",
                (
                    pipeline["name"],
                    pipeline["description"],
                    pipeline["version"],
                    Jsonb(pipeline["steps"]),
                ),
            ).fetchone()
            added += row is not None
    return added
