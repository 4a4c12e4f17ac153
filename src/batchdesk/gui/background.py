"""Running work off the GUI thread and getting its result back on it.

`BackgroundTasks.run(work, on_result=...)` runs `work(context)` on a thread pool; the result,
a failure or progress comes back through signals of a QObject that lives on the GUI thread, so
every callback runs there. Tasks are kept referenced until their result is delivered, and
cancellation is cooperative: `work` polls `context.cancelled()`.

Only values cross threads (frozen dataclasses, ids, bytes), never widgets.
"""

import threading
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from batchdesk.errors import KnownError

T = TypeVar("T")

# Progress is passed on at most this often; an export reports every MiB.
PROGRESS_INTERVAL = 0.05


class TaskContext:
    """What a background function may ask: was I cancelled? and: tell the window how far I am."""

    def __init__(self, report: Callable[[object], None]) -> None:
        self._cancel = threading.Event()
        self._report = report
        self._last_report = 0.0

    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def progress(self, value: object, *, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last_report >= PROGRESS_INTERVAL:
            self._last_report = now
            self._report(value)

    def cancel(self) -> None:
        self._cancel.set()


class _TaskSignals(QObject):
    # Created on the GUI thread: emitted from a pool thread, they arrive queued on the GUI thread.
    succeeded = Signal(object)
    failed = Signal(object)
    progressed = Signal(object)


class TaskHandle(Generic[T]):
    """A running background task: cancel it, or ask whether it is still going."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.signals = _TaskSignals()
        self.context = TaskContext(self.signals.progressed.emit)
        self.done = False

    def cancel(self) -> None:
        self.context.cancel()


class _Runnable(QRunnable):
    def __init__(self, handle: TaskHandle[Any], work: Callable[[TaskContext], Any]) -> None:
        super().__init__()
        self.setAutoDelete(True)
        self._handle = handle
        self._work = work

    def run(self) -> None:
        try:
            result = self._work(self._handle.context)
        except BaseException as exc:  # delivered to the GUI thread, which decides
            self._handle.signals.failed.emit(exc)
        else:
            self._handle.signals.succeeded.emit(result)


class BackgroundTasks(QObject):
    """A thread pool for database and file work started from the window.

    Failures that are KnownErrors go to `on_error` when given, else to the `known_error` signal
    (the window shows the sentence); anything else is a bug and goes to `bug_raised`, which the
    crash handler turns into a dialog.
    """

    known_error = Signal(str)
    bug_raised = Signal(object)

    def __init__(self, max_threads: int = 4, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(max_threads)
        self._running: set[TaskHandle[Any]] = set()

    @property
    def active(self) -> int:
        return len(self._running)

    def run(
        self,
        name: str,
        work: Callable[[TaskContext], T],
        *,
        on_result: Callable[[T], None] | None = None,
        on_error: Callable[[KnownError], None] | None = None,
        on_progress: Callable[[Any], None] | None = None,
        on_finished: Callable[[], None] | None = None,
    ) -> TaskHandle[T]:
        """Run `work(context)` on the pool; call the callbacks on the GUI thread."""
        handle: TaskHandle[T] = TaskHandle(name)
        self._running.add(handle)

        def succeeded(result: T) -> None:
            self._finish(handle, on_finished)
            if on_result is not None:
                on_result(result)

        def failed(exc: BaseException) -> None:
            self._finish(handle, on_finished)
            if isinstance(exc, KnownError):
                if on_error is not None:
                    on_error(exc)
                else:
                    self.known_error.emit(str(exc))
            else:
                self.bug_raised.emit(exc)

        handle.signals.succeeded.connect(succeeded)
        handle.signals.failed.connect(failed)
        if on_progress is not None:
            handle.signals.progressed.connect(on_progress)
        self._pool.start(_Runnable(handle, work))
        return handle

    def _finish(self, handle: TaskHandle[Any], on_finished: Callable[[], None] | None) -> None:
        handle.done = True
        self._running.discard(handle)
        if on_finished is not None:
            on_finished()

    def cancel_all(self) -> None:
        for handle in list(self._running):
            handle.cancel()

    def shutdown(self, timeout_ms: int = 30_000) -> bool:
        """Cancel what runs, wait for the threads; True when all stopped in time."""
        self.cancel_all()
        return self._pool.waitForDone(timeout_ms)
