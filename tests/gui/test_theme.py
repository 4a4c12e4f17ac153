"""Light and dark: the desktop's choice or the one in Preferences, and text readable in both."""

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from pytestqt.qtbot import QtBot

from PySide6.QtCore import QPoint, QRect, Qt, QTimer
from PySide6.QtGui import QColor, QImage, QPalette
from PySide6.QtWidgets import QApplication, QLabel

from batchdesk.settings import AppPaths, Settings
from batchdesk.storage.database import Database
from tests.factories import make_batch
from tests.gui.windows import connected_workspace, open_window

from batchdesk.gui.background import BackgroundTasks
from batchdesk.gui.batch_tree_delegates import (
    BADGE_COLOURS,
    CANCELLED_COLOUR,
    COMPLETED_COLOUR,
    FAILED_COLOUR,
    badge_colours,
)
from batchdesk.gui.preferences_dialog import PreferencesDialog
from batchdesk.gui.theme import AppTheme, dark_palette, is_dark, light_palette

pytestmark = pytest.mark.qt_log_ignore(r"This plugin does not support (raise\(\)|grabbing)")

Role = QPalette.ColorRole
# Pairs a widget draws text with: (text, background).
TEXT_PAIRS = [
    (Role.Text, Role.Base),
    (Role.Text, Role.AlternateBase),
    (Role.WindowText, Role.Window),
    (Role.ButtonText, Role.Button),
    (Role.HighlightedText, Role.Highlight),
    (Role.ToolTipText, Role.ToolTipBase),
    (Role.Link, Role.Base),
]


def luminance(colour: QColor) -> float:
    def channel(value: float) -> float:
        return value / 12.92 if value <= 0.04045 else ((value + 0.055) / 1.055) ** 2.4

    red, green, blue = (channel(c) for c in (colour.redF(), colour.greenF(), colour.blueF()))
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue


