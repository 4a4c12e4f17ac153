"""Editing one pipeline: its name, description and steps, checked as the command line checks them.

The steps are a list (add from a menu of operations, remove, duplicate, move up and down, or
reorder by dragging); the selected step's fields are a `StepForm`. After every change the whole
pipeline is checked with `document_from_json`, the same check as `batchdesk pipelines add`: a
problem is shown in the sentence the command line prints and marked at the step and the field it
names.
"""

import copy
import re
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction, QBrush, QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QPushButton,
    QSplitter,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from batchdesk.errors import InvalidRequest
from batchdesk.jobs.pipeline_document import PipelineDocument, document_from_json
from batchdesk.jobs.pipeline_spec import OPS
from batchdesk.jobs.step_catalog import STARTER_STEPS, field_spec

from batchdesk.gui.step_form import StepForm

# "Pipeline NAME, step 3 (fit): width must be ..." -> step 3, field "width".
_WHERE = re.compile(r"step (\d+) \((\w+)\)(?::| comes) ?'?(\w+)?")
_STEP_ROLE = Qt.ItemDataRole.UserRole


def _summary(step: dict[str, Any]) -> str:
    fields = ", ".join(f"{k} {v}" for k, v in step.items() if k != "op" and k != "args")
    return f"{step.get('op')}  {fields}".strip()


def problem_place(sentence: str) -> tuple[int | None, str | None]:
    """Return the step number (1-based) and field name a check's sentence names, if any."""
    match = _WHERE.search(sentence)
    if match is None:
        return None, None
    number, op, word = int(match.group(1)), match.group(2), match.group(3)
    field = word if word and field_spec(op, word) is not None else None
    return number, field


