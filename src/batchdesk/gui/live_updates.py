"""Live updates: every workstation's batch changes, from PostgreSQL's NOTIFY, to the window.

The database's triggers announce each committed batch change on the `batchdesk_batches`
channel with a JSON payload naming the batch (see the first migration). `LiveUpdates` LISTENs
on a connection of its own, in a Python thread of its own (waiting on notifications blocks
the connection), and hands the GUI thread the ids of the batches that changed, gathered so
that the window hears at most one set every `coalesce_interval` seconds. Workers coming, going
and changing state are announced on `batchdesk_workers` (`storage.workers`); they arrive as
`workers_changed`, at most once per interval too.

When the connection fails it says so (`listening_changed(False)`), asks the window to re-read
everything (`batches_changed(None)`) at once and then every `poll_interval` seconds, and tries
to LISTEN again every `retry_interval` seconds; once back it says so and asks for one more
full re-read, for what changed while nobody was listening.
"""

import json
import logging
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any
from uuid import UUID

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from PySide6.QtCore import QObject, Qt, Signal

from batchdesk.storage import workers

log = logging.getLogger(__name__)

CHANNEL = "batchdesk_batches"
WORKERS_CHANNEL = workers.CHANNEL
COALESCE_INTERVAL = 0.25
POLL_INTERVAL = 10.0
RETRY_INTERVAL = 5.0
# How long the thread waits for a notification before looking at its stop flag again.
WAIT_STEP = 0.1

# Unless the connection string says otherwise: give up connecting in a few seconds, so that
# stop() is prompt even then, and notice a silently dropped network in about 25 s.
_CONNECTION_DEFAULTS = {
    "application_name": "batchdesk-live-updates",
    "connect_timeout": "3",
    "keepalives": "1",
    "keepalives_idle": "10",
    "keepalives_interval": "5",
    "keepalives_count": "3",
}


def listen_conninfo(conninfo: str) -> str:
    """Return `conninfo` with batchdesk's defaults for a listening connection where unset."""
    given = conninfo_to_dict(conninfo)
    return make_conninfo(
        conninfo, **{k: v for k, v in _CONNECTION_DEFAULTS.items() if k not in given}
    )


def batch_id_of(payload: str) -> UUID | None:
    """Return the batch id a notification names; None if the payload is not one we know."""
    try:
        return UUID(str(json.loads(payload)["id"]))
    except (ValueError, TypeError, KeyError):
        return None


class LiveUpdates(QObject):
    """LISTENs for batch changes in a thread of its own and reports them on the GUI thread.

    Call `stop()` before this object goes away; it joins the thread (promptly: the thread looks
    at its stop flag every tenth of a second, and gives up connecting after a few seconds).
    """

    batches_changed = Signal(object)  # set[UUID]; None: anything may have changed
    workers_changed = Signal()  # a worker came, went, or was asked to pause or run
    listening_changed = Signal(bool)

    # From a listening thread (run number, kind, value); queued to the GUI thread, where the
    # public signals go out, so every receiver runs there whatever it is.
    _reported = Signal(int, str, object)

    def __init__(
        self,
        conninfo: str,
        parent: QObject | None = None,
        *,
        coalesce_interval: float = COALESCE_INTERVAL,
        poll_interval: float = POLL_INTERVAL,
        retry_interval: float = RETRY_INTERVAL,
    ) -> None:
        super().__init__(parent)
        self._conninfo = listen_conninfo(conninfo)
        self._intervals = (coalesce_interval, poll_interval, retry_interval)
        self._runs = 0  # numbers each start(), so a thread stopped late is not heard
        self._listener: _Listener | None = None
        self._thread: threading.Thread | None = None
        self._listening: bool | None = None
        self._reported.connect(self._on_thread_reported, Qt.ConnectionType.QueuedConnection)

    @property
    def is_listening(self) -> bool:
        return bool(self._listening)

    @property
    def is_running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start listening (again); does nothing if already running."""
        if self.is_running:
            return
        self._runs += 1
        run = self._runs
        self._listening = None
        self._listener = _Listener(
            self._conninfo, *self._intervals, report=partial(self._reported.emit, run)
        )
        self._thread = threading.Thread(target=self._listener.run, name="batchdesk-live-updates")
        self._thread.daemon = True  # never keeps the process alive if stop() was forgotten
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop listening and join the thread; True when it ended within `timeout` seconds."""
        listener, thread = self._listener, self._thread
        self._listener, self._thread = None, None
        if listener is not None:
            listener.stopping.set()
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True

    def _on_thread_reported(self, run: int, kind: str, value: Any) -> None:
        if self._thread is None or run != self._runs:
            return  # from a thread since stopped: of no interest any more
        if kind == "changed":
            self.batches_changed.emit(value)
        elif kind == "workers":
            self.workers_changed.emit()
        elif value != self._listening:
            self._listening = value
            self.listening_changed.emit(value)


