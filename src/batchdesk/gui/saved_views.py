"""Saved views: the filter bar's filters and the tree's sort, kept under a name, one click away.

Two come with batchdesk: "Mine" (batches submitted as this user on this computer, the
`created_by` that a submission records) and "Failed today" (batches that failed since
midnight, whenever they were submitted). The user's own are kept in the window's state file
(`window.ini`, key `views/saved`, a JSON list): a view belongs to this user on this computer
like the window's layout, it means nothing to the command line (so not the typed settings
file), and the window already writes that file.

A view's dates are kept as the choice made ("Today", "Last 7 days"), so "Failed today" means
today whenever it is chosen; only "Between dates..." keeps the two dates.
"""

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from PySide6.QtCore import QObject, QSettings, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QInputDialog, QLineEdit, QMenu, QToolButton, QWidget

from batchdesk.domain.batch_query import SORT_COLUMNS, JobFilter, SortOrder
from batchdesk.domain.statuses import BatchStatus
from batchdesk.storage.submission import current_user

VIEWS_KEY = "views/saved"
MINE, FAILED_TODAY = "Mine", "Failed today"
MAX_NAME = 80
# The filter bar's "when" choices (filter_bar.PERIODS): days back from today inclusive that a
# batch was created, or one of these.
ANY_TIME, BETWEEN, FINISHED_TODAY = None, -1, -2  # created between two dates; finished today
PERIOD_CHOICES = (ANY_TIME, 1, 7, 30, BETWEEN, FINISHED_TODAY)

# Asks for a view's name: (title, question, suggestion) -> the answer, or None (cancelled).
AskName = Callable[[str, str, str], str | None]
CurrentSort = Callable[[], tuple[str, SortOrder]]


@dataclass(frozen=True)
class SavedView:
    """What a view sets: every filter of the filter bar and, if it has one, the sort."""

    name: str
    statuses: tuple[str, ...] = ()
    text: str = ""
    customer: str | None = None
    created_by: str | None = None
    pipeline: str | None = None
    period_days: int | None = None  # one of PERIOD_CHOICES
    from_day: str | None = None  # ISO dates, for "between"
    until_day: str | None = None
    job_filter: str = JobFilter.ALL.value
    sort_by: str | None = None  # None: the view keeps whatever sort is on
    order: str = SortOrder.DESC.value
    built_in: bool = field(default=False, compare=False)

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("built_in")
        data["statuses"] = list(self.statuses)
        return data


def built_in_views() -> list[SavedView]:
    return [
        SavedView(MINE, created_by=current_user(), built_in=True),
        SavedView(
            FAILED_TODAY,
            statuses=(BatchStatus.FAILED.value,),
            period_days=FINISHED_TODAY,
            built_in=True,
        ),
    ]


def view_from_json(data: object) -> SavedView | None:
    """A view read back from the state file; None for what is not one (a hand edit)."""
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        return None
    known = {f.name for f in fields(SavedView)} - {"built_in"}
    values = {key: value for key, value in data.items() if key in known}
    statuses = values.get("statuses", [])
    names = {status.value for status in BatchStatus}
    listed = statuses if isinstance(statuses, list) else []
    values["statuses"] = tuple(s for s in listed if s in names)
    try:
        view = SavedView(**values)
    except TypeError:
        return None
    if view.sort_by is not None and view.sort_by not in SORT_COLUMNS:
        view = replace(view, sort_by=None)  # never a sort the list cannot do
    if view.order not in (SortOrder.ASC.value, SortOrder.DESC.value):
        view = replace(view, order=SortOrder.DESC.value)
    if view.period_days not in PERIOD_CHOICES:
        view = replace(view, period_days=None)
    if view.job_filter not in {f.value for f in JobFilter}:
        view = replace(view, job_filter=JobFilter.ALL.value)
    return view


def load_views(state: QSettings | None) -> list[SavedView]:
    """The user's saved views, in the order saved."""
    if state is None:
        return []
    text = state.value(VIEWS_KEY)
    try:
        data = json.loads(text) if isinstance(text, str) else []
    except ValueError:
        return []
    found = [view_from_json(item) for item in data] if isinstance(data, list) else []
    return [view for view in found if view is not None]


def store_views(state: QSettings | None, views: list[SavedView]) -> None:
    if state is None:
        return
    state.setValue(VIEWS_KEY, json.dumps([view.as_json() for view in views]))
    state.sync()


