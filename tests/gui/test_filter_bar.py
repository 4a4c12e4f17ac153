"""The filter bar: statuses, choices from the database, dates, debounced text, one query each."""

from datetime import date, timedelta
from pathlib import Path

import psycopg
from pytestqt.qtbot import QtBot

from PySide6.QtCore import QDate, Qt
from PySide6.QtWidgets import QApplication, QComboBox

from batchdesk.domain.batch_query import BatchQuery, JobFilter, parse_moment
from batchdesk.domain.statuses import BatchStatus
from batchdesk.storage.database import Database
from tests.gui.test_batch_tree_model import submit

from batchdesk.gui.background import BackgroundTasks
from batchdesk.gui.filter_bar import FilterBar


def make_bar(qtbot: QtBot, database: Database, tasks: BackgroundTasks) -> FilterBar:
    """A shown filter bar whose customers have been read."""
    bar = FilterBar(database, tasks, debounce_ms=50)
    qtbot.addWidget(bar)
    with qtbot.waitSignal(bar.choices_loaded, timeout=10_000):
        bar.show()
    return bar


def items(combo: QComboBox) -> list[str]:
    return [combo.itemText(i) for i in range(combo.count())]


def customers(bar: FilterBar) -> list[str]:
    return items(bar.customer_combo)


def test_choices_emit_the_query_they_make(
    qtbot: QtBot, database: Database, tasks: BackgroundTasks, tmp_path: Path
) -> None:
    for prefix in ("PL_DXB", "AC_ME", "PL_DXB"):
        submit(database, tmp_path, prefix=prefix)
    bar = make_bar(qtbot, database, tasks)
    assert customers(bar) == ["All customers", "AC_ME", "PL_DXB"]
    assert bar.query() == BatchQuery()

    with qtbot.waitSignal(bar.query_changed) as status:
        bar.status_buttons[BatchStatus.FAILED].click()
    with qtbot.waitSignal(bar.query_changed) as customer:
        bar.customer_combo.setCurrentIndex(bar.customer_combo.findText("AC_ME"))
    with qtbot.waitSignal(bar.query_changed) as everything:
        bar.status_buttons[BatchStatus.FAILED].click()

    failed = frozenset({BatchStatus.FAILED})
    assert status.args == [BatchQuery(statuses=failed)]
    assert customer.args == [BatchQuery(statuses=failed, customer_prefix="AC_ME")]
    assert everything.args == [BatchQuery(customer_prefix="AC_ME")]


def test_several_statuses_at_once_show_any_of_them(
    qtbot: QtBot, database: Database, tasks: BackgroundTasks
) -> None:
    bar = make_bar(qtbot, database, tasks)
    queries: list[BatchQuery] = []
    bar.query_changed.connect(queries.append)

    bar.status_buttons[BatchStatus.FAILED].click()
    bar.status_buttons[BatchStatus.QUEUED].click()

    assert queries[-1].statuses == {BatchStatus.FAILED, BatchStatus.QUEUED}
    assert bar.status_buttons[BatchStatus.FAILED].isChecked()


def test_who_and_pipeline_come_from_the_batches_and_filter_exactly(
    qtbot: QtBot,
    database: Database,
    database_conninfo: str,
    tasks: BackgroundTasks,
    tmp_path: Path,
) -> None:
    thumbs = submit(database, tmp_path)
    submit(database, tmp_path)
    with psycopg.connect(database_conninfo) as conn:
        conn.execute("INSERT INTO pipelines (name) VALUES ('thumbs')")
        conn.execute(
            "UPDATE batches SET created_by = 'ann@ws1', pipeline = 'thumbs' WHERE id = %s",
            (thumbs.id,),
        )
    bar = make_bar(qtbot, database, tasks)
    assert items(bar.creator_combo) == ["Anyone", "ann@ws1", "tester@test"]
    assert items(bar.pipeline_combo) == ["All pipelines", "original", "thumbs"]

    with qtbot.waitSignal(bar.query_changed) as who:
        bar.creator_combo.setCurrentIndex(bar.creator_combo.findText("ann@ws1"))
    with qtbot.waitSignal(bar.query_changed) as pipeline:
        bar.pipeline_combo.setCurrentIndex(bar.pipeline_combo.findText("thumbs"))

    assert who.args == [BatchQuery(created_by="ann@ws1")]
    assert pipeline.args == [BatchQuery(created_by="ann@ws1", pipeline="thumbs")]


def test_a_period_or_two_dates_narrow_the_creation_time(
    qtbot: QtBot, database: Database, tasks: BackgroundTasks
) -> None:
    bar = make_bar(qtbot, database, tasks)
    assert not bar.from_date.isVisible()

    with qtbot.waitSignal(bar.query_changed) as week:
        bar.period_combo.setCurrentIndex(bar.period_combo.findText("Last 7 days"))
    first_day = (date.today() - timedelta(days=6)).isoformat()
    assert week.args == [BatchQuery(created_from=parse_moment(first_day))]

    with qtbot.waitSignal(bar.query_changed):
        bar.period_combo.setCurrentIndex(bar.period_combo.findText("Between dates..."))
    assert bar.from_date.isVisible()
    assert bar.until_date.isVisible()
    with qtbot.waitSignal(bar.query_changed):
        bar.from_date.setDate(QDate(2026, 11, 2))
    with qtbot.waitSignal(bar.query_changed) as between:
        bar.until_date.setDate(QDate(2026, 11, 1))  # given the wrong way round: still a range

    assert between.args == [
        BatchQuery(
            created_from=parse_moment("2026-11-01"),
            created_before=parse_moment("2026-11-02", end_of_day=True),
        )
    ]

    with qtbot.waitSignal(bar.query_changed) as finished:
        bar.period_combo.setCurrentIndex(bar.period_combo.findText("Finished today"))
    assert not bar.from_date.isVisible()
    assert finished.args == [BatchQuery(finished_from=parse_moment(date.today().isoformat()))]


