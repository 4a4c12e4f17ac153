"""Live updates: NOTIFY from every workstation, coalesced, a poll while unheard, and a refresh.

The LiveUpdates tests run a real listening thread on a real database; the tree tests wire it
to the model as the window does and change the database from another connection, as another
workstation would.
"""

import json
import time
from collections.abc import Iterator
from pathlib import Path
from uuid import UUID, uuid4

import psycopg
import pytest
from psycopg import sql
from pytestqt.qtbot import QtBot

from PySide6.QtCore import QItemSelectionModel, QModelIndex, Qt

from batchdesk.domain.batch_query import SortOrder
from batchdesk.storage import worker_liveness, workers
from batchdesk.storage.database import Database
from tests.database_fixtures import TestServer
from tests.gui.test_batch_tree_model import (
    elsewhere,
    names,
    set_job_statuses,
    shown_view,
    submit,
    wait_idle,
)

from batchdesk.gui.background import BackgroundTasks
from batchdesk.gui.batch_tree_items import DETAILS_COLUMN, PROGRESS_COLUMN, STATUS_COLUMN
from batchdesk.gui.batch_tree_model import PROGRESS_ROLE, STATUS_ROLE, BatchTreeModel, Progress
from batchdesk.gui.batch_tree_view import BatchTreeView, TreeSelection
from batchdesk.gui.live_updates import LiveUpdates, batch_id_of

ROOT = QModelIndex()
SOME_ID = UUID("0b7a7b51-0e0e-4c33-9e1a-2f1f8d1c9a10")


def quick_live_updates(conninfo: str) -> LiveUpdates:
    """Live updates with the intervals shortened for tests."""
    return LiveUpdates(conninfo, coalesce_interval=0.05, poll_interval=0.2, retry_interval=0.3)


class Heard:
    """What a LiveUpdates said, in order: ("listening", bool) and ("changed", ids or None)."""

    def __init__(self, updates: LiveUpdates) -> None:
        self.events: list[tuple[str, object]] = []
        updates.listening_changed.connect(lambda value: self.events.append(("listening", value)))
        updates.batches_changed.connect(lambda ids: self.events.append(("changed", ids)))

    def changed_ids(self) -> set[UUID]:
        ids: set[UUID] = set()
        for kind, value in self.events:
            if kind == "changed" and isinstance(value, set):
                ids |= value
        return ids

    def after(self, event: tuple[str, object]) -> list[tuple[str, object]]:
        return self.events[self.events.index(event) + 1 :] if event in self.events else []


@pytest.fixture
def live(qtbot: QtBot, database: Database) -> Iterator[LiveUpdates]:
    """Live updates as the window wires them, already listening."""
    updates = quick_live_updates(database.conninfo)
    try:
        with qtbot.waitSignal(updates.listening_changed, timeout=10_000) as listening:
            updates.start()
        assert listening.args == [True]
        yield updates
    finally:
        assert updates.stop(timeout=5), "the live updates thread did not stop"


@pytest.fixture
def model(qtbot: QtBot, database: Database, tasks: BackgroundTasks) -> Iterator[BatchTreeModel]:
    tree = BatchTreeModel(database, tasks, page_size=2, job_page_size=2)
    yield tree
    wait_idle(qtbot, tree, tasks)


@pytest.fixture
def view(qtbot: QtBot, model: BatchTreeModel) -> BatchTreeView:
    return shown_view(qtbot, model)


# --- LiveUpdates on its own ----------------------------------------------------------------


