"""Pipelines as rows: shared by every workstation, versioned, read by the runner and the CLI.

`pipelines` holds each name with its newest version (the head) and whether it is retired;
`pipeline_versions` keeps every version (migration 0010). Changing the head's description or
steps makes the next version (a trigger numbers it), so a batch bound to an older version still
finds exactly the steps it was submitted with. Checking the steps is the jobs layer's business
(`pipeline_spec`); this module stores and reads.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg.types.json import Jsonb

from batchdesk.errors import KnownError, NotFound
from batchdesk.storage.database import Database
from batchdesk.storage.pool import Connection, only_row


@dataclass(frozen=True)
class PipelineRow:
    """One version of a pipeline, and whether the pipeline is retired now."""

    name: str
    description: str
    version: int
    steps: list[dict[str, Any]]
    retired_at: datetime | None = None

    @property
    def retired(self) -> bool:
        return self.retired_at is not None


@dataclass(frozen=True)
class PipelineVersion:
    """One entry of a pipeline's history."""

    version: int
    description: str
    steps: list[dict[str, Any]]
    created_at: datetime
    created_by: str


@dataclass(frozen=True)
class StoredPipeline:
    """What storing a pipeline did: the version it has now, and whether that is a new one."""

    name: str
    version: int
    created: bool  # a name that did not exist before
    changed: bool  # False: the same description and steps as the newest version


class PipelineRetired(KnownError):
    """A retired pipeline was asked for a new batch."""


class PipelineExists(KnownError):
    """A pipeline of that name exists and replacing it was not asked for."""


_HEAD = "SELECT name, description, version, steps, retired_at FROM pipelines"


def list_pipelines(connection: Connection, *, include_retired: bool = True) -> list[PipelineRow]:
    """Return every pipeline's newest version, by name; retired ones unless told otherwise."""
    where = "" if include_retired else " WHERE retired_at IS NULL"
    rows = connection.execute(f"{_HEAD}{where} ORDER BY name").fetchall()
    return [PipelineRow(*row) for row in rows]


def load_pipeline(connection: Connection, name: str, version: int | None = None) -> PipelineRow:
    """Return a pipeline's newest version, or the version asked for."""
    row = connection.execute(f"{_HEAD} WHERE name = %s", (name,)).fetchone()
    if row is None:
        raise NotFound(f"There is no pipeline named {name!r}.")
    head = PipelineRow(*row)
    if version is None or version == head.version:
        return head
    found = connection.execute(
        "SELECT description, steps FROM pipeline_versions WHERE name = %s AND version = %s",
        (name, version),
    ).fetchone()
    if found is None:
        raise NotFound(
            f"Pipeline {name} has no version {version}; its versions are 1 to {head.version}."
        )
    return PipelineRow(name, found[0], version, found[1], head.retired_at)


def load_batch_pipeline(connection: Connection, batch_id: UUID, name: str) -> PipelineRow:
    """Return the version of pipeline `name` that batch `batch_id` was submitted with."""
    row = connection.execute(
        "SELECT v.name, v.description, v.version, v.steps, p.retired_at "
        "FROM batches b JOIN pipeline_versions v ON v.name = b.pipeline "
        "AND v.version = b.pipeline_version JOIN pipelines p ON p.name = v.name "
        "WHERE b.id = %s AND b.pipeline = %s",
        (batch_id, name),
    ).fetchone()
    if row is None:
        return load_pipeline(connection, name)  # a job whose batch names another pipeline
    return PipelineRow(*row)


def history(connection: Connection, name: str) -> list[PipelineVersion]:
    """Return every version of a pipeline, oldest first."""
    load_pipeline(connection, name)  # NotFound with the usual sentence
    rows = connection.execute(
        "SELECT version, description, steps, created_at, created_by FROM pipeline_versions "
        "WHERE name = %s ORDER BY version",
        (name,),
    ).fetchall()
    return [PipelineVersion(*row) for row in rows]


def store_pipeline(
    connection: Connection,
    name: str,
    description: str,
    steps: list[dict[str, Any]],
    *,
    replace: bool,
    created_by: str,
) -> StoredPipeline:
    """Store a checked pipeline as version 1, or (with `replace`) as its next version.

    Raises:
        PipelineExists: the name is taken and `replace` is False.
    """
    existing = connection.execute(
        "SELECT version FROM pipelines WHERE name = %s FOR UPDATE", (name,)
    ).fetchone()
    if existing is None:
        connection.execute(
            "INSERT INTO pipelines (name, description, version, steps) VALUES (%s, %s, 1, %s)",
            (name, description, Jsonb(steps)),
        )
        return _created_by(connection, StoredPipeline(name, 1, True, True), created_by)
    if not replace:
        raise PipelineExists(
            f"A pipeline named {name} exists already (version {existing[0]}); use --replace "
            "to store this as its next version."
        )
    version = only_row(
        connection.execute(
            "UPDATE pipelines SET description = %s, steps = %s WHERE name = %s RETURNING version",
            (description, Jsonb(steps), name),
        )
    )[0]
    stored = StoredPipeline(name, version, created=False, changed=version != existing[0])
    return _created_by(connection, stored, created_by) if stored.changed else stored


def _created_by(connection: Connection, stored: StoredPipeline, who: str) -> StoredPipeline:
    # The trigger that records versions cannot know who made one; the statement that did can.
    connection.execute(
        "UPDATE pipeline_versions SET created_by = %s WHERE name = %s AND version = %s",
        (who, stored.name, stored.version),
    )
    return stored


def set_retired(connection: Connection, name: str, *, retired: bool) -> bool:
    """Retire a pipeline (or restore it); return False when it already was so."""
    row = connection.execute(
        "SELECT retired_at IS NOT NULL FROM pipelines WHERE name = %s FOR UPDATE", (name,)
    ).fetchone()
    if row is None:
        raise NotFound(f"There is no pipeline named {name!r}.")
    if row[0] == retired:
        return False
    connection.execute(
        "UPDATE pipelines SET retired_at = CASE WHEN %s THEN now() END WHERE name = %s",
        (retired, name),
    )
    return True


def require_offered(connection: Connection, name: str) -> PipelineRow:
    """Return the newest version of a pipeline a new batch may use: it exists, is not retired.

    The row is locked against change until the caller's transaction ends.
    """
    row = connection.execute(f"{_HEAD} WHERE name = %s FOR SHARE", (name,)).fetchone()
    if row is None:
        names = [r.name for r in list_pipelines(connection, include_retired=False)]
        raise NotFound(f"There is no pipeline named {name!r}; choose one of {', '.join(names)}.")
    pipeline = PipelineRow(*row)
    if pipeline.retired:
        raise PipelineRetired(
            f"Pipeline {name} is retired and not offered for new batches; choose another, or "
            f"restore it with `batchdesk pipelines restore {name}`."
        )
    return pipeline


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
