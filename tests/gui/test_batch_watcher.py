"""The watcher behind desktop notifications notices batches that finish, failed ones too."""

from pathlib import Path

import psycopg
from pytestqt.qtbot import QtBot

from batchdesk.storage.batch_queries import BatchRow
from batchdesk.storage.database import Database
from tests.factories import make_batch

from batchdesk.gui.background import BackgroundTasks
from batchdesk.gui.batch_watcher import BatchWatcher


def test_a_batch_first_seen_just_after_it_failed_is_news(
    qtbot: QtBot,
    tasks: BackgroundTasks,
    database: Database,
    database_conninfo: str,
    tmp_path: Path,
) -> None:
    batch = make_batch(database, tmp_path, count=2).batches[0]
    with psycopg.connect(database_conninfo) as conn:  # it ran and failed before we looked
        conn.execute("UPDATE jobs SET status = 'failed' WHERE batch_id = %s", (batch.id,))
    watcher = BatchWatcher(database, tasks)

    with qtbot.waitSignal(watcher.batch_finished, timeout=30_000) as finished:
        watcher.check({batch.id})

    row = finished.args[0]
    assert isinstance(row, BatchRow)
    assert (row.base_directory_name, row.status) == (batch.base_directory_name, "failed")
    watcher.stop()
