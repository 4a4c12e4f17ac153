"""What the window does to steer the farm: batches' priority, pause and resume, jobs run again.

Each runs in the background on the storage layer's functions (the same as `batchdesk priority`,
`pause`, `resume` and `retry --job`) and says what happened in one sentence through `message`;
what the database refuses (a viewer's role, a job that started meanwhile) comes back as one
sentence through `failed`. The tree shows the result by itself: every change is a batch change,
which the database announces to every open window.
"""

from collections import defaultdict
from collections.abc import Callable, Sequence
from uuid import UUID

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QInputDialog, QWidget

from batchdesk.domain.units import plural
from batchdesk.storage import farm_controls
from batchdesk.storage.batch_queries import BatchRow, JobRow
from batchdesk.storage.database import Database
from batchdesk.storage.farm_controls import (
    MAX_PRIORITY,
    MIN_PRIORITY,
    PauseChange,
    PriorityChange,
    RequeuedJob,
)

from batchdesk.gui.background import BackgroundTasks, TaskContext

# Raise and Lower move a batch's priority by this much (within 0-100).
PRIORITY_STEP = 10
FINISHED_BATCH = ("completed", "failed", "cancelled")
FINISHED_JOB = ("completed", "failed", "cancelled")

# Asks for a priority: (title, question, current value) -> the answer, or None (cancelled).
AskPriority = Callable[[str, str, int], int | None]


def pausable(batches: Sequence[BatchRow]) -> list[BatchRow]:
    """The batches a pause holds: those not paused yet that have work left."""
    return [b for b in batches if b.paused_at is None and b.status not in FINISHED_BATCH]


def resumable(batches: Sequence[BatchRow]) -> list[BatchRow]:
    """The paused batches (a finished batch stays paused until resumed)."""
    return [b for b in batches if b.paused_at is not None]


def runnable_again(jobs: Sequence[JobRow]) -> list[JobRow]:
    """The jobs that can be queued again: finished ones (a queued or running job cannot)."""
    return [job for job in jobs if job.status in FINISHED_JOB]


def stepped(priority: int, step: int) -> int:
    """`priority` moved by `step`, kept within 0-100."""
    return max(MIN_PRIORITY, min(MAX_PRIORITY, priority + step))


