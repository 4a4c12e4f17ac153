"""The files waiting to be submitted: what each is, and whether it will be submitted at all.

`scan_paths` turns dropped files and folders into `PendingFile`s on a pool thread: the folder
walk and the checks of `select_files` (which also walks each PNG's chunks, so a file cut short
is refused with its reason), then the pixel limit the settings give, so a file that would fail
as a job is flagged before it is uploaded rather than after. `PendingFilesModel` shows them in
the window, each file once however often it is dropped, and loads itself: `add_paths` scans in
the background and asks for thumbnails, which arrive later.
"""

import dataclasses
import os
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import (
    QAbstractTableModel,
    QMimeData,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
    QUrl,
    Signal,
)
from PySide6.QtGui import QIcon, QImage, QPixmap
from PySide6.QtWidgets import QApplication, QStyle

from batchdesk.domain.file_selection import RejectedPath, SelectedFile, select_files
from batchdesk.domain.naming import PrefixRule
from batchdesk.domain.units import format_size

from batchdesk.gui.background import BackgroundTasks
from batchdesk.gui.thumbnail_loader import ThumbnailLoader

PENDING_FILE_ROLE = Qt.ItemDataRole.UserRole

FileKey = tuple[int, int] | str


@dataclass(frozen=True)
class PendingFile:
    """One row of the pending list: a file that will be submitted, or a path that will not."""

    path: Path
    display: str  # the full path as text, for tooltips
    file_name: str
    key: FileKey  # the same file reached by two paths has one key
    size: int | None = None
    width: int | None = None
    height: int | None = None
    prefix: str = ""
    problem: str | None = None  # why it will not be submitted; None when it will
    selected: SelectedFile | None = None  # what the submission takes, when accepted

    @property
    def accepted(self) -> bool:
        return self.problem is None and self.selected is not None


def scan_paths(
    paths: Sequence[Path], rule: PrefixRule, max_megapixels: int
) -> tuple[PendingFile, ...]:
    """Return the pending rows for the given files and folders; run it off the GUI thread.

    Each given path is selected on its own so that a file dropped again later, or inside a
    folder dropped later, is recognised by the model (by key) rather than reported twice.
    """
    max_pixels = max_megapixels * 1_000_000
    found: list[PendingFile] = []
    for given in paths:
        selection = select_files([given])
        found.extend(_inspect(selected, rule, max_pixels) for selected in selection.files)
        found.extend(_skipped(rejected) for rejected in selection.rejected)
    return tuple(found)


def _inspect(selected: SelectedFile, rule: PrefixRule, max_pixels: int) -> PendingFile:
    """Make the row of an accepted file; flag it when it has more pixels than allowed."""
    path = selected.path
    display = str(path)
    try:
        status = os.stat(path)
    except OSError as exc:
        reason = (exc.strerror or "unknown error").lower()
        return PendingFile(
            path, display, selected.file_name, display, problem=f"cannot be read ({reason})"
        )
    # The same identity select_files uses: a file reached through a link is still one file.
    key: FileKey = (status.st_dev, status.st_ino) if status.st_ino else os.path.realpath(path)
    width, height = selected.width, selected.height
    row = PendingFile(
        path, display, selected.file_name, key, size=selected.size, width=width, height=height
    )
    if width * height > max_pixels:
        return dataclasses.replace(
            row,
            problem=(
                f"too many pixels: {width:,} × {height:,} ({_megapixels(width * height)} "
                f"megapixels), more than the {_megapixels(max_pixels)}-megapixel limit"
            ),
        )
    return dataclasses.replace(row, prefix=rule.extract(selected.file_name), selected=selected)


def _skipped(rejected: RejectedPath) -> PendingFile:
    name = rejected.path.name or rejected.display
    return PendingFile(
        rejected.path, rejected.display, name, rejected.display, problem=rejected.reason
    )


def _megapixels(pixels: int) -> str:
    value = pixels / 1_000_000
    return f"{value:,.0f}" if value >= 10 else f"{value:.2g}"


