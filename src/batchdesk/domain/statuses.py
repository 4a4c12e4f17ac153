"""Job and batch statuses, and the rule that derives a batch's status from its jobs' counts.

The database applies the same rule in its `batches` trigger (see the first migration); this
Python copy exists so the rule is readable next to the rest of the domain and so tests can check
the database against it.
"""

from dataclasses import dataclass
from enum import StrEnum


class JobStatus(StrEnum):
    QUEUED = "queued"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_finished(self) -> bool:
        return self in FINISHED_JOB_STATUSES


class BatchStatus(StrEnum):
    QUEUED = "queued"
    PROCESSING = "processing"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINISHED_JOB_STATUSES = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})


@dataclass(frozen=True)
class JobCounts:
    """How many of a batch's jobs are in each status."""

    queued: int = 0
    processing: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0

    @property
    def total(self) -> int:
        return self.queued + self.processing + self.completed + self.failed + self.cancelled

    @property
    def finished(self) -> int:
        return self.completed + self.failed + self.cancelled


def derive_batch_status(counts: JobCounts, *, paused: bool = False) -> BatchStatus:
    """Return the batch status the rule gives for these job counts.

    All queued (or no jobs yet) -> queued; any job started and not all finished -> processing;
    all finished -> failed if any failed, else completed if none was cancelled, else cancelled.
    A paused batch with work left (queued jobs, or running ones finishing) is paused; once its
    jobs have all finished it shows how it finished (and stays paused for jobs put back).
    """
    if counts.finished < counts.total and paused:
        return BatchStatus.PAUSED
    if counts.queued == counts.total:
        return BatchStatus.QUEUED
    if counts.finished < counts.total:
        return BatchStatus.PROCESSING
    if counts.failed > 0:
        return BatchStatus.FAILED
    if counts.cancelled == 0:
        return BatchStatus.COMPLETED
    return BatchStatus.CANCELLED
