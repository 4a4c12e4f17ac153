"""Running jobs in the window: the runner on a QThreadPool, its events handed over in batches.

`RunnerHost` owns this workstation's `Runner` (and `AutoDelivery` when a delivery folder is set).
Starting and stopping talk to the database and join threads (a stop waits for running jobs to
reach their next step and give themselves back, which takes a second or more), so both run on a
short-lived plain thread of their own and report back with `started` / `stopped`; the GUI thread
never waits for them. Operations queue up behind each other: `start(); stop()` in a row is safe.

To close the window, stop first and close when `stopped` arrives, saying meanwhile that jobs
are being given back::

    def closeEvent(self, event):
        if self.runner_host.enabled or self.runner_host.stopping:
            event.ignore()
            self.statusBar().showMessage("Giving back unfinished jobs...")
            self.runner_host.stopped.connect(self.close, Qt.SingleShotConnection)
            self.runner_host.stop()

`wait_stopped()` blocks instead, for the very end of `main()` and for tests.

The runner calls back on its worker threads. Each event goes into a lock-protected list and the
GUI thread drains it on a short timer (as Picard does), so a thousand completions cost one
queued wake-up and one `job_events` emission, not a thousand.
"""

import logging
import shutil
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, QTimer, Signal

from batchdesk.errors import KnownError
from batchdesk.storage.database import Database

if TYPE_CHECKING:  # imported by start(): the image pipelines load after the window's first page
    from batchdesk.export.delivery import AutoDelivery
    from batchdesk.jobs.job_execution import JobEvent
    from batchdesk.jobs.runner import Runner, RunnerConfig

log = logging.getLogger(__name__)

DRAIN_INTERVAL_MS = 50
# Python gives its own threads 16 MiB of stack on macOS, where a QThread gets 512 KiB: too
# little for Pillow and deep Python calls. Elsewhere this matches the platform default.
JOB_THREAD_STACK_SIZE = 16 << 20


class _TaskRunnable(QRunnable):
    def __init__(self, task: Callable[[], None]) -> None:
        super().__init__()
        self.setAutoDelete(True)
        self._task = task

    def run(self) -> None:
        try:
            self._task()
        except Exception:  # the runner catches its own; anything here is a bug to log
            log.exception("a job task raised")


class QtTaskPool:
    """The runner's `TaskPool` on a QThreadPool of its own.

    Not the global pool and not the window's `BackgroundTasks` pool: a job takes seconds, and
    it must never delay the small queries that keep the window up to date.
    """

    def __init__(self, threads: int, parent: QObject | None = None) -> None:
        self._pool = QThreadPool(parent)
        self._pool.setObjectName("batchdesk-jobs")
        self._pool.setMaxThreadCount(threads)
        self._pool.setStackSize(JOB_THREAD_STACK_SIZE)
        self._disposed = False

    @property
    def threads(self) -> int:
        return self._pool.maxThreadCount()

    @property
    def active(self) -> int:
        return self._pool.activeThreadCount()

    def start(self, task: Callable[[], None]) -> None:
        self._pool.start(_TaskRunnable(task))

    def shutdown(self) -> None:
        """Wait for every started task to finish (the runner has told them to stop)."""
        self._pool.waitForDone(-1)

    def dispose(self) -> None:
        """Delete the pool on its own thread once it is no longer needed (again: no effect)."""
        if not self._disposed:
            self._disposed = True
            self._pool.deleteLater()