class _Listener:
    """The listening thread's work: LISTEN, gather ids, report; poll and retry when cut off."""

    def __init__(
        self,
        conninfo: str,
        coalesce_interval: float,
        poll_interval: float,
        retry_interval: float,
        *,
        report: Callable[[str, object], None],
    ) -> None:
        self._conninfo = conninfo
        self._coalesce_interval = coalesce_interval
        self._poll_interval = poll_interval
        self._retry_interval = retry_interval
        self._report = report
        self.stopping = threading.Event()

    def run(self) -> None:
        missed = False  # were notifications possibly missed? then ask for a full re-read
        next_poll = 0.0
        while not self.stopping.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True) as connection:
                    connection.execute(f"LISTEN {CHANNEL}")
                    connection.execute(f"LISTEN {WORKERS_CHANNEL}")
                    self._report("listening", True)
                    if missed:
                        self._report("changed", None)
                    missed = False
                    self._receive(connection)
            except psycopg.Error as exc:
                if self.stopping.is_set():
                    break
                log.info("Live updates stopped listening: %s", exc)
                self._report("listening", False)
                missed = True
                next_poll = self._poll_until_retry(next_poll)

    def _receive(self, connection: psycopg.Connection[Any]) -> None:
        # Leading edge at once, then at most one report per interval, so a burst of
        # thousands of job changes becomes a few sets of ids.
        pending: set[UUID] | None = set()
        has_pending = workers_pending = False
        last_report = float("-inf")
        while not self.stopping.is_set():
            now = time.monotonic()
            due = last_report + self._coalesce_interval
            if (has_pending or workers_pending) and now >= due:
                if has_pending:
                    self._report("changed", pending)
                if workers_pending:
                    self._report("workers", None)
                pending, has_pending, workers_pending = set(), False, False
                last_report = now
                continue
            waiting = has_pending or workers_pending
            wait = min(WAIT_STEP, due - now) if waiting else WAIT_STEP
            # stop_after: back to the top as soon as anything came, to report it if due.
            for notification in connection.notifies(timeout=max(wait, 0.0), stop_after=1):
                if notification.channel == WORKERS_CHANNEL:
                    workers_pending = True
                    continue
                batch_id = batch_id_of(notification.payload)
                has_pending = True
                if batch_id is None or pending is None:
                    pending = None  # unknown news: re-read everything
                else:
                    pending.add(batch_id)

    def _poll_until_retry(self, poll_at: float) -> float:
        """Ask for full re-reads when due until it is time to connect again; return next due."""
        retry_at = time.monotonic() + self._retry_interval
        while not self.stopping.is_set():
            now = time.monotonic()
            if now >= poll_at:
                self._report("changed", None)
                poll_at = now + self._poll_interval
            if now >= retry_at:
                break
            self.stopping.wait(min(WAIT_STEP, retry_at - now, poll_at - now))
        return poll_at
