"""What an export wrote, and what the person exporting should know about the batch's state."""

from dataclasses import dataclass, field
from pathlib import Path

from batchdesk.domain.statuses import JobStatus
from batchdesk.domain.units import plural


@dataclass
class StatusTally:
    """Counts the jobs an export met, by how they stood when it read them."""

    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    unfinished: int = 0

    def add(self, status: str) -> None:
        if not JobStatus(status).is_finished:
            self.unfinished += 1
        else:
            setattr(self, status, getattr(self, status) + 1)

    @property
    def jobs(self) -> int:
        return self.completed + self.failed + self.cancelled + self.unfinished


@dataclass(frozen=True)
class ExportSummary:
    batch: str  # the base directory name
    path: Path  # the zip, or the folder written to
    files: int  # files written, the manifest not counted
    bytes: int
    tally: StatusTally = field(default_factory=StatusTally)

    @property
    def warnings(self) -> tuple[str, ...]:
        """Sentences about what the export could not hold, empty when the batch was complete."""
        tally = self.tally
        found: list[str] = []
        if tally.unfinished:
            found.append(
                f"{plural(tally.unfinished, 'job')} of {tally.jobs} in {self.batch} "
                f"{'is' if tally.unfinished == 1 else 'are'} not finished yet, so "
                f"{'its' if tally.unfinished == 1 else 'their'} outputs are missing; "
                "export again when the batch completes."
            )
        if tally.failed:
            found.append(
                f"{plural(tally.failed, 'job')} in {self.batch} failed; "
                "manifest.csv gives each reason."
            )
        if tally.cancelled:
            verb = "was" if tally.cancelled == 1 else "were"
            found.append(f"{plural(tally.cancelled, 'job')} in {self.batch} {verb} cancelled.")
        if self.files == 0:
            found.append(f"{self.batch} has no outputs yet; only manifest.csv was written.")
        return tuple(found)

    def as_json(self) -> dict[str, object]:
        return {
            "batch": self.batch,
            "path": str(self.path),
            "files": self.files,
            "bytes": self.bytes,
            "jobs": self.tally.jobs,
            "completed": self.tally.completed,
            "failed": self.tally.failed,
            "cancelled": self.tally.cancelled,
            "unfinished": self.tally.unfinished,
            "warnings": list(self.warnings),
        }
