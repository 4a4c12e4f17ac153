"""A form for one pipeline step, built from the step catalog: one widget per field.

Each field gets the widget its kind calls for: a spin box with the field's range (a field that
may be left out shows "(not set)" below its minimum), a list of choices, a check box, a colour
button that opens a colour picker, a file picker for a watermark image or a font, a line for
text. The form edits a copy of the step's JSON: a field is written when the user sets it and
removed when set back to "(not set)"; fields the user never touched stay as they were, so a
step loaded and saved unchanged is the same JSON.
"""

import shlex
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QTimer, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QCheckBox,
    QColorDialog,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QWidget,
)

from batchdesk.jobs.step_catalog import STEP_FIELDS, FieldSpec

_NOT_SET = "(not set)"
_PROBLEM_STYLE = "border: 2px solid #d32f2f;"


def _row() -> tuple[QWidget, QHBoxLayout]:
    """A widget holding a row of widgets, for a field that needs more than one."""
    holder = QWidget()
    row = QHBoxLayout(holder)
    row.setContentsMargins(0, 0, 0, 0)
    return holder, row


def _default_format(op: str) -> str:
    spec = next((f for f in STEP_FIELDS.get(op, ()) if f.name == "format"), None)
    return str(spec.default) if spec is not None else ""


class _ColourButton(QPushButton):
    """Shows a colour and opens the colour picker; optionally offers 'transparent'."""

    colour_changed = Signal(str)

    def __init__(self, allow_transparent: bool) -> None:
        super().__init__()
        self._value = "#ffffff"
        self._allow_transparent = allow_transparent
        self.clicked.connect(self._on_clicked)

    def value(self) -> str:
        return self._value

    def set_value(self, value: str) -> None:
        self._value = value
        self.setText(value)
        swatch = "transparent" if value == "transparent" else value
        self.setStyleSheet(f"QPushButton {{ background: {swatch}; }}")

    def _on_clicked(self) -> None:
        start = QColor(self._value) if self._value.startswith("#") else QColor("white")
        colour = QColorDialog.getColor(start, self, "Choose a colour")
        if colour.isValid():
            self.set_value(colour.name())
            self.colour_changed.emit(self._value)