def test_a_committed_batch_change_arrives_as_its_id(
    qtbot: QtBot, live: LiveUpdates, database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    batch = submit(database, tmp_path)
    heard = Heard(live)

    elsewhere(
        database_conninfo, "UPDATE batches SET render_description = 'x' WHERE id = %s", (batch.id,)
    )

    qtbot.waitUntil(lambda: batch.id in heard.changed_ids())


def test_workers_coming_and_being_paused_arrive_apart_from_batch_changes(
    qtbot: QtBot, live: LiveUpdates, database: Database
) -> None:
    heard = Heard(live)
    told: list[str] = []
    live.workers_changed.connect(lambda: told.append("workers"))

    worker_liveness.register_worker(database, "render-07:4242:a1b2c3", 1)
    qtbot.waitUntil(lambda: told == ["workers"])
    workers.set_desired_state(database, "render-07:4242:a1b2c3", "paused")
    qtbot.waitUntil(lambda: told == ["workers", "workers"])
    worker_liveness.heartbeat(database, "render-07:4242:a1b2c3")  # the state it reports changes
    qtbot.waitUntil(lambda: len(told) == 3)
    assert heard.changed_ids() == set()  # no batch changed


def test_a_burst_of_changes_arrives_as_a_few_sets_of_ids(
    qtbot: QtBot, database: Database, database_conninfo: str, tmp_path: Path
) -> None:
    batches = [submit(database, tmp_path) for _ in range(3)]
    updates = LiveUpdates(database.conninfo, coalesce_interval=0.25)
    try:
        with qtbot.waitSignal(updates.listening_changed, timeout=10_000):
            updates.start()
        heard = Heard(updates)
        started = time.monotonic()
        with psycopg.connect(database_conninfo, autocommit=True) as conn:
            for i in range(30):  # thirty transactions, thirty notifications
                conn.execute(
                    "UPDATE batches SET render_description = %s WHERE id = %s",
                    (f"take {i}", batches[i % 3].id),
                )
        qtbot.waitUntil(lambda: heard.changed_ids() == {b.id for b in batches})
        elapsed = time.monotonic() - started
    finally:
        assert updates.stop(timeout=5)

    # At most one set per quarter second (the first at once), however many changes came.
    assert 1 <= len(heard.events) <= elapsed / 0.25 + 2


def test_news_it_cannot_read_asks_for_everything_to_be_read_again(
    qtbot: QtBot, live: LiveUpdates, database_conninfo: str
) -> None:
    with qtbot.waitSignal(live.batches_changed, timeout=10_000) as changed:
        elsewhere(database_conninfo, "NOTIFY batchdesk_batches, 'not json'")

    assert changed.args == [None]
    assert batch_id_of(json.dumps({"op": "update", "id": str(SOME_ID)})) == SOME_ID
    assert batch_id_of(json.dumps({"op": "update"})) is None
    assert batch_id_of(json.dumps([str(SOME_ID)])) is None


def test_without_its_database_it_polls_and_listens_once_the_database_is_there(
    qtbot: QtBot, pg_server: TestServer
) -> None:
    name = f"batchdesk_live_{uuid4().hex[:12]}"
    updates = quick_live_updates(pg_server.conninfo(name))
    heard = Heard(updates)
    try:
        updates.start()
        qtbot.waitUntil(lambda: heard.events[:1] == [("listening", False)], timeout=10_000)
        # Meanwhile the window re-reads everything every poll interval.
        qtbot.waitUntil(lambda: heard.events.count(("changed", None)) >= 2, timeout=10_000)
        with psycopg.connect(pg_server.admin_conninfo, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))

        qtbot.waitUntil(
            lambda: ("changed", None) in heard.after(("listening", True)), timeout=10_000
        )
        assert updates.is_listening
        with psycopg.connect(pg_server.conninfo(name), autocommit=True) as conn:
            conn.execute(
                "SELECT pg_notify('batchdesk_batches', %s)", (json.dumps({"id": str(SOME_ID)}),)
            )
        qtbot.waitUntil(lambda: SOME_ID in heard.changed_ids())
    finally:
        assert updates.stop(timeout=5)
        pg_server.drop_database(name)


def test_a_dropped_connection_is_noticed_and_everything_read_again_once_back(
    qtbot: QtBot, live: LiveUpdates, database_conninfo: str
) -> None:
    heard = Heard(live)

    elsewhere(
        database_conninfo,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE application_name = 'batchdesk-live-updates' AND datname = current_database()",
    )

    qtbot.waitUntil(lambda: ("changed", None) in heard.after(("listening", True)), timeout=10_000)
    events = heard.events
    assert events.index(("listening", False)) < events.index(("listening", True))
    # While unheard, the window was asked to re-read everything at once.
    assert ("changed", None) in events[: events.index(("listening", True))]


def test_stop_ends_the_thread_within_a_second_and_it_can_start_again(
    qtbot: QtBot, database: Database
) -> None:
    updates = LiveUpdates(database.conninfo)
    with qtbot.waitSignal(updates.listening_changed, timeout=10_000):
        updates.start()
    assert updates.is_running

    started = time.monotonic()
    assert updates.stop(timeout=5)

    assert time.monotonic() - started < 1.0
    assert not updates.is_running
    assert updates.stop()  # stopping twice is harmless
    with qtbot.waitSignal(updates.listening_changed, timeout=10_000) as again:
        updates.start()  # and it starts again, as after the window reconnects
    assert again.args == [True]
    assert updates.stop(timeout=5)


# --- LiveUpdates and the tree, wired as the window wires them ------------------------------


