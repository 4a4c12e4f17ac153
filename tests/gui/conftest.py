"""GUI tests: offscreen Qt (set in tests/conftest.py), real PostgreSQL, nothing left running.

A Qt warning fails the test (pyproject: qt_log_level_fail). So does a thread that outlives
it: every test must stop what it started, as the window must when it closes.
"""

import threading
import time
from collections.abc import Iterator

import pytest

from PySide6.QtCore import QThreadPool
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication

from batchdesk.gui.background import BackgroundTasks

LEFTOVER_GRACE_SECONDS = 5.0


@pytest.fixture(autouse=True, scope="session")
def clipboard_emptied_at_the_end(qapp: QApplication) -> Iterator[None]:
    """Give the clipboard's data back to Python before Python goes.

    Data a test puts on the clipboard (a QMimeData made in Python) is kept by Qt's platform
    clipboard, a C++ static destroyed at process exit, after Python has shut down; its Python
    wrapper's clean-up then crashes the process (SIGSEGV, exit 139) after every test passed.
    """
    yield
    QGuiApplication.clipboard().clear()


@pytest.fixture(autouse=True)
def no_threads_left_behind() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    QThreadPool.globalInstance().waitForDone(int(LEFTOVER_GRACE_SECONDS * 1000))
    deadline = time.monotonic() + LEFTOVER_GRACE_SECONDS
    while True:
        # A Qt pool thread that ran Python code shows up as a _DummyThread that Python 3.11
        # never forgets; those threads are Qt's, checked through the pools below.
        extra = [
            t
            for t in threading.enumerate()
            if t not in before and t.is_alive() and not isinstance(t, threading._DummyThread)
        ]
        if not extra or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert extra == [], f"threads left running: {[t.name for t in extra]}"
    assert QThreadPool.globalInstance().activeThreadCount() == 0


@pytest.fixture
def tasks(qtbot: object) -> Iterator[BackgroundTasks]:
    """The window's background pool; waits for its work at the end of the test."""
    pool = BackgroundTasks()
    yield pool
    assert pool.shutdown(30_000), "background tasks still running after 30 s"
