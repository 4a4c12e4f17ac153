"""Batch notifications: shown from the tray when there is one and they are on; else nothing,
and no warning either (headless machines and many desktops have no tray)."""

import pytest
from pytestqt.qtbot import QtBot

from PySide6.QtWidgets import QApplication, QSystemTrayIcon

from batchdesk.gui.tray import Notifier


def test_without_a_system_tray_a_notification_quietly_does_nothing(
    qapp: QApplication, qtbot: QtBot
) -> None:
    assert not QSystemTrayIcon.isSystemTrayAvailable()  # offscreen, as on a render node
    notifier = Notifier(qapp)
    try:
        assert not notifier.is_available()
        notifier.notify_batch_finished("PL_DXB_2026-11-28_batch-3", "completed", "12 of 12")
        qtbot.wait(10)  # a Qt warning, had there been one, fails this test
        assert notifier.last_message is None
    finally:
        notifier.deleteLater()


def test_notifications_turned_off_show_nothing(qapp: QApplication) -> None:
    notifier = Notifier(qapp, enabled=False)
    try:
        assert not notifier.enabled
        notifier.notify_batch_finished("PL_DXB_2026-11-28_batch-3", "failed", "3 failed")
        assert notifier.last_message is None
        notifier.set_enabled(True)
        assert notifier.enabled
    finally:
        notifier.deleteLater()


def test_with_a_system_tray_the_message_is_shown(qapp: QApplication) -> None:
    if not QSystemTrayIcon.isSystemTrayAvailable():
        pytest.skip("this desktop has no system tray (offscreen always has none)")
    notifier = Notifier(qapp)
    try:
        notifier.notify_batch_finished("PL_DXB_2026-11-28_batch-3", "failed", "3 of 12 failed")
        assert notifier.last_message == ("PL_DXB_2026-11-28_batch-3 failed", "3 of 12 failed")
    finally:
        notifier.set_enabled(False)
        notifier.deleteLater()