def test_today_moves_on_at_midnight_in_a_window_left_open(
    qtbot: QtBot, database: Database, tasks: BackgroundTasks
) -> None:
    days = [date(2026, 12, 4)]
    bar = FilterBar(database, tasks, debounce_ms=50, today=lambda: days[0])
    qtbot.addWidget(bar)
    with qtbot.waitSignal(bar.query_changed) as today:
        bar.period_combo.setCurrentIndex(bar.period_combo.findText("Today"))
    assert today.args == [BatchQuery(created_from=parse_moment("2026-12-04"))]
    assert 0 < bar.midnight_timer.remainingTime() <= (24 * 3600 + 1) * 1000

    days[0] = date(2026, 12, 5)
    with qtbot.waitSignal(bar.query_changed) as next_day:
        bar.midnight_timer.timeout.emit()  # what the timer does at midnight

    assert next_day.args == [BatchQuery(created_from=parse_moment("2026-12-05"))]
    assert bar.midnight_timer.isActive()  # and again the next night


def test_clear_filters_is_one_query_and_resets_the_jobs_shown_too(
    qtbot: QtBot, database: Database, tasks: BackgroundTasks
) -> None:
    bar = make_bar(qtbot, database, tasks)
    assert not bar.clear_button.isEnabled()
    bar.status_buttons[BatchStatus.PROCESSING].click()
    qtbot.keyClicks(bar.text_field, "hero")
    qtbot.keyClick(bar.text_field, Qt.Key.Key_Return)
    with qtbot.waitSignal(bar.job_filter_changed) as jobs:
        bar.job_combo.setCurrentIndex(bar.job_combo.findData(JobFilter.FAILED.value))
    assert jobs.args == [JobFilter.FAILED]
    assert bar.clear_button.isEnabled()
    queries: list[BatchQuery] = []
    bar.query_changed.connect(queries.append)

    with qtbot.waitSignal(bar.job_filter_changed) as cleared_jobs:
        bar.clear_button.click()

    assert queries == [BatchQuery()]
    assert cleared_jobs.args == [JobFilter.ALL]
    assert bar.text_field.text() == ""
    assert not bar.clear_button.isEnabled()


def test_typing_is_one_query_once_the_typing_pauses(
    qtbot: QtBot, database: Database, tasks: BackgroundTasks
) -> None:
    bar = make_bar(qtbot, database, tasks)
    queries: list[BatchQuery] = []
    bar.query_changed.connect(queries.append)

    with qtbot.waitSignal(bar.query_changed):
        qtbot.keyClicks(bar.text_field, "  summer shoot ")

    assert queries == [BatchQuery(text="summer shoot")]
    with qtbot.waitSignal(bar.query_changed) as cleared:
        bar.text_field.clear()
    assert cleared.args == [BatchQuery()]


def test_enter_applies_the_text_at_once_and_the_same_query_is_not_sent_twice(
    qtbot: QtBot, database: Database, tasks: BackgroundTasks
) -> None:
    bar = make_bar(qtbot, database, tasks)
    queries: list[BatchQuery] = []
    bar.query_changed.connect(queries.append)

    qtbot.keyClicks(bar.text_field, "spring")
    qtbot.keyClick(bar.text_field, Qt.Key.Key_Return)
    assert queries == [BatchQuery(text="spring")]  # before any debounce ran

    qtbot.keyClicks(bar.text_field, " ")  # only a space more: the same query
    qtbot.keyClick(bar.text_field, Qt.Key.Key_Return)
    assert queries == [BatchQuery(text="spring")]


def test_reloading_choices_adds_new_ones_and_keeps_the_choice(
    qtbot: QtBot, database: Database, tasks: BackgroundTasks, tmp_path: Path
) -> None:
    submit(database, tmp_path, prefix="PL_DXB")
    bar = make_bar(qtbot, database, tasks)
    with qtbot.waitSignal(bar.query_changed):
        bar.customer_combo.setCurrentIndex(bar.customer_combo.findText("PL_DXB"))
    submit(database, tmp_path, prefix="AC_ME")
    queries: list[BatchQuery] = []
    bar.query_changed.connect(queries.append)

    with qtbot.waitSignal(bar.choices_loaded, timeout=10_000):
        bar.reload_choices()

    assert customers(bar) == ["All customers", "AC_ME", "PL_DXB"]
    assert bar.customer_combo.currentText() == "PL_DXB"
    assert queries == []


def test_focus_text_puts_the_cursor_in_the_search_field_with_its_text_selected(
    qtbot: QtBot, database: Database, tasks: BackgroundTasks
) -> None:
    bar = make_bar(qtbot, database, tasks)
    bar.text_field.setText("old search")
    bar.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is bar)

    bar.focus_text()

    qtbot.waitUntil(bar.text_field.hasFocus)
    assert bar.text_field.selectedText() == "old search"
