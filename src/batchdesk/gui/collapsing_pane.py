"""A splitter's side pane that folds away while it has nothing to show, and keeps its width.

The preview pane has nothing to show until a batch or a job is selected; folded, its room goes
to the tree beside it. When something is selected it opens again at the width it last had (the
user's, when they dragged it), and that width is kept in the window's state for the next start.
A pane the user folded by hand while it showed something stays folded until it empties.
"""

from PySide6.QtCore import QObject, QSettings
from PySide6.QtWidgets import QSplitter


class CollapsingPane(QObject):
    """Opens and folds the pane at `index` of `splitter`, taking its room from the one before."""

    def __init__(
        self, splitter: QSplitter, index: int, width: int, parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self._splitter = splitter
        self._index = index
        self.width = width  # the width it opens to
        self._wanted: bool | None = None  # as last asked; None before the first time
        splitter.splitterMoved.connect(self._on_splitter_moved)

    @property
    def is_open(self) -> bool:
        return self._splitter.sizes()[self._index] > 0

    def set_open(self, wanted: bool) -> None:
        """Open the pane (it has something to show) or fold it (it has nothing)."""
        if wanted == self._wanted:
            return  # e.g. one job after another: a pane folded by hand stays folded
        self._wanted = wanted
        sizes = self._splitter.sizes()
        size, neighbour = sizes[self._index], self._index - 1
        if wanted and size == 0:
            opened = min(self.width, max(sizes[neighbour] // 2, 1))
            sizes[neighbour] -= opened
            sizes[self._index] = opened
        elif not wanted and size > 0:
            self.width = size
            sizes[neighbour] += size
            sizes[self._index] = 0
        else:
            return
        self._splitter.setSizes(sizes)

    def save(self, state: QSettings, key: str) -> None:
        if self.is_open:
            self.width = self._splitter.sizes()[self._index]
        state.setValue(key, self.width)

    def restore(self, state: QSettings, key: str) -> None:
        width = state.value(key)
        try:
            if width is not None and int(str(width)) > 0:
                self.width = int(str(width))
        except ValueError:
            pass  # a hand-edited state file: keep the default

    def _on_splitter_moved(self, _position: int, _handle: int) -> None:
        size = self._splitter.sizes()[self._index]
        if size > 0:
            self.width = size  # the user's choice, for the next time it opens
