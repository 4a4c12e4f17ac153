"""The filter bar above the batch tree: search, statuses, customer, who, pipeline, dates, jobs.

It only describes what to show: `query_changed` carries a BatchQuery whose filters are the
bar's; its sort and page fields are the defaults and mean nothing, because the tree's model owns
the sort (header clicks) and keeps it when `BatchTreeModel.set_query` takes new filters. Typing
is debounced, so a word typed is one query, not one per letter; Enter applies it at once.

The first row holds the search (names, descriptions and file names) and one toggle per status
(none pressed: every status; several: any of them). The second holds the choices read from
the batches there are (customer, who submitted, pipeline), when they were created, which jobs
an expanded batch shows (`job_filter_changed`), and a button that clears every filter.
"""

from collections.abc import Callable
from datetime import date, datetime, time, timedelta

import shiboken6
from PySide6.QtCore import QDate, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDateEdit,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from batchdesk.domain.batch_query import BatchQuery, JobFilter, parse_moment
from batchdesk.domain.statuses import BatchStatus
from batchdesk.storage.batch_queries import FilterChoices, filter_choices
from batchdesk.storage.database import Database

from batchdesk.gui.background import BackgroundTasks, TaskContext
from batchdesk.gui.saved_views import ANY_TIME, BETWEEN, FINISHED_TODAY, SavedView

# A pause in typing this long starts the search: short enough that a typed search shows within
# 150 ms (issue 16; a read and a paint take ~40 ms at 10,000 batches on a server with the
# trigram index), long enough that keys typed in a burst make one query. A slower typist makes
# one per key; answers to superseded queries are dropped (ModelReads), and each is cheap.
DEBOUNCE_MS = 60

# The "when" choices: (text, days back from today inclusive that the batch was created, or
# one of the named choices of saved_views).
PERIODS: tuple[tuple[str, int | None], ...] = (
    ("Any time", ANY_TIME),
    ("Today", 1),
    ("Last 7 days", 7),
    ("Last 30 days", 30),
    ("Between dates...", BETWEEN),
    ("Finished today", FINISHED_TODAY),
)
JOB_FILTERS = (
    ("All jobs", JobFilter.ALL),
    ("Failed jobs only", JobFilter.FAILED),
    ("Jobs not completed", JobFilter.NOT_COMPLETED),
)