class PipelineEditor(QWidget):
    """Name, description and steps of one pipeline; `changed` after every edit."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._problem: str | None = None
        self._document: PipelineDocument | None = None
        self.name = QLineEdit()
        self.name.setPlaceholderText("studio-web (lower-case letters, digits, _ and -)")
        self.description = QLineEdit()
        self.description.setPlaceholderText("What it delivers, shown in the pipeline picker")
        self.steps = QListWidget()
        self.steps.setObjectName("pipeline-steps")
        self.steps.setDragDropMode(QAbstractItemView.DragDropMode.InternalMove)
        self.steps.setDefaultDropAction(Qt.DropAction.MoveAction)
        self.steps.model().rowsMoved.connect(self._on_rows_moved)
        self.steps.currentRowChanged.connect(self._on_steps_current_row_changed)
        self.form = StepForm()
        self.form.step_changed.connect(self._on_form_step_changed)
        self.problem = QLabel()
        self.problem.setObjectName("pipeline-problem")
        self.problem.setWordWrap(True)
        self.problem.setStyleSheet("color: #d32f2f;")
        self.problem.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.add_button = QToolButton()
        self.add_button.setText("&Add Step")
        self.add_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(self.add_button)
        self.add_actions: dict[str, QAction] = {}
        for op in OPS:
            action = menu.addAction(op)
            action.triggered.connect(lambda _checked=False, op=op: self.add_step(op))
            self.add_actions[op] = action
        self.add_button.setMenu(menu)
        self.duplicate_button = QPushButton("D&uplicate")
        self.duplicate_button.clicked.connect(self.duplicate_step)
        self.remove_button = QPushButton("Remo&ve")
        self.remove_button.clicked.connect(self.remove_step)
        self.up_button = QPushButton("Up")
        self.up_button.clicked.connect(lambda: self.move_step(-1))
        self.down_button = QPushButton("Down")
        self.down_button.clicked.connect(lambda: self.move_step(1))

        names = QFormLayout()
        names.addRow("&Name:", self.name)
        names.addRow("&Description:", self.description)
        buttons = QHBoxLayout()
        for button in (
            self.add_button,
            self.duplicate_button,
            self.remove_button,
            self.up_button,
            self.down_button,
        ):
            buttons.addWidget(button)
        buttons.addStretch(1)
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addWidget(QLabel("Steps (drag to reorder):"))
        left_layout.addWidget(self.steps, 1)
        left_layout.addLayout(buttons)
        splitter = QSplitter()
        splitter.addWidget(left)
        splitter.addWidget(self.form)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(names)
        layout.addWidget(splitter, 1)
        layout.addWidget(self.problem)
        self.name.textChanged.connect(lambda _text: self._check())
        self.description.textChanged.connect(lambda _text: self._check())
        self._update_buttons()

    # -- the pipeline -----------------------------------------------------------------------

    def load(self, name: str, description: str, steps: list[dict[str, Any]]) -> None:
        """Show a pipeline to edit (a copy: nothing stored changes until it is saved)."""
        for widget in (self.name, self.description):
            widget.blockSignals(True)
        self.name.setText(name)
        self.description.setText(description)
        for widget in (self.name, self.description):
            widget.blockSignals(False)
        self.steps.clear()
        for step in steps:
            self.steps.addItem(self._item(copy.deepcopy(step)))
        self.steps.setCurrentRow(0 if steps else -1)
        self._on_steps_current_row_changed(self.steps.currentRow())
        self._check()

    def json_steps(self) -> list[dict[str, Any]]:
        return [
            copy.deepcopy(self.steps.item(row).data(_STEP_ROLE))
            for row in range(self.steps.count())
        ]

    @property
    def document(self) -> PipelineDocument | None:
        """The checked pipeline, or None while it has a problem."""
        return self._document

    @property
    def problem_sentence(self) -> str | None:
        return self._problem

    # -- step operations ----------------------------------------------------------------------

    def add_step(self, op: str) -> None:
        """Add a starter step of `op` after the selected one (at the end if none)."""
        row = self.steps.currentRow() + 1 if self.steps.currentRow() >= 0 else self.steps.count()
        self.steps.insertItem(row, self._item(copy.deepcopy(STARTER_STEPS[op])))
        self.steps.setCurrentRow(row)
        self._check()

    def duplicate_step(self) -> None:
        row = self.steps.currentRow()
        if row < 0:
            return
        step = copy.deepcopy(self.steps.item(row).data(_STEP_ROLE))
        if step.get("op") in ("output", "thumbnail"):
            # Two outputs may not share a file name: the copy gets a suffix of its own.
            default = "_thumb" if step["op"] == "thumbnail" else ""
            step["suffix"] = f"{step.get('suffix', default)}_copy"
        self.steps.insertItem(row + 1, self._item(step))
        self.steps.setCurrentRow(row + 1)
        self._check()

    def remove_step(self) -> None:
        row = self.steps.currentRow()
        if row < 0:
            return
        self.steps.takeItem(row)
        self._on_steps_current_row_changed(self.steps.currentRow())
        self._check()

    def move_step(self, by: int) -> None:
        row = self.steps.currentRow()
        target = row + by
        if row < 0 or not 0 <= target < self.steps.count():
            return
        item = self.steps.takeItem(row)
        self.steps.insertItem(target, item)
        self.steps.setCurrentRow(target)
        self._check()

    # -- reacting -----------------------------------------------------------------------------

    def _item(self, step: dict[str, Any]) -> QListWidgetItem:
        item = QListWidgetItem(_summary(step))
        item.setData(_STEP_ROLE, step)
        item.setFlags(item.flags() | Qt.ItemFlag.ItemIsDragEnabled)
        return item

    def _on_rows_moved(self, *_args: object) -> None:
        self._on_steps_current_row_changed(self.steps.currentRow())
        self._check()

    def _on_steps_current_row_changed(self, row: int) -> None:
        item = self.steps.item(row) if row >= 0 else None
        self.form.set_step(item.data(_STEP_ROLE) if item is not None else None)
        self._update_buttons()
        self._mark()

    def _on_form_step_changed(self, step: dict[str, Any]) -> None:
        item = self.steps.currentItem()
        if item is None:
            return
        item.setData(_STEP_ROLE, step)
        item.setText(_summary(step))
        self._check()

    def _update_buttons(self) -> None:
        row = self.steps.currentRow()
        for button in (self.duplicate_button, self.remove_button):
            button.setEnabled(row >= 0)
        self.up_button.setEnabled(row > 0)
        self.down_button.setEnabled(0 <= row < self.steps.count() - 1)

    def _check(self) -> None:
        value = {
            "name": self.name.text(),
            "description": self.description.text(),
            "steps": self.json_steps(),
        }
        try:
            self._document = document_from_json(value)
            self._problem = None
        except InvalidRequest as exc:
            self._document = None
            self._problem = str(exc)
        self.problem.setText(self._problem or "")
        self._mark()
        self._update_buttons()
        self.changed.emit()

    def _mark(self) -> None:
        """Mark the step and the field the problem names; clear the marks otherwise."""
        number, field = problem_place(self._problem or "")
        for row in range(self.steps.count()):
            item = self.steps.item(row)
            bad = number == row + 1
            item.setForeground(QBrush(QColor("#d32f2f")) if bad else QBrush())
            item.setToolTip(self._problem or "" if bad else "")
        if number is not None and number == self.steps.currentRow() + 1 and self._problem:
            self.form.mark_problem(field, self._problem)
        else:
            self.form.clear_problems()
