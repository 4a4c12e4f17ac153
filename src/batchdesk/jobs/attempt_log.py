"""What a job's attempt said while it ran: kept with the attempt in the database, as its log.

The runner records on the thread that runs the job (`recording()`), and whatever runs there
adds lines with `note()`: the external step the end of its tool's stderr. Pillow's warnings,
which `jobs.job_warnings` gathers on the same thread, join them. The log is stored with the
attempt when it ends (`job_queue.complete`, `fail`, `release`), so `batchdesk show --json` and
the window's job details show it per attempt.
"""

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

# A log is for a person to read: the last lines of what was said, not everything.
MAX_LINES = 40
MAX_CHARS = 8000

_local = threading.local()


@contextmanager
def recording(warnings: Sequence[str] = ()) -> Iterator[list[str]]:
    """Collect the lines noted on this thread while the block runs; yields their list.

    `warnings` is a list that fills while the block runs (job_warnings.recorded_warnings):
    its lines join the log as "Pillow warned: ...".
    """
    lines: list[str] = []
    previous = getattr(_local, "lines", None), getattr(_local, "warnings", ())
    _local.lines, _local.warnings = lines, warnings
    try:
        yield lines
    finally:
        _local.lines, _local.warnings = previous


def note(line: str) -> None:
    """Add a line to the log of the attempt running on this thread (if one is recording)."""
    lines: list[str] | None = getattr(_local, "lines", None)
    if lines is not None and line.strip():
        lines.append(line.strip())


def recorded() -> str | None:
    """Return the log of the attempt running on this thread so far, or None if it is empty."""
    warned: Sequence[str] = getattr(_local, "warnings", ())
    lines = [*(getattr(_local, "lines", None) or ()), *(f"Pillow warned: {w}" for w in warned)]
    return as_text(lines)


def as_text(lines: Sequence[str]) -> str | None:
    """Join log lines, once each and in order, keeping the last ones within the limits."""
    unique = list(dict.fromkeys(line for line in lines if line))[-MAX_LINES:]
    if not unique:
        return None
    text = "\n".join(unique)
    return text if len(text) <= MAX_CHARS else "…" + text[-(MAX_CHARS - 1) :]
