"""The two ways a job ends without its outputs: it failed, or it was asked to stop.

Both are raised by the pipeline (and by the input checks it runs first) and caught by the runner,
which records a failure with its one-sentence message and leaves a stopped job to whoever asked.
"""

from batchdesk.errors import KnownError


class JobFailed(KnownError):
    """A job cannot succeed as things stand: one sentence naming the file, the step, what to do.

    `retryable` tells the runner whether trying again later (or elsewhere) may succeed: a full
    disk or a missing tool may be fixed; a truncated file stays truncated.
    """

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class StopRequested(Exception):
    """The job was asked to stop between steps (cancelled, taken over, or the worker stopping)."""
