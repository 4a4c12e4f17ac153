"""The stats strip: the right figures after a refresh, and refreshes that coalesce."""

from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from PySide6.QtWidgets import QLabel

from batchdesk.storage import farm_controls
from batchdesk.storage.database import Database
from tests.factories import make_batch
from tests.integration.jobs_support import run_all_jobs

from batchdesk.gui.background import BackgroundTasks
from batchdesk.gui.stats_strip import StatsStrip


@pytest.fixture
def strip(qtbot: QtBot, database: Database, tasks: BackgroundTasks) -> StatsStrip:
    widget = StatsStrip(database, tasks)
    qtbot.addWidget(widget)
    return widget


def test_the_figures_are_shown_after_a_refresh(
    qtbot: QtBot, strip: StatsStrip, database: Database, tmp_path: Path
) -> None:
    make_batch(database, tmp_path / "a", count=3, seed=0)
    run_all_jobs(database)
    make_batch(database, tmp_path / "b", count=1, seed=10)
    held = make_batch(database, tmp_path / "c", count=2, seed=20, prefix="AB_CDE").batches[0]
    farm_controls.pause(database, [held.id])
    assert strip.figure_text("total_batches") == "—"

    with qtbot.waitSignal(strip.refreshed, timeout=30_000):
        strip.refresh()

    shown = {
        key: strip.figure_text(key)
        for key in (
            "total_batches", "queued", "processing", "paused", "completed", "failed", "cancelled",
            "total_files_all_time", "avg_files_per_batch", "max_files_in_batch",
        )
    }  # fmt: skip
    assert shown == {
        "total_batches": "3",
        "queued": "1",
        "processing": "0",
        "paused": "1",
        "completed": "1",
        "failed": "0",
        "cancelled": "0",
        "total_files_all_time": "6",
        "avg_files_per_batch": "2.0",
        "max_files_in_batch": "3",
    }
    value = strip.findChild(QLabel, "stat-queued")
    assert value.accessibleName() == "Queued batches: 1"
    assert strip.accessibleName() == "Batch statistics"


def test_many_refreshes_make_at_most_one_more_query(
    qtbot: QtBot, strip: StatsStrip, tasks: BackgroundTasks, database: Database, tmp_path: Path
) -> None:
    results: list[object] = []
    strip.refreshed.connect(results.append)

    for _ in range(10):
        strip.refresh()
    make_batch(database, tmp_path, count=2)  # lands before the second query at the latest
    qtbot.waitUntil(lambda: tasks.active == 0 and len(results) == 2, timeout=30_000)
    qtbot.wait(100)

    assert len(results) == 2
    assert strip.figure_text("total_batches") == "1"


def test_a_database_that_went_away_keeps_the_last_figures(
    qtbot: QtBot, tasks: BackgroundTasks
) -> None:
    conninfo = "host=127.0.0.1 port=9 dbname=nothing connect_timeout=2"
    unreachable = Database(conninfo, "an unreachable server")
    strip = StatsStrip(unreachable, tasks)
    qtbot.addWidget(strip)

    with qtbot.waitSignal(strip.refresh_failed, timeout=30_000) as blocker:
        strip.refresh()
    unreachable.close()

    assert strip.figure_text("queued") == "—"
    assert strip.toolTip() == f"Could not refresh these figures: {blocker.args[0]}"


def test_while_filters_narrow_the_tree_it_says_how_many_of_all_are_shown(
    qtbot: QtBot, strip: StatsStrip, database: Database, tmp_path: Path
) -> None:
    for n in range(3):
        make_batch(database, tmp_path / str(n), count=1, seed=n)
    with qtbot.waitSignal(strip.refreshed, timeout=30_000):
        strip.refresh()
    strip.show()
    assert not strip.shown_label.isVisible()

    strip.set_shown(2)
    assert strip.shown_label.isVisible()
    assert strip.shown_label.text() == "Showing 2 of 3 batches"

    make_batch(database, tmp_path / "more", count=1, seed=9)
    with qtbot.waitSignal(strip.refreshed, timeout=30_000):
        strip.refresh()
    assert strip.shown_label.text() == "Showing 2 of 4 batches"

    strip.set_shown(None)  # no filter any more
    assert not strip.shown_label.isVisible()
