"""A machine whose path to the file store is wrong is told so, and neither writes nor misreads."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from batchdesk.export.zip_export import export_zip
from batchdesk.storage import file_bytes, store_identity
from batchdesk.storage.database import Database
from batchdesk.storage.file_bytes import FileStoreSetting
from batchdesk.storage.pool import only_row
from batchdesk.storage.share_paths import SharePaths
from batchdesk.storage.store_identity import MARKER_NAME, WrongStore
from tests.database_fixtures import TestServer
from tests.factories import make_png
from tests.integration.jobs_support import submit_paths


def set_store(database: Database, folder: Path) -> None:
    """What `batchdesk db file-store FOLDER` does: the setting, and the folder's marker."""
    with database.begin() as connection:
        file_bytes.write_setting(connection, FileStoreSetting(file_bytes.STORE, str(folder)))
        store_identity.claim(connection, folder)


def batch_count(database: Database) -> int:
    with database.connect() as connection:
        return int(only_row(connection.execute("SELECT count(*) FROM batches"))[0])


@pytest.fixture
def second_machine(
    pg_server: TestServer, database_name: str, database: Database
) -> Iterator[Database]:
    """Another workstation on the same database (`database` first, so it is migrated)."""
    other = pg_server.open(database_name)
    yield other
    other.close()


def test_a_mapping_to_an_empty_mount_point_is_refused_before_anything_is_written(
    database: Database, second_machine: Database, tmp_path: Path
) -> None:
    share = tmp_path / "share"
    share.mkdir()
    set_store(database, share)
    name = submit_paths(database, [make_png(tmp_path / "in" / "PL_DXB191.png", seed=1)])
    # The render node's share is not mounted: its mount point is an empty local folder.
    mount_point = tmp_path / "mnt-renders"
    mount_point.mkdir()
    second_machine.share_paths = SharePaths.parse(f"{share}={mount_point}")
    before = batch_count(database)

    with pytest.raises(WrongStore, match=f"{mount_point} is not this studio's file store"):
        submit_paths(second_machine, [make_png(tmp_path / "in2" / "PL_DXB192.png", seed=2)])
    with pytest.raises(WrongStore, match="file_store_mapping"):
        export_zip(second_machine, name, tmp_path / "out.zip", include_inputs=True)

    assert list(mount_point.iterdir()) == []  # nothing written where no one else can read it
    assert batch_count(database) == before
    assert not (tmp_path / "out.zip").exists()
    with second_machine.connect() as connection:
        problems = list(file_bytes.damaged_store_files(connection, second_machine.share_paths))
    assert len(problems) == 1  # one sentence, not one "missing" per file
    assert "is not this studio's file store" in problems[0]


def test_another_databases_store_is_neither_taken_over_nor_used(
    database: Database, pg_server: TestServer, tmp_path: Path
) -> None:
    share = tmp_path / "share"
    share.mkdir()
    set_store(database, share)
    submit_paths(database, [make_png(tmp_path / "in" / "PL_DXB191.png", seed=1)])
    other_name = pg_server.create_database()
    other = pg_server.open(other_name)
    try:
        with pytest.raises(WrongStore, match="already another batchdesk database's file store"):
            set_store(other, share)
        other_store = tmp_path / "other-share"
        other_store.mkdir()
        set_store(other, other_store)
        # Its machines now mount the first studio's share where its own store should be.
        other.share_paths = SharePaths.parse(f"{other_store}={share}")
        with pytest.raises(WrongStore, match="another batchdesk database's file store"):
            submit_paths(other, [make_png(tmp_path / "in2" / "PL_DXB192.png", seed=2)])
    finally:
        other.close()
        pg_server.drop_database(other_name)
    assert sorted(p.name for p in share.iterdir() if p.is_file()) == [MARKER_NAME]


def test_setting_the_same_store_again_keeps_its_marker(database: Database, tmp_path: Path) -> None:
    share = tmp_path / "share"
    share.mkdir()
    set_store(database, share)
    marker = (share / MARKER_NAME).read_text()

    set_store(database, share)

    assert (share / MARKER_NAME).read_text() == marker
    assert store_identity.read_marker(share) in marker