class SavedViews(QObject):
    """The Views button of the filter bar: choose a view, save the current one, delete one.

    `apply_filters(view)` and `read_filters(name)` are the filter bar's; `current_sort()` the
    tree's. Choosing a view asks for its sort through `sort_requested` (when it has one) and
    sets the filters, which the filter bar announces as one new query.
    """

    sort_requested = Signal(str, object)  # sort name, SortOrder
    view_applied = Signal(str)  # the view's name
    message = Signal(str)  # one sentence for the status bar

    def __init__(
        self,
        apply_filters: Callable[[SavedView], None],
        read_filters: Callable[[str], SavedView],
        current_sort: CurrentSort,
        state: QSettings | None,
        parent: QWidget,
        ask_name: AskName | None = None,
    ) -> None:
        super().__init__(parent)
        self._apply_filters = apply_filters
        self._read_filters = read_filters
        self._current_sort = current_sort
        self._state = state
        self._parent = parent
        self._ask_name = ask_name or self._ask
        self._views = load_views(state)
        self.menu = QMenu(parent)
        self.button = QToolButton()
        self.button.setText("Views")
        self.button.setAccessibleName("Saved views")
        self.button.setToolTip("Choose a saved view of filters and sort, or save this one")
        self.button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.button.setMenu(self.menu)
        self._build_menu()

    @property
    def views(self) -> list[SavedView]:
        """Every view offered: the built-in ones, then the user's."""
        return [*built_in_views(), *self._views]

    def find(self, name: str) -> SavedView | None:
        return next((view for view in self.views if view.name == name), None)

    # -- using views --------------------------------------------------------------------------

    def apply(self, name: str) -> None:
        """Show the view named `name`: its sort (if it has one), then its filters."""
        view = self.find(name)
        if view is None:
            self.message.emit(f"There is no view {name!r}.")
            return
        if view.sort_by is not None:
            self.sort_requested.emit(view.sort_by, SortOrder(view.order))
        self._apply_filters(view)
        self.view_applied.emit(view.name)
        self.message.emit(f"Showing the view {view.name!r}.")

    def save_current(self) -> None:
        """Ask for a name and keep the current filters and sort under it."""
        name = self._ask_name(
            "Save View",
            "Keep these filters and this sort as a view named:",
            "",
        )
        if name is None:
            self.message.emit("No view saved.")
            return
        self.save_as(name)

    def save_as(self, name: str) -> None:
        name = " ".join(name.split())
        if not name:
            self.message.emit("A view needs a name: nothing saved.")
            return
        if len(name) > MAX_NAME:
            self.message.emit(f"A view's name has at most {MAX_NAME} characters: nothing saved.")
            return
        if name in (MINE, FAILED_TODAY):
            self.message.emit(f"{name!r} is a view batchdesk keeps: choose another name.")
            return
        sort_by, order = self._current_sort()
        view = replace(self._read_filters(name), sort_by=sort_by, order=order.value)
        replaced = any(v.name == name for v in self._views)
        self._views = [v for v in self._views if v.name != name] + [view]
        store_views(self._state, self._views)
        self._build_menu()
        self.message.emit(f"{'Replaced' if replaced else 'Saved'} the view {name!r}.")

    def delete(self, name: str) -> None:
        if not any(view.name == name for view in self._views):
            self.message.emit(f"There is no saved view {name!r}.")
            return
        self._views = [view for view in self._views if view.name != name]
        store_views(self._state, self._views)
        self._build_menu()
        self.message.emit(f"Deleted the view {name!r}.")

    # -- the menu -----------------------------------------------------------------------------

    def _add_view_item(self, view: SavedView) -> None:
        item = self.menu.addAction(view.name)
        item.setToolTip(_describe(view))
        item.setStatusTip(_describe(view))
        item.triggered.connect(lambda _checked=False, n=view.name: self.apply(n))

    def _ask(self, title: str, question: str, suggestion: str) -> str | None:
        text, ok = QInputDialog.getText(
            self._parent, title, question, QLineEdit.EchoMode.Normal, suggestion
        )
        return text if ok else None

    def _build_menu(self) -> None:
        menu = self.menu
        for action in menu.actions():
            if action.menu() is not None:
                action.menu().deleteLater()
        menu.clear()
        for view in built_in_views():
            self._add_view_item(view)
        if self._views:
            menu.addSeparator()
        for view in self._views:
            self._add_view_item(view)
        menu.addSeparator()
        save = QAction("Save Current View...", menu)
        save.setToolTip("Keep the filters and the sort as they are now, under a name")
        save.triggered.connect(self.save_current)
        menu.addAction(save)
        deleting = menu.addMenu("Delete View")
        for view in self._views:
            item = deleting.addAction(view.name)
            item.triggered.connect(lambda _checked=False, n=view.name: self.delete(n))
        deleting.setEnabled(bool(self._views))


def _describe(view: SavedView) -> str:
    """A view's tooltip: what it shows."""
    parts = []
    if view.statuses:
        parts.append(" or ".join(view.statuses))
    if view.created_by:
        parts.append(f"by {view.created_by}")
    if view.customer:
        parts.append(f"of {view.customer}")
    if view.pipeline:
        parts.append(f"through {view.pipeline}")
    if view.text:
        parts.append(f"matching {view.text!r}")
    periods = {
        1: "created today",
        7: "created in the last 7 days",
        30: "created in the last 30 days",
    }
    if view.period_days in periods:
        parts.append(periods[view.period_days])
    elif view.period_days == BETWEEN:
        parts.append(f"created {view.from_day} to {view.until_day}")
    elif view.period_days == FINISHED_TODAY:
        parts.append("finished today")
    shown = "Batches " + ", ".join(parts) if parts else "Every batch"
    if view.sort_by:
        shown += f", sorted by {view.sort_by} ({view.order})"
    return shown
