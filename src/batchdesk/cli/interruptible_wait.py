"""Waiting on the main thread in a way no signal can slip past."""

import contextlib
import select
import signal
import socket
import threading

# How often the wait looks at its event; signals wake it at once.
_EVENT_POLL_SECONDS = 0.5


def wait_interruptibly(event: threading.Event | None = None) -> None:
    """Wait until `event` is set (for ever without one) while signal handlers still run.

    The kernel gives a signal sent to the process to any thread that does not block it, and
    Python runs the handler only on the main thread, between two bytecodes. A main thread asleep
    in an untimed `Event.wait()` never gets there when another thread took the signal: a SIGTERM
    sent right after a SIGCONT went to another thread about one time in three, and was ignored.
    Here the signal wakes the wait through a wakeup fd whichever thread took it, and the handler
    (KeyboardInterrupt, or SystemExit for SIGTERM) raises out of this function.

    Call from the main thread only.
    """
    reader, writer = socket.socketpair()
    reader.setblocking(False)
    writer.setblocking(False)
    previous = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    try:
        while event is None or not event.is_set():
            select.select([reader], [], [], _EVENT_POLL_SECONDS)
            with contextlib.suppress(BlockingIOError):
                reader.recv(512)  # the signal numbers: the handlers run before the next turn
    finally:
        signal.set_wakeup_fd(previous)
        reader.close()
        writer.close()
