"""Every action a user can reach works, in every kind of selection, on a real filled database.

The actions are found, not listed: every QAction under the window, the menus (recursively),
the toolbars, buttons' drop-down menus, the window's own right-click menu and the batch tree's
context menu, right-clicked as a user does. A new action is covered the day it is added. In each
selection state every enabled action is triggered once where it was found (the context menu's
by choosing the item in the real menu) and once more by each of its shortcuts, pressed on the
tree; each must do something a user notices (a dialog, a file dialog, a status message, the
clipboard, the focus, a toggle, rows, a window), and nothing may reach the crash handler
("batchdesk hit a bug") or show a warning nobody asked for. Two actions may not share a
shortcut (Qt then runs neither). File dialogs, confirmations and the desktop's URL opener are
answered here, at Qt's edge; modal dialogs (Preferences, About, About Qt) are closed as a user
closes them.

An action that changes the data (retry, cancel, delete), filters the tree (a saved view) or
closes the window leaves the next action a fresh copy of the filled database and a new window,
so each runs in the state named.
"""

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from pytestqt.qtbot import QtBot

from PySide6.QtCore import (
    QAbstractItemModel,
    QMimeData,
    QModelIndex,
    QObject,
    QPoint,
    QSettings,
    Qt,
    QTimer,
    QUrl,
)
from PySide6.QtGui import (
    QAction,
    QContextMenuEvent,
    QDesktopServices,
    QGuiApplication,
    QKeySequence,
)
from PySide6.QtTest import QTest
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractItemView,
    QApplication,
    QDialog,
    QFileDialog,
    QMenu,
    QMessageBox,
    QProgressDialog,
    QToolBar,
    QTreeView,
    QWidget,
)

from batchdesk.settings import AppPaths, Settings
from batchdesk.storage import farm_controls, job_queue
from tests.database_fixtures import TestServer
from tests.factories import make_batch, make_png
from tests.integration.jobs_support import run_all_jobs

from batchdesk.gui.background import BackgroundTasks
from batchdesk.gui.crash_handler import CrashHandler, install_crash_handler
from batchdesk.gui.main_window import MainWindow
from batchdesk.gui.session import DatabaseSession

# Said by the offscreen platform when a menu pops up or a dialog is raised; not about our code.
pytestmark = [
    pytest.mark.slow,
    pytest.mark.qt_log_ignore(r"This plugin does not support (raise\(\)|grabbing the keyboard)"),
]

STATES = ["nothing", "one batch", "several batches", "one job", "a failed job"]
EFFECT_TIMEOUT_MS = 30_000
_clones = itertools.count()
_dialog_answers = itertools.count()


# -- the data ----------------------------------------------------------------------------------


def fill(server: TestServer, name: str, folder: Path) -> None:
    """Four batches: failed (one job done, one failed), completed, processing, and queued but
    paused."""
    database = server.open(name)
    try:
        make_batch(database, folder / "failed", count=2, prefix="PL_DXB", seed=1)
        make_batch(database, folder / "done", count=2, prefix="QX_ABC", seed=10)
        claimed = job_queue.claim(database, "render-node:1:abc")  # the oldest: PL_DXB's first
        assert claimed is not None
        job_queue.fail(
            database, claimed, "Step 1 (fit) failed. The file is truncated.", retryable=False
        )
        run_all_jobs(database)
        make_batch(database, folder / "running", count=2, prefix="RN_LHR", seed=20)
        assert job_queue.claim(database, "render-node:1:abc") is not None
        queued = make_batch(database, folder / "queued", count=2, prefix="ZZ_QUE", seed=30)
        farm_controls.pause(database, [queued.batches[0].id])  # so Resume has something to resume
    finally:
        database.close()


@pytest.fixture(scope="module")
def filled_databases() -> Iterator[dict[str, tuple[TestServer, str]]]:
    """One filled database per server for the whole module; each window gets a copy of it."""
    made: dict[str, tuple[TestServer, str]] = {}
    yield made
    for server, name in made.values():
        server.drop_database(name)