def contrast(one: QColor, other: QColor) -> float:
    """WCAG contrast ratio, 1 to 21."""
    light, dark = sorted((luminance(one), luminance(other)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


@pytest.fixture(autouse=True)
def platform_palette_after(qapp: QApplication) -> Iterator[None]:
    """Each test leaves the application as the platform made it."""
    yield
    qapp.styleHints().unsetColorScheme()
    qapp.setPalette(QPalette())


@pytest.mark.parametrize(("name", "make"), [("dark", dark_palette), ("light", light_palette)])
def test_batchdesks_palettes_keep_text_readable(
    name: str, make: object, qapp: QApplication
) -> None:
    palette = make()  # type: ignore[operator]
    for text, background in TEXT_PAIRS:
        ratio = contrast(palette.color(text), palette.color(background))
        assert ratio >= 4.5, f"{name}: {text.name} on {background.name} is {ratio:.2f}:1"
    assert is_dark(palette) == (name == "dark")


@pytest.mark.parametrize(("name", "make"), [("dark", dark_palette), ("light", light_palette)])
def test_the_colours_the_tree_paints_itself_read_on_both_palettes(
    name: str, make: object, qapp: QApplication
) -> None:
    palette = make()  # type: ignore[operator]
    base = palette.color(Role.Base)
    for status in BADGE_COLOURS:
        fill, ink = badge_colours(status)
        assert contrast(fill, ink) >= 4.5, f"the {status} badge's text"
    for colour in (COMPLETED_COLOUR, FAILED_COLOUR, CANCELLED_COLOUR):  # bars: graphics, 3:1
        assert contrast(colour, base) >= 3, f"{name}: bar colour {colour.name()} on the base"


def test_the_system_choice_follows_the_desktop_as_it_changes(qapp: QApplication) -> None:
    theme = AppTheme.of(qapp)
    assert AppTheme.of(qapp) is theme  # one for the application, whatever asks for it
    theme.apply("system")
    hints = qapp.styleHints()

    hints.colorSchemeChanged.emit(Qt.ColorScheme.Dark)  # the desktop turns dark
    assert theme.dark
    assert is_dark(qapp.palette())
    hints.colorSchemeChanged.emit(Qt.ColorScheme.Light)
    assert not theme.dark
    assert not is_dark(qapp.palette())

    theme.apply("light")  # a fixed choice stays whatever the desktop does
    hints.colorSchemeChanged.emit(Qt.ColorScheme.Dark)
    assert not is_dark(qapp.palette())
    theme.apply("dark")
    assert is_dark(qapp.palette())
    theme.apply("system")  # back to the desktop's own, which here says nothing: its palette
    assert not is_dark(qapp.palette())


def test_dark_chosen_in_preferences_applies_at_once_and_at_the_next_start(
    qtbot: QtBot, qapp: QApplication, tasks: BackgroundTasks, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    url = "postgresql://nobody@127.0.0.1:1/none"  # the dialog needs no database
    window, session = open_window(qtbot, tasks, tmp_path, url)
    assert not is_dark(qapp.palette())
    chosen: list[str] = []

    def choose_dark() -> None:
        dialog = QApplication.activeModalWidget()
        if not isinstance(dialog, PreferencesDialog):
            QTimer.singleShot(20, choose_dark)
            return
        combo = dialog.theme_combo
        chosen.extend(combo.itemText(i) for i in range(combo.count()))
        combo.setCurrentIndex(combo.findData("dark"))
        dialog.buttons.accepted.emit()  # OK: saved on the pool, then closed

    QTimer.singleShot(0, choose_dark)
    window.window_actions.preferences.trigger()
    try:
        assert chosen == ["System (as the desktop)", "Light", "Dark"]
        assert window.theme.dark
        assert is_dark(qapp.palette())
        saved = Settings.load(
            AppPaths.from_environment({"BATCHDESK_HOME": str(home)}).settings_file
        )
        assert saved.theme == "dark"
    finally:
        window.close()
        session.close()

    qapp.setPalette(QPalette())  # as a new process would start
    again, again_session = open_window(qtbot, tasks, tmp_path, url, settings=saved)
    try:
        assert is_dark(qapp.palette())  # before anything is painted
    finally:
        again.close()
        again_session.close()


def text_contrast(window: QImage, label: QLabel) -> float:
    """The contrast between a label's text and what is behind it, as the window painted them."""
    top_left = label.mapTo(label.window(), QPoint(0, 0))
    image = window.copy(QRect(top_left, label.size()))
    pixels = Counter(image.pixel(x, y) for x in range(image.width()) for y in range(image.height()))
    background = QColor.fromRgb(pixels.most_common(1)[0][0])
    return max(contrast(QColor.fromRgb(pixel), background) for pixel in pixels)


@pytest.mark.slow
def test_every_label_of_the_window_reads_in_light_and_dark(
    qtbot: QtBot,
    qapp: QApplication,
    tasks: BackgroundTasks,
    tmp_path: Path,
    database: Database,
    database_conninfo: str,
) -> None:
    for prefix in ("PL_DXB", "QX_ABC", "RN_LHR"):
        make_batch(database, tmp_path / prefix, count=2, prefix=prefix)
    with psycopg.connect(database_conninfo) as conn:
        conn.execute(
            "UPDATE jobs SET status = CASE position WHEN 0 THEN 'failed' ELSE 'completed' END "
            "WHERE batch_id = (SELECT id FROM batches WHERE customer_prefix = 'QX_ABC')"
        )
    window, session = open_window(qtbot, tasks, tmp_path, database_conninfo)
    try:
        workspace = connected_workspace(qtbot, window)
        qtbot.waitUntil(lambda: workspace.stats.figure_text("failed") == "1", timeout=30_000)
        qtbot.waitUntil(lambda: "done here today" in window.status.workers_text, timeout=30_000)
        window.status.show_text("Exported PL_DXB_2026-11-28_batch-1 to /tmp (2 files, 1 KB).")
        for theme in ("light", "dark"):
            window.theme.apply(theme)
            qtbot.wait(50)  # the palette change reaches every widget through the event loop
            painted = window.grab().toImage().convertToFormat(QImage.Format.Format_RGB32)
            assert painted.save(str(tmp_path / f"window-{theme}.png"))
            labels = [
                label
                for label in window.findChildren(QLabel)
                if label.isVisible() and label.text().strip() and label.width() > 4
            ]
            assert len(labels) >= 15, "the figures, the drop zone and the status bar at least"
            faint = {
                label.text(): round(ratio, 2)
                for label in labels
                if (ratio := text_contrast(painted, label)) < 3.0  # antialiased: 3:1 as painted
            }
            assert faint == {}, f"labels hard to read in {theme}: {faint}"
    finally:
        window.close()
        session.close()


def test_the_theme_setting_round_trips_and_unknown_values_mean_system(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    Settings(theme="dark").save(path)
    assert json.loads(path.read_text())["theme"] == "dark"
    assert Settings.load(path).theme == "dark"
    path.write_text(json.dumps({"theme": "blue"}))
    assert Settings.load(path).theme == "blue"  # kept as written, applied as the system's
    from batchdesk.gui.theme import theme_name

    assert theme_name("blue") == "system"