class FarmActions(QObject):
    """Runs the farm actions for the window and says what happened."""

    message = Signal(str)  # one sentence for the status bar
    failed = Signal(str)  # one sentence that needs attention

    def __init__(
        self,
        database: Database,
        tasks: BackgroundTasks,
        parent_widget: QWidget,
        ask_priority: AskPriority | None = None,
    ) -> None:
        super().__init__(parent_widget)
        self._database = database
        self._tasks = tasks
        self._parent = parent_widget
        self._ask_priority = ask_priority or self._ask

    def _ask(self, title: str, question: str, current: int) -> int | None:
        value, ok = QInputDialog.getInt(
            self._parent, title, question, current, MIN_PRIORITY, MAX_PRIORITY, 1
        )
        return value if ok else None

    # -- priority ----------------------------------------------------------------------------

    def ask_and_set_priority(self, batches: Sequence[BatchRow]) -> None:
        """Ask for a priority (0-100) and give it to every batch in `batches`."""
        if not batches:
            return
        named = batches[0].base_directory_name if len(batches) == 1 else None
        whom = named or plural(len(batches), "batch", "batches")
        question = (
            f"Priority of {whom}, 0 to {MAX_PRIORITY}: workers take the jobs of higher "
            "priorities first, then the oldest."
        )
        answer = self._ask_priority("Set Priority", question, batches[0].priority)
        if answer is None:
            self.message.emit("Priority unchanged.")
            return
        self.set_priority(batches, answer)

    def set_priority(self, batches: Sequence[BatchRow], priority: int) -> None:
        self._change_priorities({priority: [b.id for b in batches]})

    def raise_priority(self, batches: Sequence[BatchRow]) -> None:
        self._step(batches, PRIORITY_STEP)

    def lower_priority(self, batches: Sequence[BatchRow]) -> None:
        self._step(batches, -PRIORITY_STEP)

    def _step(self, batches: Sequence[BatchRow], step: int) -> None:
        # Each batch moves from its own priority: one statement per new value.
        groups: dict[int, list[UUID]] = defaultdict(list)
        for batch in batches:
            groups[stepped(batch.priority, step)].append(batch.id)
        if groups:
            self._change_priorities(groups)

    def _change_priorities(self, groups: dict[int, list[UUID]]) -> None:
        database = self._database

        def work(_context: TaskContext) -> list[PriorityChange]:
            database.require_write("changing priorities")
            changes: list[PriorityChange] = []
            for priority, ids in sorted(groups.items()):
                changes += farm_controls.set_priority(database, ids, priority)
            return changes

        self._tasks.run(
            "set priorities", work, on_result=self._on_priorities_set, on_error=self._on_error
        )

    def _on_priorities_set(self, changes: list[PriorityChange]) -> None:
        moved = [c for c in changes if c.was != c.priority]
        if not moved:
            same = changes[0].priority if changes else MAX_PRIORITY
            edge = "already at" if len(changes) == 1 else "all already at"
            self.message.emit(f"Priority unchanged: {edge} {same}.")
        elif len(moved) == 1:
            change = moved[0]
            self.message.emit(
                f"{change.base_directory_name}: priority {change.priority} (was {change.was})."
            )
        else:
            values = sorted({c.priority for c in moved})
            now = (
                f"priority {values[0]}"
                if len(values) == 1
                else f"priorities {values[0]} to {values[-1]}"
            )
            self.message.emit(f"{plural(len(moved), 'batch', 'batches')} now have {now}.")

    # -- pause and resume --------------------------------------------------------------------

    def pause(self, batches: Sequence[BatchRow]) -> None:
        """Pause the batches that have work left; the others are left as they are."""
        chosen = pausable(batches)
        if not chosen:
            self.message.emit("Nothing to pause in the selection: it is paused or finished.")
            return
        self._set_paused([b.id for b in chosen], paused=True)

    def resume(self, batches: Sequence[BatchRow]) -> None:
        """Let the paused batches among `batches` run again."""
        chosen = resumable(batches)
        if not chosen:
            self.message.emit("Nothing to resume in the selection: no batch of it is paused.")
            return
        self._set_paused([b.id for b in chosen], paused=False)

    def _set_paused(self, ids: list[UUID], *, paused: bool) -> None:
        database = self._database
        change = farm_controls.pause if paused else farm_controls.resume

        def work(_context: TaskContext) -> list[PauseChange]:
            database.require_write("pausing" if paused else "resuming")
            return change(database, ids)

        def done(changes: list[PauseChange]) -> None:
            queued = plural(sum(c.queued for c in changes), "queued job")
            running = sum(c.running for c in changes)
            what = (
                changes[0].base_directory_name
                if len(changes) == 1
                else plural(len(changes), "batch", "batches")
            )
            if not paused:
                self.message.emit(f"Resumed {what}: {queued} may run.")
                return
            note = f"; {running} running will finish" if running else ""
            self.message.emit(f"Paused {what}: {queued} held until Resume{note}.")

        verb = "pause batches" if paused else "resume batches"
        self._tasks.run(verb, work, on_result=done, on_error=self._on_error)

    # -- jobs --------------------------------------------------------------------------------

    def run_again(self, jobs: Sequence[JobRow]) -> None:
        """Queue the finished jobs among `jobs` again with fresh attempts; name those left."""
        chosen = runnable_again(jobs)
        left = [job for job in jobs if job not in chosen]
        if not chosen:
            self.message.emit(_unfinished_sentence(left) or "No job is selected.")
            return
        database = self._database
        ids = [job.id for job in chosen]

        def work(_context: TaskContext) -> list[RequeuedJob]:
            database.require_write("running jobs again")
            return farm_controls.requeue_job_ids(database, ids)

        def done(requeued: list[RequeuedJob]) -> None:
            what = requeued[0].file_name if len(requeued) == 1 else plural(len(requeued), "job")
            sentence = f"Queued {what} again, with fresh attempts."
            note = _unfinished_sentence(left)
            self.message.emit(f"{sentence} {note}" if note else sentence)

        self._tasks.run("run jobs again", work, on_result=done, on_error=self._on_error)

    def _on_error(self, error: Exception) -> None:
        self.failed.emit(str(error))


def _unfinished_sentence(jobs: Sequence[JobRow]) -> str:
    """'a.png is running: only a finished job can run again.' for the jobs left as they are."""
    if not jobs:
        return ""
    if len(jobs) == 1:
        job = jobs[0]
        state = "running" if job.status == "processing" else "still queued"
        return f"{job.file_name} is {state}: only a finished job can run again."
    return f"{plural(len(jobs), 'job')} not finished yet were left as they are."