def test_a_change_on_another_workstation_updates_the_row_keeping_selection_and_expansion(
    qtbot: QtBot,
    view: BatchTreeView,
    model: BatchTreeModel,
    live: LiveUpdates,
    database: Database,
    database_conninfo: str,
    tasks: BackgroundTasks,
    tmp_path: Path,
) -> None:
    watched = submit(database, tmp_path, files=2)
    submit(database, tmp_path, files=1)
    live.batches_changed.connect(model.apply_batch_changes)
    qtbot.waitUntil(lambda: model.rowCount() == 2)
    index = model.index_of_batch(watched.id)
    view.expand(index)
    qtbot.waitUntil(lambda: model.rowCount(index) == 2)
    flags = QItemSelectionModel.SelectionFlag.ClearAndSelect
    view.selectionModel().select(index, flags | QItemSelectionModel.SelectionFlag.Rows)
    with qtbot.waitSignal(view.selection_changed_to) as selected:
        pass
    assert selected.args == [TreeSelection((watched.id,), ())]
    changed: list[tuple[int, int]] = []
    structure: list[str] = []
    model.dataChanged.connect(
        lambda top, bottom: (
            changed.append((top.row(), bottom.row())) if not top.parent().isValid() else None
        )
    )
    model.modelReset.connect(lambda: structure.append("reset"))
    model.rowsRemoved.connect(lambda *_args: structure.append("removed"))
    model.rowsInserted.connect(lambda parent, *_args: structure.append("inserted"))

    set_job_statuses(database_conninfo, watched.id, ["completed", "failed"])

    index = model.index_of_batch(watched.id)
    status = index.siblingAtColumn(STATUS_COLUMN)
    qtbot.waitUntil(lambda: model.data(status, STATUS_ROLE) == "failed")
    assert model.data(index.siblingAtColumn(PROGRESS_COLUMN), PROGRESS_ROLE) == Progress(1, 1, 0, 2)
    assert model.data(index.siblingAtColumn(PROGRESS_COLUMN)) == "2/2"
    qtbot.waitUntil(lambda: model.data(model.index(1, STATUS_COLUMN, index)) == "failed")
    assert model.data(model.index(0, STATUS_COLUMN, index), STATUS_ROLE) == "completed"
    assert view.isExpanded(index)
    assert view.selection() == TreeSelection((watched.id,), ())
    # Changed in place: no reset, no row taken away and put back (that would flicker).
    assert set(changed) == {(index.row(), index.row())}
    assert structure == []


def test_batches_created_or_deleted_elsewhere_come_and_go_live(
    qtbot: QtBot,
    view: BatchTreeView,
    model: BatchTreeModel,
    live: LiveUpdates,
    database: Database,
    database_conninfo: str,
    tmp_path: Path,
) -> None:
    doomed, kept = submit(database, tmp_path), submit(database, tmp_path)
    live.batches_changed.connect(model.apply_batch_changes)
    qtbot.waitUntil(lambda: model.rowCount() == 2)
    view.setCurrentIndex(model.index_of_batch(kept.id))

    elsewhere(database_conninfo, "DELETE FROM batches WHERE id = %s", (doomed.id,))
    qtbot.waitUntil(lambda: names(model) == [kept.base_directory_name])

    newest = submit(database, tmp_path)  # newest first: it arrives at the top
    qtbot.waitUntil(lambda: model.rowCount() == 2)
    assert names(model) == [newest.base_directory_name, kept.base_directory_name]
    assert model.total_count == 2
    assert view.selection() == TreeSelection((kept.id,), ())


def test_a_change_that_moves_a_batch_in_the_order_moves_its_row_with_its_state(
    qtbot: QtBot,
    view: BatchTreeView,
    model: BatchTreeModel,
    live: LiveUpdates,
    database: Database,
    database_conninfo: str,
    tasks: BackgroundTasks,
    tmp_path: Path,
) -> None:
    for _ in range(3):
        submit(database, tmp_path, files=2)
    live.batches_changed.connect(model.apply_batch_changes)
    model.set_sort("progress", SortOrder.DESC)
    model.fetchMore(ROOT)
    qtbot.waitUntil(lambda: model.rowCount() == 3)
    wait_idle(qtbot, model, tasks)
    last = model.batch_at(model.index(2, 0))
    assert last is not None
    view.expand(model.index(2, 0))
    qtbot.waitUntil(lambda: model.rowCount(model.index(2, 0)) == 2)
    view.setCurrentIndex(model.index(2, 0))
    moves: list[int] = []
    model.rowsMoved.connect(lambda _p, start, _e, _d, row: moves.append(row))

    set_job_statuses(database_conninfo, last.id, ["completed", "processing"])

    qtbot.waitUntil(lambda: names(model)[0] == last.base_directory_name)
    assert moves == [0]
    assert view.isExpanded(model.index(0, 0))
    assert model.rowCount(model.index(0, 0)) == 2
    assert view.selection() == TreeSelection((last.id,), ())


def test_refresh_rereads_rows_and_loaded_jobs_in_place(
    qtbot: QtBot,
    view: BatchTreeView,
    model: BatchTreeModel,
    database: Database,
    database_conninfo: str,
    tasks: BackgroundTasks,
    tmp_path: Path,
) -> None:
    batch = submit(database, tmp_path, files=2)
    qtbot.waitUntil(lambda: model.rowCount() == 1)
    index = model.index_of_batch(batch.id)
    view.expand(index)
    qtbot.waitUntil(lambda: model.rowCount(index) == 2)
    error = "Step 2 (fit) failed.\nThe file ends too early: it is truncated."
    elsewhere(
        database_conninfo,
        "UPDATE jobs SET last_error = %s, worker = 'ann@ws' WHERE batch_id = %s AND position = 1",
        (error, batch.id),
    )
    elsewhere(
        database_conninfo,
        "UPDATE batches SET render_description = 'spring shoot' WHERE id = %s",
        (batch.id,),
    )

    model.refresh()
    wait_idle(qtbot, model, tasks)

    job = model.index(1, DETAILS_COLUMN, index)
    assert model.data(index.siblingAtColumn(DETAILS_COLUMN)) == "spring shoot"
    assert model.data(job) == "Step 2 (fit) failed."
    assert model.data(job, Qt.ItemDataRole.ToolTipRole) == error
    assert view.isExpanded(index)