def paths_from_mime(mime: QMimeData) -> list[Path]:
    """Return the local paths a drop or a paste carries: file URLs, or text with one per line.

    Text lines count only when they are absolute paths (after `~`) or `file:` URLs, so pasting
    a sentence adds nothing rather than a row of "does not exist" for every word.
    """
    paths: list[Path] = []
    if mime.hasUrls():
        paths = [Path(url.toLocalFile()) for url in mime.urls() if url.isLocalFile()]
    if not paths and mime.hasText():
        for line in mime.text().splitlines():
            path = _path_from_text(line)
            if path is not None:
                paths.append(path)
    return list(dict.fromkeys(paths))


def _path_from_text(line: str) -> Path | None:
    text = line.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1]  # "Copy as path" on Windows quotes every line
    if text.startswith("file:"):
        url = QUrl(text)
        return Path(url.toLocalFile()) if url.isLocalFile() else None
    if not text:
        return None
    path = Path(text).expanduser()
    return path if path.is_absolute() else None


class PendingFilesModel(QAbstractTableModel):
    """The pending files as table rows: thumbnail and name, size, dimensions, customer, status."""

    NAME, SIZE, DIMENSIONS, PREFIX, STATUS = range(5)
    HEADERS = ("File", "Size", "Dimensions", "Customer", "Status")

    changed = Signal()  # rows added or removed, or a scan started or ended

    def __init__(
        self,
        tasks: BackgroundTasks,
        rule: PrefixRule,
        max_megapixels: int,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._tasks = tasks
        self._rule = rule
        self._max_megapixels = max_megapixels
        self._files: list[PendingFile] = []
        self._keys: set[FileKey] = set()
        self._rows: dict[Path, int] = {}  # accepted path -> row, to place arriving thumbnails
        self._thumbnails: dict[Path, QPixmap] = {}
        self._warning_icon: QIcon | None = None
        self._source_paths: dict[Path, None] = {}  # what was given, in order
        self._scans = 0
        self._generation = 0  # bumped by clear(), so scans started before it are ignored
        self.thumbnail_loader = ThumbnailLoader(tasks, parent=self)
        self.thumbnail_loader.thumbnail_ready.connect(self.set_thumbnail)

    # -- what the panel asks -------------------------------------------------------------------

    @property
    def scanning(self) -> bool:
        """Whether dropped files are still being read."""
        return self._scans > 0

    @property
    def source_paths(self) -> tuple[Path, ...]:
        """The files and folders given, in order, for the generated description."""
        return tuple(self._source_paths)

    def files(self) -> list[PendingFile]:
        """Return every row, accepted or not, in order."""
        return list(self._files)

    def add_paths(self, paths: Iterable[Path]) -> None:
        """Read these files and folders in the background and add what they hold."""
        paths = list(dict.fromkeys(Path(path) for path in paths))
        if not paths:
            return
        self._source_paths.update(dict.fromkeys(paths))
        rule, limit, generation = self._rule, self._max_megapixels, self._generation
        self._scans += 1
        self._tasks.run(
            "read the dropped files",
            lambda _context: scan_paths(paths, rule, limit),
            on_result=lambda found: self._on_scan_result(found, generation),
            on_finished=self._on_scan_finished,
        )
        self.changed.emit()

    def _on_scan_result(self, found: tuple[PendingFile, ...], generation: int) -> None:
        if generation == self._generation:  # else cleared while the folders were being read
            new = self.add_files(found)
            self.thumbnail_loader.request(pending.path for pending in new if pending.accepted)

    def _on_scan_finished(self) -> None:
        self._scans -= 1
        self.changed.emit()

    def forget_sources(self, paths: Iterable[Path]) -> None:
        """Stop describing the batch by these given paths (they were submitted)."""
        for path in paths:
            self._source_paths.pop(path, None)

    def accepted_files(self) -> tuple[SelectedFile, ...]:
        """Return the files a submission would take, in order."""
        return tuple(f.selected for f in self._files if f.selected is not None and f.accepted)

    def add_files(self, files: Iterable[PendingFile]) -> list[PendingFile]:
        """Append the files not listed yet; return those that were new."""
        new: list[PendingFile] = []
        for pending in files:
            if pending.key not in self._keys:
                self._keys.add(pending.key)
                new.append(pending)
        if new:
            first = len(self._files)
            self.beginInsertRows(QModelIndex(), first, first + len(new) - 1)
            self._files.extend(new)
            self._reindex()
            self.endInsertRows()
            self.changed.emit()
        return new

    def remove_files(self, keys: Collection[FileKey]) -> None:
        """Remove the rows with these keys (what a submission took), keeping the others."""
        rows = [row for row, pending in enumerate(self._files) if pending.key in keys]
        # From the bottom up, one contiguous range at a time, so earlier row numbers hold.
        while rows:
            last = rows.pop()
            first = last
            while rows and rows[-1] == first - 1:
                first = rows.pop()
            self.beginRemoveRows(QModelIndex(), first, last)
            for pending in self._files[first : last + 1]:
                self._keys.discard(pending.key)
                self._thumbnails.pop(pending.path, None)
            del self._files[first : last + 1]
            self._reindex()
            self.endRemoveRows()
        self.changed.emit()

    def clear(self) -> None:
        """Remove every row, forget what was given and drop the scans and thumbnails under way."""
        self._generation += 1
        self.thumbnail_loader.cancel()
        self.beginResetModel()
        self._files.clear()
        self._keys.clear()
        self._rows.clear()
        self._thumbnails.clear()
        self._source_paths.clear()
        self.endResetModel()
        self.changed.emit()

    def set_thumbnail(self, path: Path, image: QImage) -> None:
        """Show `image` (made in the background) as the thumbnail of the file at `path`."""
        row = self._rows.get(path)
        if row is None or image.isNull():
            return  # removed meanwhile, or unreadable: the row keeps no picture
        self._thumbnails[path] = QPixmap.fromImage(image)
        index = self.index(row, self.NAME)
        self.dataChanged.emit(index, index, [Qt.ItemDataRole.DecorationRole])

    def _reindex(self) -> None:
        self._rows = {f.path: row for row, f in enumerate(self._files) if f.accepted}

    # -- QAbstractTableModel -------------------------------------------------------------------

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self._files)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self.HEADERS)

    def headerData(  # noqa: N802 - Qt override
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> object:
        horizontal = orientation == Qt.Orientation.Horizontal
        if horizontal and role == Qt.ItemDataRole.DisplayRole and 0 <= section < len(self.HEADERS):
            return self.HEADERS[section]
        return None

    def data(
        self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole
    ) -> object:
        if not index.isValid() or not 0 <= index.row() < len(self._files):
            return None
        pending, column = self._files[index.row()], index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return self._text(pending, column)
        if role == Qt.ItemDataRole.DecorationRole:
            if column == self.NAME:
                return self._thumbnails.get(pending.path)
            if column == self.STATUS and not pending.accepted:
                return self._warning()
        elif role == Qt.ItemDataRole.ToolTipRole:
            if column == self.NAME:
                return f"{pending.display}\n{self._verdict(pending)}"
            if column == self.STATUS:
                return self._verdict(pending)
        elif role == Qt.ItemDataRole.AccessibleDescriptionRole and column == self.NAME:
            return self._text(pending, self.STATUS)
        elif role == Qt.ItemDataRole.TextAlignmentRole and column in (self.SIZE, self.DIMENSIONS):
            return Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
        elif role == PENDING_FILE_ROLE:
            return pending
        return None

    @staticmethod
    def _verdict(pending: PendingFile) -> str:
        if pending.accepted:
            return "Will be submitted."
        return f"Will not be submitted: {pending.problem}."

    def _text(self, pending: PendingFile, column: int) -> str:
        if column == self.NAME:
            return pending.file_name
        if column == self.SIZE:
            return format_size(pending.size) if pending.size is not None else ""
        if column == self.DIMENSIONS:
            if pending.width is None or pending.height is None:
                return ""
            return f"{pending.width} × {pending.height}"
        if column == self.PREFIX:
            return pending.prefix
        if column == self.STATUS:
            return "Ready" if pending.accepted else f"Skipped: {pending.problem}"
        return ""

    def _warning(self) -> QIcon:
        if self._warning_icon is None:
            style = QApplication.style()
            self._warning_icon = style.standardIcon(QStyle.StandardPixmap.SP_MessageBoxWarning)
        return self._warning_icon
