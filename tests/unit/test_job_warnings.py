"""Warnings raised while a job runs are kept with that job, and only that job."""

import threading
import warnings
from typing import Any

from batchdesk.jobs.job_warnings import recorded_warnings


def pillow_warns(text: str) -> None:
    """Warn as Pillow's PNG reader does."""
    warnings.warn_explicit(text, UserWarning, "PngImagePlugin.py", 714, module="PIL.PngImagePlugin")


def test_a_job_s_thread_keeps_its_warnings_and_other_threads_still_show_theirs() -> None:
    shown: list[str] = []
    recording = threading.Event()
    main_warned = threading.Event()
    caught: list[str] = []

    def job() -> None:
        with recorded_warnings() as warned:
            recording.set()
            pillow_warns("from the job")
            main_warned.wait(10)
            pillow_warns("from the job")  # again: recorded every time, not once
        caught.extend(warned)

    with warnings.catch_warnings():  # puts back the process's hook and filters afterwards
        warnings.showwarning = lambda message, *_: shown.append(str(message))
        worker = threading.Thread(target=job)
        worker.start()
        assert recording.wait(10)
        pillow_warns("from the window")
        main_warned.set()
        worker.join(10)

    # Under this test suite's "error" filter too: a job's warning never becomes an exception.
    assert caught == ["UserWarning: from the job", "UserWarning: from the job"]
    assert shown == ["from the window"]


def test_recording_puts_its_hook_back_after_something_replaced_it() -> None:
    shown: list[Any] = []
    with warnings.catch_warnings():
        with recorded_warnings():
            pass
        # The command line may install its own hook (logging.captureWarnings) afterwards.
        warnings.showwarning = lambda message, *_: shown.append(message)
        with recorded_warnings() as warned:
            pillow_warns("after the swap")
    assert warned == ["UserWarning: after the swap"]
    assert shown == []
