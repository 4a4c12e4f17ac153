"""Database roles on a studio server, end to end: real roles, real `batchdesk` processes.

The roles are the README's ("Roles on a studio server"), made by its own statements on each
test server (the embedded one, and the one in BATCHDESK_TEST_DATABASE_URL): an owner that
migrates, artists that read and write, viewers that read, and a login role given nothing.
"""

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from batchdesk.storage.migrations_runner import HEAD_REVISION
from tests.database_fixtures import TestServer
from tests.e2e.processes import Run, run_together
from tests.factories import make_png
from tests.studio_roles import StudioRoles, studio_roles

pytestmark = pytest.mark.slow

# The rights a viewer lacks, as the refusal names them.
WRITE_RIGHTS = "INSERT, UPDATE and DELETE"


@pytest.fixture
def home() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="bd-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def studio(pg_server: TestServer, home: Path) -> Iterator[StudioRoles]:
    with studio_roles(pg_server.admin_conninfo, home) as roles:
        yield roles


def as_role(roles: StudioRoles, home: Path, role: str, *commands: list[str | Path]) -> list[Run]:
    """Run each command at once as `role` on the studio's database."""
    return run_together(
        home, *(["--database-url", roles.conninfo(role), *command] for command in commands)
    )


def one_sentence(run: Run, exit_code: int = 1) -> str:
    assert run.returncode == exit_code, run
    assert "Traceback" not in run.stderr, run.stderr
    lines = run.stderr.splitlines()
    assert len(lines) == 1, run.stderr
    return lines[0]


def submit_as(roles: StudioRoles, home: Path, role: str, png: Path) -> str:
    [run] = as_role(roles, home, role, ["submit", "--json", png])
    assert run.returncode == 0, run
    return str(run.json()["batches"][0]["base_directory_name"])


def test_a_role_given_nothing_gets_one_sentence_naming_the_rights_it_lacks(
    studio: StudioRoles, home: Path
) -> None:
    runs = as_role(
        studio,
        home,
        studio.stranger,
        ["list"],
        ["stats", "--json"],
        ["show", "PL_DXB_2026-01-01_batch-1"],
        ["submit", make_png(home / "PL_DXB191_a.png")],
        ["db", "status"],
        [],  # the window: it says why before it opens
    )

    for run in runs:
        sentence = one_sentence(run)
        assert studio.stranger in sentence, run
        assert "may not read" in sentence, run
        assert "it lacks SELECT on alembic_version, " in sentence, run
        assert "Roles on a studio server" in sentence, run
        assert run.stdout == "", run


def test_a_viewer_lists_shows_counts_and_exports(studio: StudioRoles, home: Path) -> None:
    name = submit_as(studio, home, studio.artist, make_png(home / "in" / "PL_DXB191_a.png"))
    [worked] = as_role(studio, home, studio.artist, ["worker", "--drain", "--threads", "1"])
    assert worked.returncode == 0, worked

    listed, shown, stats, exported, pipelines = as_role(
        studio,
        home,
        studio.viewer,
        ["list", "--json"],
        ["show", name, "--json"],
        ["stats", "--json"],
        ["export", name, "-o", home / "out.zip", "--json"],
        ["pipelines"],
    )

    for run in (listed, shown, stats, exported, pipelines):
        assert run.returncode == 0, run
        assert run.stderr == "", run
    assert [row["base_directory_name"] for row in listed.json()] == [name]
    assert [job["file_name"] for job in shown.json()["jobs"]] == ["PL_DXB191_a.png"]
    assert stats.json()["total_batches"] == 1
    assert exported.json()["files"] == 1
    assert (home / "out.zip").stat().st_size > 0
    assert "original" in pipelines.stdout


