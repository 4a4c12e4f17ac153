"""Background tasks: results, errors and progress come back on the GUI thread; cancel works."""

import threading

import pytest
from pytestqt.qtbot import QtBot

from batchdesk.errors import FileProblem

from batchdesk.gui.background import BackgroundTasks, TaskContext


def test_a_result_arrives_on_the_gui_thread(qtbot: QtBot, tasks: BackgroundTasks) -> None:
    gui_thread = threading.get_ident()
    seen: list[tuple[int, int]] = []

    def work(_context: TaskContext) -> int:
        assert threading.get_ident() != gui_thread
        return 42

    tasks.run("answer", work, on_result=lambda value: seen.append((value, threading.get_ident())))
    qtbot.waitUntil(lambda: bool(seen))
    assert seen == [(42, gui_thread)]
    assert tasks.active == 0


def test_a_known_error_becomes_a_sentence(qtbot: QtBot, tasks: BackgroundTasks) -> None:
    def work(_context: TaskContext) -> None:
        raise FileProblem("The disk is full.")

    with qtbot.waitSignal(tasks.known_error) as blocker:
        tasks.run("fill the disk", work)
    assert blocker.args == ["The disk is full."]


def test_a_bug_is_handed_to_the_crash_handler(qtbot: QtBot, tasks: BackgroundTasks) -> None:
    def work(_context: TaskContext) -> None:
        raise ZeroDivisionError("oops")

    with qtbot.waitSignal(tasks.bug_raised) as blocker:
        tasks.run("divide", work)
    assert isinstance(blocker.args[0], ZeroDivisionError)


def test_progress_is_reported_and_cancel_is_seen(qtbot: QtBot, tasks: BackgroundTasks) -> None:
    started = threading.Event()
    progress: list[object] = []
    outcome: list[str] = []

    def work(context: TaskContext) -> str:
        context.progress("half", force=True)
        started.set()
        while not context.cancelled():
            threading.Event().wait(0.01)
        return "stopped"

    handle = tasks.run("loop", work, on_result=outcome.append, on_progress=progress.append)
    assert started.wait(10)
    handle.cancel()
    qtbot.waitUntil(lambda: outcome == ["stopped"])
    assert progress == ["half"]


@pytest.mark.parametrize("count", [200])
def test_many_tasks_all_deliver(qtbot: QtBot, tasks: BackgroundTasks, count: int) -> None:
    results: list[int] = []
    for i in range(count):
        tasks.run("square", lambda _c, i=i: i * i, on_result=results.append)
    qtbot.waitUntil(lambda: len(results) == count, timeout=30_000)
    assert sorted(results) == [i * i for i in range(count)]