@pytest.fixture
def filled(
    pg_server: TestServer,
    filled_databases: dict[str, tuple[TestServer, str]],
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[TestServer, str]:
    if pg_server.admin_conninfo not in filled_databases:
        name = pg_server.create_database()
        fill(pg_server, name, tmp_path_factory.mktemp("renders"))
        filled_databases[pg_server.admin_conninfo] = (pg_server, name)
    return filled_databases[pg_server.admin_conninfo]


def copy_database(server: TestServer, source: str) -> str:
    name = f"{source}_copy{next(_clones)}"
    with psycopg.connect(server.admin_conninfo, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(source)
            )
        )
    return name


def data_fingerprint(conninfo: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(conninfo) as conn:
        return conn.execute(
            "SELECT b.id, b.status, j.id, j.status, j.attempts FROM batches b "
            "LEFT JOIN jobs j ON j.batch_id = b.id ORDER BY b.id, j.id"
        ).fetchall()


# -- what an action did ------------------------------------------------------------------------


@dataclass
class Effects:
    """What a user could notice, as it happens; `problems` are warnings nobody asked for."""

    seen: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    bugs: list[str] = field(default_factory=list)

    def add(self, what: str) -> None:
        self.seen.append(what)


class Observer(QObject):
    """Connects to everything an action can visibly change while one action runs."""

    def __init__(self, window: MainWindow, action: QAction, effects: Effects) -> None:
        super().__init__()
        self._window = window
        self._effects = effects
        self._hint = action.statusTip()
        self._links: list[tuple[Any, Callable[..., None]]] = []
        app = QApplication.instance()
        assert isinstance(app, QApplication)
        self._before = {id(w) for w in app.topLevelWidgets() if w.isVisible()}
        self._link(window.statusBar().messageChanged, self._on_message)
        self._link(QGuiApplication.clipboard().dataChanged, lambda: effects.add("clipboard"))
        self._link(app.focusChanged, self._on_focus)
        self._link(action.toggled, lambda on: effects.add(f"toggled {on}"))
        for model in window.findChildren(QAbstractItemModel):
            for signal in (model.modelReset, model.rowsInserted, model.rowsRemoved):
                self._link(signal, lambda *_a, m=model: effects.add(f"rows of {type(m).__name__}"))
        for view in window.findChildren(QAbstractItemView):
            selection = view.selectionModel()
            if selection is not None:
                self._link(selection.currentChanged, lambda *_a: effects.add("current row"))
            self._link(view.verticalScrollBar().valueChanged, lambda *_a: effects.add("scrolled"))
            if isinstance(view, QTreeView):
                self._link(view.expanded, lambda *_a: effects.add("expanded"))
                self._link(view.collapsed, lambda *_a: effects.add("collapsed"))

    def _link(self, signal: Any, slot: Callable[..., None]) -> None:
        signal.connect(slot)
        self._links.append((signal, slot))

    def _on_message(self, text: str) -> None:
        if text and text != self._hint:  # the hint shows while the menu item is hovered
            self._effects.add(f"status: {text}")

    def _on_focus(self, old: QWidget | None, new: QWidget | None) -> None:
        if new is not None and new is not old:
            self._effects.add(f"focus: {type(new).__name__}")

    def new_windows(self) -> list[QWidget]:
        app = QApplication.instance()
        assert isinstance(app, QApplication)
        return [
            w
            for w in app.topLevelWidgets()
            if w.isVisible() and id(w) not in self._before and not isinstance(w, QMenu)
        ]

    def noticed(self) -> bool:
        if not self._window.isVisible():
            self._effects.add("window closed")
        for widget in self.new_windows():
            self._effects.add(f"window: {widget.windowTitle()}")
        return bool(self._effects.seen)

    def stop(self) -> None:
        for signal, slot in self._links:
            signal.disconnect(slot)
        self._links.clear()


class DialogCloser(QObject):
    """Closes modal dialogs as a user would (Esc), noting each; leaves progress dialogs be."""

    def __init__(self, effects: Effects) -> None:
        super().__init__()
        self._effects = effects
        self._timer = QTimer(self, interval=20)
        self._timer.timeout.connect(self._close_modal)
        self._timer.start()

    def _close_modal(self) -> None:
        modal = QApplication.activeModalWidget()
        if not isinstance(modal, QDialog) or isinstance(modal, QProgressDialog):
            return
        if modal.objectName() != "crash-dialog":  # a bug: counted by the crash handler's signal
            self._effects.add(f"dialog: {modal.windowTitle()}")
        modal.done(QDialog.DialogCode.Rejected)

    def stop(self) -> None:
        self._timer.stop()


def answer_dialogs_at_the_edge(
    monkeypatch: pytest.MonkeyPatch, folder: Path, effects: Effects
) -> None:
    """File dialogs return fresh paths under `folder`; confirmations say Yes; warnings count;
    nothing is opened on the desktop."""

    def fresh() -> Path:
        path = folder / f"answer-{next(_dialog_answers)}"
        path.mkdir(parents=True)
        return path

    def open_names(*_args: object, **_kw: object) -> tuple[list[str], str]:
        effects.add("file dialog: open files")
        return [str(make_png(fresh() / "PL_DXB901_added.png"))], ""

    def open_name(*_args: object, **_kw: object) -> tuple[str, str]:
        effects.add("file dialog: open file")
        return str(make_png(fresh() / "PL_DXB902_added.png")), ""

    def save_name(
        _parent: object, _caption: str = "", suggested: str = "", *_a: object, **_k: object
    ) -> tuple[str, str]:
        effects.add("file dialog: save")
        return str(fresh() / (Path(suggested).name or "saved")), ""

    def folder_name(*_args: object, **_kw: object) -> str:
        effects.add("file dialog: folder")
        return str(fresh())

    monkeypatch.setattr(QFileDialog, "getOpenFileNames", open_names)
    monkeypatch.setattr(QFileDialog, "getOpenFileName", open_name)
    monkeypatch.setattr(QFileDialog, "getSaveFileName", save_name)
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", folder_name)

    def open_url(url: QUrl) -> bool:  # a file manager or viewer would open: note it instead
        effects.add(f"opened {url.toString()}")
        return True

    monkeypatch.setattr(QDesktopServices, "openUrl", open_url)

    def box(kind: str) -> Callable[..., QMessageBox.StandardButton]:
        def answer(
            _parent: object, title: str, text: str, buttons: Any = None, *_a: object, **_k: object
        ) -> QMessageBox.StandardButton:
            asks = buttons is not None and bool(buttons & QMessageBox.StandardButton.Yes)
            if asks:
                effects.add(f"asked: {title}")
                return QMessageBox.StandardButton.Yes
            effects.problems.append(f"{kind} box: {title}: {text}")
            return QMessageBox.StandardButton.Ok

        return answer

    for kind in ("warning", "question", "critical", "information"):
        monkeypatch.setattr(QMessageBox, kind, box(kind))


# -- the window --------------------------------------------------------------------------------


class Harness:
    """A window on a fresh copy of the filled database, made again when an action spent it."""

    def __init__(
        self,
        qtbot: QtBot,
        tasks: BackgroundTasks,
        tmp_path: Path,
        server: TestServer,
        source: str,
    ) -> None:
        self.qtbot = qtbot
        self.tasks = tasks
        self.tmp_path = tmp_path
        self.server = server
        self.source = source
        self.window: MainWindow | None = None
        self.session: DatabaseSession | None = None
        self.database_name = ""
        self.conninfo = ""
        self.fingerprint: list[tuple[Any, ...]] = []
        self.windows_opened = 0

    def fresh_window(self) -> MainWindow:
        """The open window, or a new one if the last action changed the data or closed it."""
        window = self.window
        if (
            window is not None
            and window.isVisible()
            and window.workspace is not None
            and not window.workspace.model.query.filtered  # a saved view chosen hides rows
            and data_fingerprint(self.conninfo) == self.fingerprint
        ):
            return window
        self.close()
        self.database_name = copy_database(self.server, self.source)
        self.conninfo = self.server.conninfo(self.database_name)
        self.fingerprint = data_fingerprint(self.conninfo)
        home = self.tmp_path / f"home-{self.windows_opened}"
        environ = {"BATCHDESK_HOME": str(home)}
        self.session = DatabaseSession(self.tasks, self.conninfo, environ=environ)
        window = MainWindow(
            self.session,
            self.tasks,
            AppPaths.from_environment(environ),
            Settings(run_jobs=False),
            window_state=_window_state(home),
        )
        self.window = window
        self.windows_opened += 1
        window.show()
        self.session.open()
        self.qtbot.waitUntil(lambda: window.workspace is not None, timeout=30_000)
        workspace = window.workspace
        assert workspace is not None
        self.qtbot.waitUntil(
            lambda: workspace.model.rowCount() == 4 and not workspace.model.is_loading,
            timeout=30_000,
        )
        return window

    def close(self) -> None:
        if self.window is not None:
            self.window.close()
            self.window.deleteLater()
            self.window = None
        if self.session is not None:
            self.session.close()
            self.session = None
        self.wait_idle()
        if self.database_name:
            self.server.drop_database(self.database_name)
            self.database_name = ""

    def wait_idle(self) -> None:
        self.qtbot.waitUntil(lambda: self.tasks.active == 0, timeout=60_000)


def _window_state(home: Path) -> QSettings:
    return QSettings(str(home / "window.ini"), QSettings.Format.IniFormat)


# -- the selection -----------------------------------------------------------------------------


def select(qtbot: QtBot, window: MainWindow, state: str) -> QModelIndex:
    """Make `state` the tree's selection; return the index a right-click would land on."""
    workspace = window.workspace
    assert workspace is not None
    tree, model = workspace.tree, workspace.model
    selection = tree.selectionModel()
    flags = selection.SelectionFlag
    batches = {}
    for row in range(model.rowCount()):
        index = model.index(row, 0)
        batch = model.batch_at(index)
        assert batch is not None
        batches[batch.base_directory_name.split("_2")[0]] = index
    selection.clear()
    tree.setCurrentIndex(QModelIndex())
    if state == "nothing":
        return QModelIndex()
    if state == "one batch":
        chosen = [batches["PL_DXB"]]
    elif state == "several batches":
        chosen = list(batches.values())
    else:
        parent = batches["PL_DXB"]
        tree.expand(parent)
        qtbot.waitUntil(lambda: model.rowCount(parent) == 2, timeout=30_000)
        wanted = "failed" if state == "a failed job" else "completed"
        chosen = []
        for row in range(model.rowCount(parent)):
            job = model.job_at(model.index(row, 0, parent))
            if job is not None and job.status == wanted:
                chosen.append(model.index(row, 0, parent))
        assert len(chosen) == 1, f"no {wanted} job in the failed batch"
    selection.setCurrentIndex(chosen[0], flags.ClearAndSelect | flags.Rows)
    for index in chosen[1:]:
        selection.select(index, flags.Select | flags.Rows)
    tree.scrollTo(chosen[0])
    return chosen[0]


# -- finding the actions -----------------------------------------------------------------------


@dataclass
class Found:
    """One way to reach an action: a menu or toolbar, the tree's context menu, or its keys."""

    key: str
    action: QAction
    route: str  # "trigger" (menu bar, toolbar), "context menu" or "keys"
    keys: QKeySequence | None = None


def _label(action: QAction) -> str:
    return action.text().replace("&", "") or action.objectName() or action.toolTip()


def _menu_actions(menu: QMenu, where: str) -> Iterator[tuple[QAction, str]]:
    for action in menu.actions():
        if action.isSeparator():
            continue
        sub = action.menu()
        if isinstance(sub, QMenu):
            yield from _menu_actions(sub, f"{where} > {_label(action)}")
        else:
            yield action, where


def reachable_actions(window: MainWindow, context_menu: list[tuple[str, QAction]]) -> list[Found]:
    """Every action a user can reach, by the first way found, and again by each of its keys."""
    found: dict[int, Found] = {}

    def add(action: QAction, where: str, route: str = "trigger") -> None:
        if action.isSeparator() or action.menu() is not None:
            return
        if action.objectName().startswith("_q_"):  # Qt's own (a line edit's clear button)
            return
        found.setdefault(id(action), Found(f"{where}: {_label(action)}", action, route))

    for where, action in context_menu:  # first: the same actions are then used from here
        add(action, where, "context menu")
    for top in window.menuBar().actions():
        sub = top.menu()
        if isinstance(sub, QMenu):
            for action, where in _menu_actions(sub, f"menu {_label(top)}"):
                add(action, where)
    for toolbar in window.findChildren(QToolBar):
        for action in toolbar.actions():
            add(action, f"toolbar {toolbar.windowTitle()}")
    for action in QWidget.actions(window):
        add(action, "window")
    popup = window.createPopupMenu()  # right-click on the toolbar
    if popup is not None:
        for action, where in _menu_actions(popup, "toolbar right-click"):
            add(action, where)
        popup.deleteLater()
    for button in window.findChildren(QAbstractButton):  # a button's drop-down menu
        menu = getattr(button, "menu", lambda: None)()
        if isinstance(menu, QMenu) and button.isVisible():
            for action, where in _menu_actions(menu, f"button {button.text().replace('&', '')}"):
                add(action, where)
    for action in window.findChildren(QAction):
        if any(isinstance(o, QWidget) and o.isVisible() for o in action.associatedObjects()):
            add(action, "on a visible widget")
    ways = list(found.values())
    for way in list(ways):
        for keys in way.action.shortcuts():
            text = keys.toString(QKeySequence.SequenceFormat.PortableText)
            ways.append(Found(f"keys {text}: {_label(way.action)}", way.action, "keys", keys))
    return sorted(ways, key=lambda way: way.key)


def shortcut_owners(ways: list[Found]) -> dict[str, list[str]]:
    """Each key sequence and the actions it belongs to."""
    owners: dict[str, list[str]] = {}
    for way in ways:
        if way.keys is not None:
            text = way.keys.toString(QKeySequence.SequenceFormat.PortableText)
            owners.setdefault(text, []).append(_label(way.action))
    return owners


def _right_click(window: MainWindow, at: QModelIndex, in_menu: Callable[[QMenu], None]) -> None:
    """Right-click the tree on `at` (or on empty space); `in_menu` gets the menu once shown."""
    workspace = window.workspace
    assert workspace is not None
    tree = workspace.tree
    viewport = tree.viewport()
    position = tree.visualRect(at).center() if at.isValid() else QPoint(10, viewport.height() - 5)
    shown: list[QMenu] = []

    def look() -> None:
        popup = QApplication.activePopupWidget()
        if isinstance(popup, QMenu):
            shown.append(popup)
            in_menu(popup)
            if popup.isVisible():
                popup.close()

    QTimer.singleShot(0, look)
    event = QContextMenuEvent(
        QContextMenuEvent.Reason.Mouse, position, viewport.mapToGlobal(position)
    )
    QApplication.sendEvent(viewport, event)
    assert shown, "right-clicking the tree showed no menu"


def context_menu_actions(window: MainWindow, at: QModelIndex) -> list[tuple[str, QAction]]:
    """Right-click the tree where a user would; return the menu's actions, then close it."""
    seen: list[tuple[str, QAction]] = []

    def read(menu: QMenu) -> None:
        seen.extend((where, action) for action, where in _menu_actions(menu, "tree context menu"))

    _right_click(window, at, read)
    return seen


def choose_in_context_menu(window: MainWindow, at: QModelIndex, key: str) -> None:
    """Right-click and choose the item named by `key` with the keyboard, as a user can."""
    chosen: list[QAction] = []

    def choose(menu: QMenu) -> None:
        for action, where in _menu_actions(menu, "tree context menu"):
            if f"{where}: {_label(action)}" == key:
                chosen.append(action)
                menu.setActiveAction(action)
                QTest.keyClick(menu, Qt.Key.Key_Return)
                return

    _right_click(window, at, choose)
    assert chosen, f"{key} was not in the context menu this time"


# -- the test ----------------------------------------------------------------------------------


@pytest.fixture
def crash_handler(
    qapp: QApplication, tmp_path: Path, tasks: BackgroundTasks
) -> Iterator[CrashHandler]:
    """The app's own crash handler, wired as `run_gui` wires it, dialogs on."""
    handler = install_crash_handler(qapp, tmp_path / "logs", show_dialogs=True)
    tasks.bug_raised.connect(handler.report_exception)
    yield handler
    handler.uninstall()


@pytest.mark.parametrize("state", STATES)
def test_every_action_does_something_and_nothing_crashes(
    state: str,
    qtbot: QtBot,
    tasks: BackgroundTasks,
    tmp_path: Path,
    filled: tuple[TestServer, str],
    crash_handler: CrashHandler,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    effects = Effects()
    crash_handler.bug_reported.connect(lambda summary, _details: effects.bugs.append(summary))
    crash_handler.known_error_reported.connect(lambda text: effects.problems.append(text))
    answer_dialogs_at_the_edge(monkeypatch, tmp_path / "answers", effects)
    closer = DialogCloser(effects)
    harness = Harness(qtbot, tasks, tmp_path, *filled)
    done: set[str] = set()
    triggered: list[Found] = []
    report: list[str] = []  # what each did; shown with -s
    try:
        while True:
            window = harness.fresh_window()
            at = select(qtbot, window, state)
            context = context_menu_actions(window, at)
            assert not effects.bugs, f"opening the context menu ({state}) hit a bug: {effects.bugs}"
            ways = reachable_actions(window, context)
            shared = {
                keys: names for keys, names in shortcut_owners(ways).items() if len(names) > 1
            }
            assert not shared, f"one shortcut for several actions does none of them: {shared}"
            pending = [way for way in ways if way.key not in done]
            if not pending:
                break
            found = pending[0]
            done.add(found.key)
            if not found.action.isEnabled():
                report.append(f"{found.key}: disabled")
                continue
            _trigger(qtbot, harness, window, at, found, effects)
            triggered.append(found)
            report.append(f"{found.key}: {effects.seen[:2]}")
            effects.seen.clear()
    finally:
        closer.stop()
        harness.close()
    print("\n".join(report))
    routes = {found.route for found in triggered}
    expected = {"trigger", "keys"} | ({"context menu"} if state != "nothing" else set())
    assert routes >= expected, f"no action was reached by {expected - routes}"


def _trigger(
    qtbot: QtBot,
    harness: Harness,
    window: MainWindow,
    at: QModelIndex,
    found: Found,
    effects: Effects,
) -> None:
    # A file on the clipboard, so Paste has something to paste; the tree has the focus.
    mime = QMimeData()
    png = make_png(harness.tmp_path / f"clipboard-{next(_dialog_answers)}" / "PL_DXB903_pasted.png")
    mime.setUrls([QUrl.fromLocalFile(str(png))])
    QGuiApplication.clipboard().setMimeData(mime)
    workspace = window.workspace
    assert workspace is not None
    window.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window, timeout=EFFECT_TIMEOUT_MS)
    workspace.tree.setFocus()
    qtbot.waitUntil(workspace.tree.hasFocus, timeout=EFFECT_TIMEOUT_MS)
    effects.seen.clear()
    presses = 2 if found.action.isCheckable() else 1  # a toggle is put back as it was
    for press in range(presses):
        if press:
            workspace.tree.setFocus()
        observer = Observer(window, found.action, effects)
        try:
            if found.route == "context menu":
                choose_in_context_menu(window, at, found.key)
            elif found.keys is not None:
                QTest.keySequence(workspace.tree, found.keys)
            else:
                found.action.trigger()
            try:
                qtbot.waitUntil(observer.noticed, timeout=EFFECT_TIMEOUT_MS)
            except qtbot.TimeoutError:
                pytest.fail(
                    f"{found.key} is enabled with {describe_state(window)} but did nothing "
                    "a user could notice"
                )
            harness.wait_idle()
            qtbot.waitUntil(
                lambda: QApplication.activeModalWidget() is None, timeout=EFFECT_TIMEOUT_MS
            )
            for extra in observer.new_windows():
                extra.close()
        finally:
            observer.stop()
        assert not effects.bugs, f"{found.key} hit a bug: {effects.bugs}"
        assert not effects.problems, f"{found.key} showed a problem: {effects.problems}"


def describe_state(window: MainWindow) -> str:
    job = window.selected_job()
    return f"{len(window.selected_batches())} batches and {'a' if job else 'no'} job selected"
