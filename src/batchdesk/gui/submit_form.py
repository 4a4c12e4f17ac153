"""The form under the pending files: what will be created, the description and the pipeline.

The batch names come from the database's day counters (`preview_names`), read in the background
whenever the customers change and whenever the window says batches changed (`refresh`), so the
form shows the name a submission made now would really get, `PL_DXB_2026-11-28_batch-3`. The
files are grouped with `plan_batches`, the function `submit` itself uses.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QComboBox, QFormLayout, QLabel, QLineEdit, QWidget

from batchdesk.domain.file_selection import SelectedFile
from batchdesk.domain.naming import prefixes_in_order
from batchdesk.domain.units import format_size, plural
from batchdesk.errors import InvalidRequest, KnownError
from batchdesk.jobs.pipeline_document import check_row
from batchdesk.settings import Settings
from batchdesk.storage.database import Database
from batchdesk.storage.name_preview import preview_names
from batchdesk.storage.pipeline_store import PipelineRow, list_pipelines
from batchdesk.storage.submission import (
    MAX_DESCRIPTION_LENGTH,
    PlannedBatch,
    SubmissionRequest,
    plan_batches,
)

from batchdesk.gui.background import BackgroundTasks, TaskContext


@dataclass(frozen=True)
class PickerEntry:
    """A pipeline as the picker offers it: name, version, description, and why it cannot run."""

    name: str
    version: int
    description: str
    problem: str | None

    @classmethod
    def of(cls, row: PipelineRow) -> "PickerEntry":
        try:
            check_row(row)
        except InvalidRequest as exc:
            return cls(row.name, row.version, row.description, str(exc))
        return cls(row.name, row.version, row.description, None)

    @property
    def sentence(self) -> str:
        """What the picker says under the list: the version and description, or the problem."""
        if self.problem is not None:
            return f"Version {self.version} cannot be used: {self.problem}"
        return f"Version {self.version}. {self.description}".strip()


class SubmitForm(QWidget):
    """Customers and batch names of the pending files, their description and pipeline."""

    def __init__(
        self,
        database: Database,
        tasks: BackgroundTasks,
        settings: Settings,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._database = database
        self._tasks = tasks
        self._settings = settings
        self._rule = settings.prefix_rule
        self._files: tuple[SelectedFile, ...] = ()
        self._names: dict[str, str] = {}  # prefix -> the name its next batch gets
        self._preview_error = ""
        self._previewed: tuple[str, ...] = ()
        self._preview_running = False
        self._preview_again = False
        self._pipelines: dict[str, PickerEntry] | None = None  # by name, once listed

        self.customers = _label("customers")
        # On by default: filing one customer's renders under another's batch name is the
        # mistake that costs a studio most, and the names below show every batch anyway.
        self.split = QCheckBox("One batch per customer")
        self.split.setChecked(True)
        self.split.toggled.connect(lambda _checked: self._update())
        self.names = _label("batch-names")
        self.description = QLineEdit()
        self.description.setMaxLength(MAX_DESCRIPTION_LENGTH)
        self.description.setPlaceholderText("e.g. 3-view render, sofa Oslo")
        self.description.setToolTip("Optional: left empty, one is made from the file names")
        self.description.setAcceptDrops(False)  # dropped files are files, not text
        self.pipeline = QComboBox()
        self.pipeline.addItem(settings.default_pipeline, settings.default_pipeline)
        self.pipeline.currentIndexChanged.connect(self._on_pipeline_current_index_changed)
        self.pipeline_description = _label("pipeline-description")
        self.pipeline_description.setText("Loading the pipelines...")
        layout = QFormLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addRow(self.customers)
        layout.addRow(self.split)
        layout.addRow(self.names)
        layout.addRow("&Description:", self.description)
        layout.addRow("&Pipeline:", self.pipeline)
        layout.addRow("", self.pipeline_description)
        self._load_pipelines()
        self._update()

    # -- what the panel asks -------------------------------------------------------------------

    def set_files(self, files: tuple[SelectedFile, ...]) -> None:
        """Show what these accepted files will become."""
        self._files = files
        self._update()

    def set_idle(self, idle: bool) -> None:
        """Let the choices be changed, or freeze them while an upload runs."""
        for widget in (self.split, self.description, self.pipeline):
            widget.setEnabled(idle)

    def refresh(self) -> None:
        """Read the day counters again (and the pipelines, if they could not be listed)."""
        if self._pipelines is None:
            self._load_pipelines()
        self._preview(self._previewed)

    def request(self, source_paths: Sequence[Path]) -> SubmissionRequest:
        """Return the submission the form describes, for the files last set."""
        return SubmissionRequest(
            files=self._files,
            source_paths=tuple(source_paths),
            description=self.description.text(),
            pipeline=str(self.pipeline.currentData() or self._settings.default_pipeline),
            split_by_prefix=self.split.isChecked(),
            prefix_rule=self._rule,
        )

    @property
    def batch_names(self) -> list[str]:
        """The names the files' batches will get, as last previewed (empty until known)."""
        names = self._names
        return [names[b.customer_prefix] for b in self._plan() if b.customer_prefix in names]

    # -- what will be created ------------------------------------------------------------------

    def _plan(self) -> tuple[PlannedBatch, ...]:
        if not self._files:
            return ()
        split = self.split.isChecked()
        return plan_batches(self._files, self._rule, split_by_prefix=split).batches

    def _update(self) -> None:
        prefixes = prefixes_in_order((f.file_name for f in self._files), self._rule)
        mixed = len(prefixes) > 1
        if mixed:
            text = f"These files belong to {len(prefixes)} customers ({', '.join(prefixes)})."
        else:
            text = f"Customer: {prefixes[0]}" if prefixes else ""
        self.customers.setText(text)
        self.split.setVisible(mixed)
        planned = self._plan()
        if (wanted := tuple(b.customer_prefix for b in planned)) != self._previewed:
            self._preview(wanted)
        self.names.setText(self._names_text(planned, mixed))

    def _names_text(self, planned: tuple[PlannedBatch, ...], mixed: bool) -> str:
        if not planned:
            return ""
        if self._preview_error:
            return f"The batch name cannot be checked now: {self._preview_error}"
        lines = [
            f"{self._names.get(b.customer_prefix, b.customer_prefix + '_…')} "
            f"({plural(len(b.files), 'file')}, {format_size(sum(f.size for f in b.files))})"
            for b in planned
        ]
        if len(lines) > 1:
            return f"Will create {len(lines)} batches:\n" + "\n".join(lines)
        together = " All files go into one batch, named after the first file's customer."
        return f"Will create {lines[0]}." + (together if mixed else "")

    def _preview(self, prefixes: tuple[str, ...]) -> None:
        self._previewed = prefixes
        if not prefixes:
            return
        if self._preview_running:
            self._preview_again = True  # one more read when this one ends, not one per request
            return
        self._preview_running = True
        database = self._database

        def work(_context: TaskContext) -> dict[str, str]:
            with database.connect() as connection:
                return preview_names(connection, prefixes)

        self._tasks.run(
            "preview batch names",
            work,
            on_result=self._on_preview_result,
            on_error=self._on_preview_error,
            on_finished=self._on_preview_finished,
        )

    def _on_preview_result(self, names: dict[str, str]) -> None:
        self._names.update(names)
        self._preview_error = ""
        self._update()

    def _on_preview_error(self, error: KnownError) -> None:
        self._preview_error = str(error)
        self._update()

    def _on_preview_finished(self) -> None:
        self._preview_running = False
        if self._preview_again:
            self._preview_again = False
            self._preview(self._previewed)

    # -- pipelines -----------------------------------------------------------------------------

    def reload_pipelines(self) -> None:
        """List the pipelines again (one was added, replaced, retired or restored)."""
        self._load_pipelines()

    def _load_pipelines(self) -> None:
        database = self._database

        def work(_context: TaskContext) -> list[PickerEntry]:
            with database.connect() as connection:
                rows = list_pipelines(connection, include_retired=False)
            return [PickerEntry.of(row) for row in rows]

        self._tasks.run(
            "list pipelines",
            work,
            on_result=self._on_pipelines_result,
            on_error=self._on_pipelines_error,
        )

    def _on_pipelines_result(self, pipelines: list[PickerEntry]) -> None:
        chosen = self.pipeline.currentData()
        self._pipelines = {entry.name: entry for entry in pipelines}
        self.pipeline.blockSignals(True)  # one description update at the end, not one per item
        self.pipeline.clear()
        for entry in pipelines:
            mark = "  (invalid)" if entry.problem else ""
            self.pipeline.addItem(f"{entry.name}  v{entry.version}{mark}", entry.name)
        for wanted in (chosen, self._settings.default_pipeline):
            if (index := self.pipeline.findData(wanted)) >= 0:
                self.pipeline.setCurrentIndex(index)
                break
        self.pipeline.blockSignals(False)
        self._on_pipeline_current_index_changed()

    def _on_pipelines_error(self, error: KnownError) -> None:
        self.pipeline_description.setText(f"The pipelines cannot be listed now: {error}")

    def _on_pipeline_current_index_changed(self, *_args: object) -> None:
        if self._pipelines is not None:
            entry = self._pipelines.get(self.pipeline.currentData())
            self.pipeline_description.setText(entry.sentence if entry is not None else "")


def _label(name: str) -> QLabel:
    label = QLabel()
    label.setObjectName(name)
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label
