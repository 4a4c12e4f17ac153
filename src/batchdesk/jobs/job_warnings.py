"""Warnings raised while a job runs (Pillow's, mostly): kept with the job, never printed.

Pillow warns about files it can still read ("Invalid APNG, will use default PNG image if
possible"); by default Python prints such a warning to stderr, once, between the worker's own
lines, with no word of which job it was about. The runner records them with the job instead
(its log lines name the job) and nothing of them reaches stderr.

Python 3.11's warning filters and `warnings.showwarning` are process-wide, so
`warnings.catch_warnings` cannot catch one thread's warnings while other threads run jobs of
their own. So, each time a job starts recording: Pillow's warnings are set to always reach
`showwarning` (never raised, never shown once only, whatever filters the process has), and
`showwarning` is wrapped, once, so that a warning raised on a thread that is recording goes to
that thread's list. Any other warning goes on to the `showwarning` that was there before (the
command line sends those to its log file).
"""

import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

_PILLOW_MODULES = r"PIL(\.|$)"
_local = threading.local()
_lock = threading.Lock()
_previous = warnings.showwarning


def _show(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    caught: list[str] | None = getattr(_local, "caught", None)
    if caught is None:
        _previous(message, category, filename, lineno, file, line)
    else:
        caught.append(f"{category.__name__}: {message}")


def _install() -> None:
    """Put the hook and the filter in place (again, if something has changed them since)."""
    global _previous
    with _lock:
        if warnings.showwarning is not _show:
            _previous = warnings.showwarning
            warnings.showwarning = _show
        # First in the list (moved there if it is already in it), so no other filter wins.
        warnings.filterwarnings("always", module=_PILLOW_MODULES)


@contextmanager
def recorded_warnings() -> Iterator[list[str]]:
    """Collect the warnings raised on this thread while the block runs, instead of showing them.

    Yields the list they are added to, as "Category: message" lines.
    """
    _install()
    caught: list[str] = []
    _local.caught = caught
    try:
        yield caught
    finally:
        _local.caught = None