def test_a_viewer_is_refused_every_change_with_a_sentence_naming_the_rights(
    studio: StudioRoles, home: Path
) -> None:
    name = submit_as(studio, home, studio.artist, make_png(home / "in" / "PL_DXB191_a.png"))
    pipeline_file = home / "studio-web.json"
    pipeline_file.write_text('{"name": "studio-web", "steps": []}', encoding="utf-8")
    commands: dict[str, list[str | Path]] = {
        "submitting": ["submit", make_png(home / "more" / "PL_DXB192_b.png")],
        "running jobs": ["worker", "--drain"],
        "deleting": ["delete", name, "--yes"],
        "retrying": ["retry", name],
        "cancelling": ["cancel", name],
        "delivering": ["deliver", name, "--to", home / "deliveries"],
        "changing priorities": ["priority", name, "80"],
        "pausing": ["pause", name],
        "resuming": ["resume", name],
        "steering workers": ["workers", "pause", "render-node-1"],
        "setting the default priority": ["db", "priority", "70"],
        "adding pipelines": ["pipelines", "add", pipeline_file],
        "retiring pipelines": ["pipelines", "retire", "original"],
        "restoring pipelines": ["pipelines", "restore", "original"],
    }

    runs = as_role(studio, home, studio.viewer, *commands.values())

    for (action, _command), run in zip(commands.items(), runs, strict=True):
        sentence = one_sentence(run)
        assert sentence.startswith(f"The database role {studio.viewer} may only read"), run
        assert f"{action} needs {WRITE_RIGHTS} on batchdesk's tables" in sentence, run
        assert "batches" in sentence, run
        assert run.stdout == "", run
    # Nothing changed: the artist's batch is there, queued, alone.
    with psycopg.connect(studio.conninfo(studio.owner)) as connection:
        rows = connection.execute("SELECT base_directory_name, status FROM batches").fetchall()
    assert rows == [(name, "queued")]
    assert not (home / "deliveries").exists()


def test_an_artist_submits_runs_retries_cancels_and_deletes(
    studio: StudioRoles, home: Path
) -> None:
    name = submit_as(studio, home, studio.artist, make_png(home / "in" / "PL_DXB191_a.png"))

    [worked] = as_role(studio, home, studio.artist, ["worker", "--drain", "--threads", "1"])
    retried, cancelled, shown = as_role(
        studio, home, studio.artist, ["retry", name], ["cancel", name], ["show", name, "--json"]
    )
    [deleted] = as_role(studio, home, studio.artist, ["delete", name, "--yes"])

    assert worked.returncode == 0, worked
    assert "Completed " in worked.stderr
    assert shown.json()["status"] == "completed"
    assert retried.stdout == f"{name} has no failed jobs to retry.\n"
    assert cancelled.stdout == f"{name} has no unfinished jobs to cancel.\n"
    assert deleted.returncode == 0, deleted
    assert deleted.stdout.startswith(f"Deleted {name}")


def test_a_role_that_may_not_upgrade_an_older_schema_is_told_who_may(
    studio: StudioRoles, home: Path
) -> None:
    with psycopg.connect(studio.conninfo(studio.owner), autocommit=True) as connection:
        connection.execute("UPDATE alembic_version SET version_num = '0003'")

    artist, viewer = as_role(studio, home, studio.artist, ["stats"]) + as_role(
        studio, home, studio.viewer, ["list"]
    )

    for run, role in ((artist, studio.artist), (viewer, studio.viewer)):
        sentence = one_sentence(run)
        assert "revision 0003" in sentence, run
        assert HEAD_REVISION in sentence, run
        assert f"the role {role} may not upgrade it" in sentence, run
        assert f"db upgrade` once as {studio.owner}" in sentence, run


def test_a_role_that_may_not_create_the_schema_is_told_who_may(
    pg_server: TestServer, home: Path
) -> None:
    with studio_roles(pg_server.admin_conninfo, home, installed=False) as studio:
        [run] = as_role(studio, home, studio.artist, ["list"])

        sentence = one_sentence(run)
        assert "has no batchdesk schema yet" in sentence, run
        assert f"the role {studio.artist} may not create it" in sentence, run
        assert "CREATE on schema public" in sentence, run
        assert f"db upgrade` once as {studio.owner}" in sentence, run
        with psycopg.connect(studio.conninfo(studio.owner)) as connection:
            tables = connection.execute(
                "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
            ).fetchone()
        assert tables == (0,)


def test_a_role_whose_transactions_are_read_only_counts_as_a_viewer(
    studio: StudioRoles, home: Path
) -> None:
    with psycopg.connect(studio.admin_conninfo, autocommit=True) as connection:
        connection.execute(
            sql.SQL("ALTER ROLE {} SET default_transaction_read_only = on").format(
                sql.Identifier(studio.artist)
            )
        )

    listed, submitted = as_role(
        studio, home, studio.artist, ["list"], ["submit", make_png(home / "PL_DXB191_a.png")]
    )

    assert listed.returncode == 0, listed
    assert listed.stderr == "", listed
    sentence = one_sentence(submitted)
    assert sentence.startswith(f"The database role {studio.artist} may only read"), sentence
    assert "its transactions are read-only" in sentence, sentence