class FilterBar(QWidget):
    """Choices and a search field; emits the query they make."""

    query_changed = Signal(object)  # BatchQuery; only its filters are meaningful
    job_filter_changed = Signal(object)  # JobFilter: which jobs an expanded batch shows
    choices_loaded = Signal(object)  # FilterChoices, after each reload_choices()

    def __init__(
        self,
        database: Database,
        tasks: BackgroundTasks,
        parent: QWidget | None = None,
        *,
        debounce_ms: int = DEBOUNCE_MS,
        today: Callable[[], date] = date.today,
    ) -> None:
        super().__init__(parent)
        self._database = database
        self._tasks = tasks
        self._today = today

        self.text_field = QLineEdit()
        self.text_field.setAccessibleName("Search batches")
        self.text_field.setPlaceholderText("Search names, descriptions and file names (Ctrl+F)")
        self.text_field.setClearButtonEnabled(True)
        self.text_field.setMinimumWidth(180)

        self.status_buttons: dict[BatchStatus, QToolButton] = {}
        for status in BatchStatus:
            button = QToolButton()
            button.setText(status.value.capitalize())
            button.setCheckable(True)
            button.setAccessibleName(f"Show {status.value} batches")
            button.setToolTip(
                f"Show {status.value} batches; press several to see any of them, none for all"
            )
            self.status_buttons[status] = button

        self.customer_combo = self._choice_combo("All customers", "Customer filter")
        self.creator_combo = self._choice_combo("Anyone", "Submitted by filter")
        self.creator_combo.setToolTip("Who submitted the batch")
        self.pipeline_combo = self._choice_combo("All pipelines", "Pipeline filter")

        self.period_combo = QComboBox()
        self.period_combo.setAccessibleName("When filter")
        self.period_combo.setToolTip(
            "When the batch was created, or (Finished today) when it completed, failed or was"
            " cancelled"
        )
        for text, days in PERIODS:
            self.period_combo.addItem(text, days)
        day = today()
        this_day = QDate(day.year, day.month, day.day)
        self.from_date = self._date_edit("Created on or after", this_day.addDays(-6))
        self.until_date = self._date_edit("Created on or before", this_day)

        self.job_combo = QComboBox()
        self.job_combo.setAccessibleName("Jobs shown in a batch")
        self.job_combo.setToolTip("Which jobs an expanded batch shows")
        for text, job_filter in JOB_FILTERS:
            self.job_combo.addItem(text, job_filter.value)

        self.clear_button = QPushButton("Clear filters")
        self.clear_button.setEnabled(False)

        self._first_row = QHBoxLayout()
        self._lay_out()

        self._debounce = QTimer(self, singleShot=True, interval=debounce_ms)
        self._debounce.timeout.connect(self._emit_if_changed)
        self.text_field.textChanged.connect(self._debounce.start)
        self.text_field.returnPressed.connect(self._emit_if_changed)
        for button in self.status_buttons.values():
            button.toggled.connect(self._emit_if_changed)
        for combo in (self.customer_combo, self.creator_combo, self.pipeline_combo):
            combo.currentIndexChanged.connect(self._emit_if_changed)
        self.period_combo.currentIndexChanged.connect(self._on_period_combo_changed)
        self.from_date.dateChanged.connect(self._emit_if_changed)
        self.until_date.dateChanged.connect(self._emit_if_changed)

        # "Today" and "Last 7 days" are relative: a window left open overnight asks again at
        # midnight, or its "Today" would go on showing yesterday.
        self.midnight_timer = QTimer(self, singleShot=True)
        self.midnight_timer.timeout.connect(self._on_new_day)
        self._wait_for_midnight()
        self.job_combo.currentIndexChanged.connect(self._on_job_combo_changed)
        self.clear_button.clicked.connect(self.clear)
        self._emitted = self.query()
        self.reload_choices()

    def _lay_out(self) -> None:
        first = self._first_row
        first.setContentsMargins(0, 0, 0, 0)
        first.addWidget(self.text_field, stretch=1)
        statuses = QHBoxLayout()
        statuses.setSpacing(2)
        for button in self.status_buttons.values():
            statuses.addWidget(button)
        first.addLayout(statuses)
        second = QHBoxLayout()
        second.setContentsMargins(0, 0, 0, 0)
        for widget in (
            self.customer_combo,
            self.creator_combo,
            self.pipeline_combo,
            self.period_combo,
            self.from_date,
            self.until_date,
            self.job_combo,
        ):
            second.addWidget(widget)
        second.addStretch(1)
        second.addWidget(self.clear_button)
        column = QVBoxLayout(self)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(4)
        column.addLayout(first)
        column.addLayout(second)
        self.from_date.hide()
        self.until_date.hide()

    @staticmethod
    def _choice_combo(everything: str, name: str) -> QComboBox:
        combo = QComboBox()
        combo.setAccessibleName(name)
        combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        combo.setMinimumContentsLength(8)
        combo.addItem(everything, None)
        return combo

    @staticmethod
    def _date_edit(name: str, day: QDate) -> QDateEdit:
        edit = QDateEdit(day)
        edit.setAccessibleName(name)
        edit.setToolTip(name)
        edit.setCalendarPopup(True)
        edit.setDisplayFormat("yyyy-MM-dd")
        return edit

    # --- what the bar says ----------------------------------------------------------------------

    def query(self) -> BatchQuery:
        """Return the filters as they stand now (sort and page fields left at defaults)."""
        text = self.text_field.text().replace("\x00", "").strip()
        statuses = frozenset(s for s, button in self.status_buttons.items() if button.isChecked())
        created_from, created_before, finished_from = self._period()
        return BatchQuery(
            statuses=statuses,
            customer_prefix=self.customer_combo.currentData() or None,
            text=text or None,
            created_by=self.creator_combo.currentData() or None,
            pipeline=self.pipeline_combo.currentData() or None,
            created_from=created_from,
            created_before=created_before,
            finished_from=finished_from,
        )

    def job_filter(self) -> JobFilter:
        return JobFilter(self.job_combo.currentData())

    def _period(self) -> tuple[datetime | None, datetime | None, datetime | None]:
        """(created from, created before, finished from) as the "when" choice says."""
        days = self.period_combo.currentData()
        if days is ANY_TIME:
            return None, None, None
        if days == FINISHED_TODAY:
            return None, None, parse_moment(self._today().isoformat())
        if days == BETWEEN:
            ends = sorted(_day(edit.date()) for edit in (self.from_date, self.until_date))
            first, last = ends
            return (
                parse_moment(first.isoformat()),
                parse_moment(last.isoformat(), end_of_day=True),
                None,
            )
        first_day = self._today() - timedelta(days=int(days) - 1)
        return parse_moment(first_day.isoformat()), None, None

    # --- what the window asks of it ---------------------------------------------------------------

    def focus_text(self) -> None:
        """Put the cursor in the search field with its text selected (the window's Ctrl+F)."""
        self.text_field.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.text_field.selectAll()

    def set_statuses(self, statuses: frozenset[BatchStatus]) -> None:
        """Show batches in any of these statuses (none: every status): one new query."""
        for status, button in self.status_buttons.items():
            button.blockSignals(True)
            try:
                button.setChecked(status in statuses)
            finally:
                button.blockSignals(False)
        self._emit_if_changed()

    def add_to_first_row(self, widget: QWidget) -> None:
        """Put a widget (the saved views' button) at the start of the first row."""
        self._first_row.insertWidget(0, widget)

    def view_of(self, name: str) -> SavedView:
        """The filters as they stand, as a view named `name` (with no sort: the tree's)."""
        days = self.period_combo.currentData()
        between = days == BETWEEN
        return SavedView(
            name=name,
            statuses=tuple(s.value for s, b in self.status_buttons.items() if b.isChecked()),
            text=self.text_field.text().replace("\x00", "").strip(),
            customer=self.customer_combo.currentData() or None,
            created_by=self.creator_combo.currentData() or None,
            pipeline=self.pipeline_combo.currentData() or None,
            period_days=days,
            from_day=_day(self.from_date.date()).isoformat() if between else None,
            until_day=_day(self.until_date.date()).isoformat() if between else None,
            job_filter=self.job_filter().value,
        )

    def apply_view(self, view: SavedView) -> None:
        """Set every filter as `view` has it: one new query, not one per field."""
        combos = [
            self.customer_combo,
            self.creator_combo,
            self.pipeline_combo,
            self.period_combo,
            self.job_combo,
        ]
        widgets: list[QWidget] = [
            self.text_field,
            *self.status_buttons.values(),
            *combos,
            self.from_date,
            self.until_date,
        ]
        for widget in widgets:
            widget.blockSignals(True)
        try:
            self.text_field.setText(view.text)
            for status, button in self.status_buttons.items():
                button.setChecked(status.value in view.statuses)
            for combo, value in (
                (self.customer_combo, view.customer),
                (self.creator_combo, view.created_by),
                (self.pipeline_combo, view.pipeline),
            ):
                _choose(combo, value)
            days = [days for _text, days in PERIODS]
            period = days.index(view.period_days) if view.period_days in days else 0
            self.period_combo.setCurrentIndex(period)
            for edit, day in ((self.from_date, view.from_day), (self.until_date, view.until_day)):
                if day:
                    edit.setDate(QDate.fromString(day, "yyyy-MM-dd"))
            self.job_combo.setCurrentIndex(max(self.job_combo.findData(view.job_filter), 0))
        finally:
            for widget in widgets:
                widget.blockSignals(False)
        between = self.period_combo.currentData() == BETWEEN
        self.from_date.setVisible(between)
        self.until_date.setVisible(between)
        self._on_job_combo_changed()
        self._emit_if_changed()

    def clear(self) -> None:
        """Clear every filter (the jobs shown too): one new query, not one per field."""
        self.apply_view(SavedView(name=""))

    def reload_choices(self) -> None:
        """Read the customers, submitters and pipelines again in the background."""
        database = self._database

        def work(_context: TaskContext) -> FilterChoices:
            with database.connect() as connection:
                return filter_choices(connection)

        self._tasks.run("read the filter choices", work, on_result=self._on_choices_read)

    def _on_choices_read(self, choices: FilterChoices) -> None:
        if not shiboken6.isValid(self):
            return  # the bar was closed while they were read
        for combo, names in (
            (self.customer_combo, choices.customers),
            (self.creator_combo, choices.creators),
            (self.pipeline_combo, choices.pipelines),
        ):
            _fill(combo, names)
        self.choices_loaded.emit(choices)

    # --- changes ---------------------------------------------------------------------------------

    def _wait_for_midnight(self) -> None:
        now = datetime.now()
        midnight = datetime.combine(now.date() + timedelta(days=1), time())
        self.midnight_timer.start(int((midnight - now).total_seconds() * 1000) + 1000)

    def _on_new_day(self) -> None:
        self._wait_for_midnight()
        self._emit_if_changed()

    def _on_period_combo_changed(self) -> None:
        between = self.period_combo.currentData() == BETWEEN
        self.from_date.setVisible(between)
        self.until_date.setVisible(between)
        self._emit_if_changed()

    def _on_job_combo_changed(self) -> None:
        self.clear_button.setEnabled(self._filtered())
        self.job_filter_changed.emit(self.job_filter())

    def _filtered(self) -> bool:
        return self._emitted.filtered or self.job_filter() is not JobFilter.ALL

    def _emit_if_changed(self) -> None:
        self._debounce.stop()
        query = self.query()
        if query != self._emitted:
            self._emitted = query
            self.query_changed.emit(query)
        self.clear_button.setEnabled(self._filtered())


def _day(day: QDate) -> date:
    return date(day.year(), day.month(), day.day())


def _choose(combo: QComboBox, value: str | None) -> None:
    """Choose `value` in a choice combo (its "all" item for None), listing it if it is not."""
    if value is None:
        combo.setCurrentIndex(0)
        return
    if combo.findData(value) < 0:
        combo.addItem(value, value)
    combo.setCurrentIndex(combo.findData(value))


def _fill(combo: QComboBox, names: tuple[str, ...]) -> None:
    """Put these names under a combo's "all" item; the choice made stays, even if gone."""
    chosen = combo.currentData()
    # A choice whose batches are gone stays listed: the filter in use must stay visible
    # rather than change behind the user's back.
    listed = sorted({*names, chosen} - {None})
    combo.blockSignals(True)  # the choice does not change, so neither does the query
    try:
        everything = combo.itemText(0)
        combo.clear()
        combo.addItem(everything, None)
        for name in listed:
            combo.addItem(name, name)
        combo.setCurrentIndex(max(combo.findData(chosen), 0))
    finally:
        combo.blockSignals(False)
