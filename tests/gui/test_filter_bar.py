"""The filter bar: status, customers from the database, debounced text, one query per change."""

from pathlib import Path

from pytestqt.qtbot import QtBot

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from batchdesk.domain.batch_query import BatchQuery
from batchdesk.domain.statuses import BatchStatus
from batchdesk.storage.database import Database
from tests.gui.test_batch_tree_model import submit

from batchdesk.gui.background import BackgroundTasks
from batchdesk.gui.filter_bar import FilterBar


def make_bar(qtbot: QtBot, database: Database, tasks: BackgroundTasks) -> FilterBar:
    """A shown filter bar whose customers have been read."""
    bar = FilterBar(database, tasks, debounce_ms=50)
    qtbot.addWidget(bar)
    with qtbot.waitSignal(bar.customers_loaded, timeout=10_000):
        bar.show()
    return bar


def customers(bar: FilterBar) -> list[str]:
    return [bar.customer_combo.itemText(i) for i in range(bar.customer_combo.count())]


def test_choices_emit_the_query_they_make(
    qtbot: QtBot, database: Database, tasks: BackgroundTasks, tmp_path: Path
) -> None:
    for prefix in ("PL_DXB", "AC_ME", "PL_DXB"):
        submit(database, tmp_path, prefix=prefix)
    bar = make_bar(qtbot, database, tasks)
    assert customers(bar) == ["All customers", "AC_ME", "PL_DXB"]
    assert bar.query() == BatchQuery()

    with qtbot.waitSignal(bar.query_changed) as status:
        bar.status_combo.setCurrentIndex(bar.status_combo.findData("failed"))
    with qtbot.waitSignal(bar.query_changed) as customer:
        bar.customer_combo.setCurrentIndex(bar.customer_combo.findText("AC_ME"))
    with qtbot.waitSignal(bar.query_changed) as everything:
        bar.status_combo.setCurrentIndex(0)

    failed = frozenset({BatchStatus.FAILED})
    assert status.args == [BatchQuery(statuses=failed)]
    assert customer.args == [BatchQuery(statuses=failed, customer_prefix="AC_ME")]
    assert everything.args == [BatchQuery(customer_prefix="AC_ME")]


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


def test_reloading_customers_adds_new_ones_and_keeps_the_choice(
    qtbot: QtBot, database: Database, tasks: BackgroundTasks, tmp_path: Path
) -> None:
    submit(database, tmp_path, prefix="PL_DXB")
    bar = make_bar(qtbot, database, tasks)
    with qtbot.waitSignal(bar.query_changed):
        bar.customer_combo.setCurrentIndex(bar.customer_combo.findText("PL_DXB"))
    submit(database, tmp_path, prefix="AC_ME")
    queries: list[BatchQuery] = []
    bar.query_changed.connect(queries.append)

    with qtbot.waitSignal(bar.customers_loaded, timeout=10_000):
        bar.reload_customers()

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