class StepForm(QWidget):
    """Edit one step's fields; `step_changed` carries the step's new JSON."""

    step_changed = Signal(object)  # dict[str, Any]

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._layout = QFormLayout(self)
        self._step: dict[str, Any] = {}
        self._widgets: dict[str, QWidget] = {}
        self._loading = False
        self.title = QLabel()
        self.title.setObjectName("step-form-title")
        self._layout.addRow(self.title)

    # -- what the editor asks ---------------------------------------------------------------

    @property
    def step(self) -> dict[str, Any]:
        return dict(self._step)

    def widget(self, name: str) -> QWidget:
        """The widget that edits field `name` (for tests and for marking problems)."""
        return self._widgets[name]

    def set_step(self, step: dict[str, Any] | None) -> None:
        """Show the fields of `step` (None: an empty form)."""
        while self._layout.rowCount() > 1:
            self._layout.removeRow(1)
        self._widgets.clear()
        self._step = dict(step or {})
        op = self._step.get("op")
        if not isinstance(op, str) or op not in STEP_FIELDS:
            self.title.setText("Choose a step to edit its fields." if step is None else "")
            return
        self.title.setText(f"<b>{op}</b>")
        fmt = self._step.get("format", _default_format(op))
        self._loading = True
        try:
            for spec in STEP_FIELDS[op]:
                if spec.formats and fmt not in spec.formats:
                    continue  # e.g. quality for PNG output: not offered
                widget = self._make(spec)
                self._widgets[spec.name] = widget
                self._layout.addRow(f"{spec.title}:", widget)
        finally:
            self._loading = False

    def mark_problem(self, name: str | None, sentence: str) -> None:
        """Mark field `name` with the sentence that says what is wrong with it."""
        self.clear_problems()
        widget = self._widgets.get(name or "")
        if widget is not None:
            widget.setStyleSheet(_PROBLEM_STYLE)
            widget.setToolTip(sentence)
            widget.setProperty("problem", sentence)

    def clear_problems(self) -> None:
        for widget in self._widgets.values():
            if widget.property("problem"):
                widget.setProperty("problem", "")
                widget.setStyleSheet("")
                widget.setToolTip("")

    # -- building the widgets -----------------------------------------------------------------

    def _set(self, name: str, value: Any) -> None:
        if self._loading:
            return
        if value is None:
            self._step.pop(name, None)
        else:
            self._step[name] = value
        if name == "format":
            # Settings of the old format do not apply to the new one: drop them, show the others.
            op = str(self._step.get("op"))
            for spec in STEP_FIELDS.get(op, ()):
                if spec.formats and value not in spec.formats:
                    self._step.pop(spec.name, None)
            step = self._step

            def show_fields_of_the_format() -> None:
                if self._step is step:  # not another step chosen meanwhile
                    self.set_step(step)

            QTimer.singleShot(0, show_fields_of_the_format)
        self.step_changed.emit(dict(self._step))

    def _make(self, spec: FieldSpec) -> QWidget:
        makers: dict[str, Callable[[FieldSpec, Any], QWidget]] = {
            "whole": self._whole,
            "number": self._number,
            "flag": self._flag,
            "choice": self._choice,
            "colour": self._colour,
            "colour_or_transparent": self._colour,
            "suffix": self._text,
            "text": self._text,
            "image_path": self._path,
            "font_path": self._path,
            "strings": self._strings,
        }
        current = self._step.get(spec.name, spec.default)
        widget = makers[spec.kind](spec, current)
        widget.setObjectName(f"field-{spec.name}")
        return widget

    def _whole(self, spec: FieldSpec, current: Any) -> QWidget:
        box = QSpinBox()
        optional = spec.default is None
        low = int(spec.low) - (1 if optional else 0)
        fmt = self._step.get("format", _default_format(str(self._step.get("op"))))
        box.setRange(low, int(spec.high_for(str(fmt))))
        if optional:
            box.setSpecialValueText(_NOT_SET)
        box.setValue(int(current) if isinstance(current, int | float) else low)
        box.valueChanged.connect(
            lambda value: self._set(spec.name, None if optional and value == low else value)
        )
        return box

    def _number(self, spec: FieldSpec, current: Any) -> QWidget:
        box = QDoubleSpinBox()
        box.setDecimals(3)
        box.setSingleStep(0.01 if spec.high <= 1 else 0.5)
        box.setRange(spec.low, spec.high)
        box.setValue(float(current) if isinstance(current, int | float) else spec.low)
        box.valueChanged.connect(lambda value: self._set(spec.name, round(value, 3)))
        return box

    def _flag(self, spec: FieldSpec, current: Any) -> QWidget:
        box = QCheckBox()
        box.setChecked(bool(current))
        box.toggled.connect(lambda checked: self._set(spec.name, checked))
        return box

    def _choice(self, spec: FieldSpec, current: Any) -> QWidget:
        box = QComboBox()
        box.addItems(list(spec.choices))
        if isinstance(current, str) and current in spec.choices:
            box.setCurrentText(current)
        box.currentTextChanged.connect(lambda text: self._set(spec.name, text))
        return box

    def _colour(self, spec: FieldSpec, current: Any) -> QWidget:
        holder, row = _row()
        transparent = spec.kind == "colour_or_transparent"
        button = _ColourButton(transparent)
        button.setObjectName(f"colour-{spec.name}")
        button.set_value(str(current))
        button.colour_changed.connect(lambda value: self._set(spec.name, value))
        row.addWidget(button, 1)
        if transparent:
            clear = QCheckBox("Transparent")
            clear.setChecked(current == "transparent")

            def on_toggled(checked: bool) -> None:
                button.setEnabled(not checked)
                value = "transparent" if checked else "#ffffff"
                button.set_value(value)
                self._set(spec.name, value)

            clear.toggled.connect(on_toggled)
            button.setEnabled(current != "transparent")
            row.addWidget(clear)
        return holder

    def _text(self, spec: FieldSpec, current: Any) -> QWidget:
        line = QLineEdit(str(current) if current is not None else "")
        line.setMaxLength(spec.max_length)
        if spec.default is None:
            line.setPlaceholderText(_NOT_SET)
            line.textChanged.connect(lambda text: self._set(spec.name, text or None))
        else:
            line.textChanged.connect(lambda text: self._set(spec.name, text))
        return line

    def _path(self, spec: FieldSpec, current: Any) -> QWidget:
        holder, row = _row()
        line = QLineEdit(str(current) if current is not None else "")
        line.setObjectName(f"path-{spec.name}")
        line.setPlaceholderText(_NOT_SET)
        line.textChanged.connect(lambda text: self._set(spec.name, text or None))
        browse = QPushButton("Choose...")
        browse.setObjectName(f"browse-{spec.name}")
        if spec.kind == "font_path":
            caption, wanted = "Choose a font", "Fonts (*.ttf *.otf *.ttc);;All files (*)"
        else:
            caption, wanted = "Choose a watermark image", "Images (*.png);;All files (*)"

        def choose() -> None:
            path, _filter = QFileDialog.getOpenFileName(self, caption, line.text(), wanted)
            if path:
                line.setText(path)

        browse.clicked.connect(choose)
        row.addWidget(line, 1)
        row.addWidget(browse)
        return holder

    def _strings(self, spec: FieldSpec, current: Any) -> QWidget:
        items = current if isinstance(current, list) else []
        line = QLineEdit(shlex.join(str(item) for item in items))
        line.setToolTip("The command and its arguments, quoted as in a shell; no shell runs it")

        def on_text(text: str) -> None:
            try:
                self._set(spec.name, shlex.split(text) or None)
            except ValueError:
                self._set(spec.name, [text])  # an open quote: the check says what is wrong

        line.textChanged.connect(on_text)
        return line
