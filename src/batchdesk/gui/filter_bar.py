"""The filter bar above the batch tree: status, customer and free text.

It only describes what to show: `query_changed` carries a BatchQuery whose filters (statuses,
customer_prefix, text) are the bar's; its sort and page fields are the defaults and mean
nothing, because the tree's model owns the sort (header clicks) and keeps it when
`BatchTreeModel.set_query` takes new filters. Typing is debounced, so a word typed is one
query, not one per letter; Enter applies it at once.
"""

import shiboken6
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QLineEdit, QWidget

from batchdesk.domain.batch_query import BatchQuery
from batchdesk.domain.statuses import BatchStatus
from batchdesk.storage.batch_queries import customer_prefixes
from batchdesk.storage.database import Database

from batchdesk.gui.background import BackgroundTasks, TaskContext

# A pause in typing this long starts the search: short enough that a typed search shows within
# the window's 200 ms target for a filter (a read and a paint take ~60 ms at 10,000 batches),
# long enough that a word typed at speed is one query, not one per key.
DEBOUNCE_MS = 120


class FilterBar(QWidget):
    """Status and customer choices and a search field; emits the query they make."""

    query_changed = Signal(object)  # BatchQuery; only its filters are meaningful
    customers_loaded = Signal(list)  # list[str], after each reload_customers()

    def __init__(
        self,
        database: Database,
        tasks: BackgroundTasks,
        parent: QWidget | None = None,
        *,
        debounce_ms: int = DEBOUNCE_MS,
    ) -> None:
        super().__init__(parent)
        self._database = database
        self._tasks = tasks

        self.status_combo = QComboBox()
        self.status_combo.setAccessibleName("Status filter")
        self.status_combo.addItem("All statuses", None)
        for status in BatchStatus:
            self.status_combo.addItem(status.value.capitalize(), status.value)

        self.customer_combo = QComboBox()
        self.customer_combo.setAccessibleName("Customer filter")
        self.customer_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.customer_combo.addItem("All customers", None)

        self.text_field = QLineEdit()
        self.text_field.setAccessibleName("Search batches")
        self.text_field.setPlaceholderText("Search names and descriptions (Ctrl+F)")
        self.text_field.setClearButtonEnabled(True)

        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        for text, field in (("&Status", self.status_combo), ("C&ustomer", self.customer_combo)):
            label = QLabel(text)
            label.setBuddy(field)
            layout.addWidget(label)
            layout.addWidget(field)
        layout.addWidget(self.text_field, stretch=1)

        self._debounce = QTimer(self, singleShot=True, interval=debounce_ms)
        self._debounce.timeout.connect(self._emit_if_changed)
        self.text_field.textChanged.connect(self._debounce.start)
        self.text_field.returnPressed.connect(self._emit_if_changed)
        self.status_combo.currentIndexChanged.connect(self._emit_if_changed)
        self.customer_combo.currentIndexChanged.connect(self._emit_if_changed)
        self._emitted = self.query()
        self.reload_customers()

    def query(self) -> BatchQuery:
        """Return the filters as they stand now (sort and page fields left at defaults)."""
        status = self.status_combo.currentData()
        customer = self.customer_combo.currentData()
        text = self.text_field.text().replace("\x00", "").strip()
        return BatchQuery(
            statuses=frozenset({BatchStatus(status)}) if status else frozenset(),
            customer_prefix=customer or None,
            text=text or None,
        )

    def focus_text(self) -> None:
        """Put the cursor in the search field with its text selected (the window's Ctrl+F)."""
        self.text_field.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.text_field.selectAll()

    def reload_customers(self) -> None:
        """Read the customer prefixes again in the background; the current choice stays."""
        database = self._database

        def work(_context: TaskContext) -> list[str]:
            with database.connect() as connection:
                return customer_prefixes(connection)

        self._tasks.run("read customers", work, on_result=self._on_customers_read)

    def _on_customers_read(self, prefixes: list[str]) -> None:
        if not shiboken6.isValid(self):
            return  # the bar was closed while they were read
        combo = self.customer_combo
        chosen = combo.currentData()
        # A customer chosen but gone (its batches deleted) stays listed: the filter in use
        # must stay visible rather than change behind the user's back.
        names = sorted({*prefixes, chosen} - {None})
        combo.blockSignals(True)  # the choice does not change, so neither does the query
        try:
            combo.clear()
            combo.addItem("All customers", None)
            for name in names:
                combo.addItem(name, name)
            combo.setCurrentIndex(max(combo.findData(chosen), 0))
        finally:
            combo.blockSignals(False)
        self.customers_loaded.emit(list(prefixes))

    def _emit_if_changed(self) -> None:
        self._debounce.stop()
        query = self.query()
        if query != self._emitted:
            self._emitted = query
            self.query_changed.emit(query)