class EventBatcher(QObject):
    """Collects items from any thread; the GUI thread gets them as lists, one per drain."""

    drained = Signal(list)
    _woken = Signal()

    def __init__(self, interval_ms: int = DRAIN_INTERVAL_MS, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._lock = threading.Lock()
        self._items: list[Any] = []
        self._timer = QTimer(self, singleShot=True, interval=interval_ms)
        self._timer.timeout.connect(self.drain)
        # Emitted from worker threads, so delivered queued on the GUI thread.
        self._woken.connect(self._on_woken)

    def add(self, item: Any) -> None:
        """Keep `item` for the next drain; safe from any thread."""
        with self._lock:
            first = not self._items
            self._items.append(item)
        if first:  # only the first item of a batch costs a queued event
            self._woken.emit()

    def _on_woken(self) -> None:
        if not self._timer.isActive():
            self._timer.start()

    def drain(self) -> None:
        """Emit what has been collected, if anything (also called directly at a stop)."""
        with self._lock:
            items, self._items = self._items, []
        if items:
            self.drained.emit(items)


@dataclass(eq=False)
class _Run:
    """One start of the runner; `started` is written by its start thread, read after a join."""

    runner: "Runner"
    pool: QtTaskPool
    delivery: "AutoDelivery | None"
    work_dir: Path  # ours, holding the runner's: removed even when the start fails
    started: bool = False
    error: str = ""


class RunnerHost(QObject):
    """This workstation's job runner, started and stopped without freezing the window."""

    job_events = Signal(list)  # list[JobEvent], in order, once per drain
    delivery_event = Signal(object)  # DeliveryEvent, from auto-delivery
    busy_changed = Signal(int)  # jobs running on this workstation
    started = Signal()
    stopped = Signal()  # unfinished jobs have been given back
    failed = Signal(str)  # could not start: one sentence
    # Emitted on the start and stop threads, delivered queued on the GUI thread.
    _start_done = Signal(object)
    _stop_done = Signal(object)

    def __init__(
        self,
        database: Database,
        settings_threads: int,
        parent: QObject | None = None,
        *,
        config: "RunnerConfig | None" = None,
        delivery_folder: Path | None = None,
    ) -> None:
        super().__init__(parent)
        self._database = database
        self._config = config  # None: the runner's defaults
        self._threads = max(1, settings_threads)
        self._delivery_folder = delivery_folder
        self._run: _Run | None = None  # the run wanted now
        self._live: list[_Run] = []  # started or stopping, until their stop is done
        self._operation: threading.Thread | None = None
        self._busy = 0
        self._batcher = EventBatcher(parent=self)
        self._batcher.drained.connect(self._on_batcher_drained)
        self._start_done.connect(self._on_start_done)
        self._stop_done.connect(self._on_stop_done)

    # -- properties -------------------------------------------------------------------------

    @property
    def threads(self) -> int:
        return self._threads

    @property
    def enabled(self) -> bool:
        """True from `start()` until `stop()`, whether or not the start has finished."""
        return self._run is not None

    @property
    def stopping(self) -> bool:
        """True while a stop is giving jobs back."""
        return any(run is not self._run for run in self._live)

    @property
    def busy(self) -> int:
        """Jobs running on this workstation now (those being given back included)."""
        return sum(run.runner.busy for run in self._live)

    # -- start and stop ---------------------------------------------------------------------

    def set_enabled(self, enabled: bool) -> None:
        if enabled:
            self.start()
        else:
            self.stop()

    def start(self) -> None:
        """Start claiming jobs; `started` or `failed` follows."""
        if self._run is not None:
            return
        from batchdesk.export.delivery import AutoDelivery
        from batchdesk.jobs.runner import Runner, RunnerConfig

        given = self._config or RunnerConfig()
        pool = QtTaskPool(self._threads, parent=self)
        work_dir = Path(tempfile.mkdtemp(prefix="batchdesk-window-", dir=given.work_dir))
        config = replace(given, threads=self._threads, work_dir=work_dir)
        runner = Runner(self._database, config, pool=pool, on_event=self._batcher.add)
        delivery = None
        if self._delivery_folder is not None:
            delivery = AutoDelivery(
                self._database, self._delivery_folder, on_event=self.delivery_event.emit
            )
        run = _Run(runner, pool, delivery, work_dir)
        self._run = run
        self._live.append(run)

        def start_run() -> None:
            try:
                run.runner.start()
                if run.delivery is not None:
                    run.delivery.start()
            except KnownError as exc:
                run.error = f"Could not start running jobs on this workstation: {exc}"
            except Exception as exc:
                log.exception("starting the runner failed")
                run.error = f"Could not start running jobs on this workstation ({exc})."
            else:
                run.started = True
            if not run.started:
                shutil.rmtree(run.work_dir, ignore_errors=True)
            self._start_done.emit(run)

        self._queue_operation("runner-start", start_run)

    def stop(self) -> None:
        """Stop claiming and give back unfinished jobs, off the GUI thread; `stopped` follows."""
        run = self._run
        if run is None:
            return
        self._run = None

        def stop_run() -> None:
            if run.started:
                try:
                    if run.delivery is not None:
                        run.delivery.stop()
                    run.runner.stop()
                except Exception:
                    log.exception("stopping the runner failed")
                shutil.rmtree(run.work_dir, ignore_errors=True)
            self._stop_done.emit(run)

        self._queue_operation("runner-stop", stop_run)

    def wait_stopped(self, timeout: float | None = None) -> bool:
        """Block until queued starts and stops have run; True when they did in time.

        Freezes the GUI thread meanwhile: for the end of the program and for tests.
        """
        operation = self._operation
        if operation is None:
            return True
        operation.join(timeout)
        return not operation.is_alive()

    def _queue_operation(self, name: str, action: Callable[[], None]) -> None:
        previous = self._operation

        def body() -> None:
            if previous is not None:
                previous.join()  # one operation at a time, in the order asked for
            try:
                action()
            except RuntimeError:  # the host was deleted meanwhile: nobody is left to tell
                log.warning("the runner host went away during %s", name)

        thread = threading.Thread(target=body, name=f"batchdesk-{name}", daemon=True)
        self._operation = thread
        thread.start()

    def _on_start_done(self, run: _Run) -> None:
        if run.started:
            self.started.emit()
            return
        self._live.remove(run)
        run.pool.dispose()
        if self._run is run:
            self._run = None
        self.failed.emit(run.error)

    def _on_stop_done(self, run: _Run) -> None:
        if run in self._live:
            self._live.remove(run)
        run.pool.dispose()
        self._batcher.drain()  # the "released" events of the jobs given back
        self._update_busy()
        self.stopped.emit()

    # -- events -----------------------------------------------------------------------------

    def _on_batcher_drained(self, events: "list[JobEvent]") -> None:
        self.job_events.emit(events)
        self._update_busy()

    def _update_busy(self) -> None:
        busy = self.busy
        if busy != self._busy:
            self._busy = busy
            self.busy_changed.emit(busy)
