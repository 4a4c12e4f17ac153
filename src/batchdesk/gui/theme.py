"""Light or dark: the desktop's choice, or the one made in Preferences.

`AppTheme.apply("system" | "light" | "dark")` first lets the platform do it: Qt 6.8+ asks the
platform for the scheme (`QStyleHints.setColorScheme`), which Windows, macOS and the GNOME and
KDE themes honour with their own palettes. Where the palette that results is not the one
wanted (a plain X11 or Wayland session, the offscreen platform), it sets batchdesk's own light
or dark palette, made for the Fusion style. With "system" it follows the desktop as it
changes (`colorSchemeChanged`).

Every colour the window paints itself (status badges, progress bars, error text) either comes
from the palette or is chosen to read on both (see `batch_tree_delegates.badge_colours`).
"""

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QColor, QGuiApplication, QPalette
from PySide6.QtWidgets import QStyleFactory

SYSTEM, LIGHT, DARK = "system", "light", "dark"
_OBJECT_NAME = "batchdesk-theme"
# (setting value, what Preferences shows)
THEMES = ((SYSTEM, "System (as the desktop)"), (LIGHT, "Light"), (DARK, "Dark"))

_Role = QPalette.ColorRole
_Group = QPalette.ColorGroup

# Text on these backgrounds has a WCAG contrast of at least 4.5:1 (tests/gui/test_theme.py).
_DARK_COLOURS = {
    _Role.Window: "#2b2d30",
    _Role.WindowText: "#e8e8e8",
    _Role.Base: "#1e1f22",
    _Role.AlternateBase: "#26282b",
    _Role.ToolTipBase: "#3c3f44",
    _Role.ToolTipText: "#f0f0f0",
    _Role.PlaceholderText: "#9a9da3",
    _Role.Text: "#e8e8e8",
    _Role.Button: "#383a3e",
    _Role.ButtonText: "#e8e8e8",
    _Role.BrightText: "#ff8a80",
    _Role.Light: "#505358",
    _Role.Midlight: "#44474c",
    _Role.Mid: "#303235",
    _Role.Dark: "#1a1b1d",
    _Role.Shadow: "#0c0c0d",
    _Role.Highlight: "#2f65c8",
    _Role.HighlightedText: "#ffffff",
    _Role.Link: "#7cb3ff",
    _Role.LinkVisited: "#c5a3ff",
}
# Fusion's own #308cc6 gives white text a contrast of 3.7:1; this gives 5.3:1.
_LIGHT_HIGHLIGHT = "#2a6db5"
_DARK_DISABLED = {
    _Role.WindowText: "#8a8d93",
    _Role.Text: "#8a8d93",
    _Role.ButtonText: "#8a8d93",
    _Role.Highlight: "#4a4d52",
    _Role.HighlightedText: "#c8c8c8",
}


def dark_palette() -> QPalette:
    """batchdesk's dark palette (for the Fusion style)."""
    palette = QPalette()
    for role, colour in _DARK_COLOURS.items():
        palette.setColor(role, QColor(colour))
    for role, colour in _DARK_DISABLED.items():
        palette.setColor(_Group.Disabled, role, QColor(colour))
    return palette


def light_palette() -> QPalette:
    """The Fusion style's light palette, its selection a darker blue for white text on it."""
    fusion = QStyleFactory.create("Fusion")
    palette = fusion.standardPalette()
    fusion.deleteLater()
    palette.setColor(_Group.Active, _Role.Highlight, QColor(_LIGHT_HIGHLIGHT))
    palette.setColor(_Group.Inactive, _Role.Highlight, QColor(_LIGHT_HIGHLIGHT))
    return palette


def is_dark(palette: QPalette) -> bool:
    """Whether `palette` is a dark one (light text on a dark window)."""
    return palette.color(_Role.Window).lightnessF() < 0.5


def theme_name(value: str) -> str:
    """A theme setting's value, or "system" for one this version does not know."""
    return value if value in (SYSTEM, LIGHT, DARK) else SYSTEM


class AppTheme(QObject):
    """Keeps the application's palette light or dark as chosen; `changed(bool)`: dark or not.

    One per application (`AppTheme.of(app)`): the palette is the application's, and two of
    these following the desktop each their own way would undo each other.
    """

    changed = Signal(bool)

    @classmethod
    def of(cls, app: QGuiApplication) -> "AppTheme":
        """The application's theme, made at the first call."""
        found = app.findChild(AppTheme, _OBJECT_NAME)
        if isinstance(found, AppTheme):
            return found
        theme = cls(app, parent=app)
        theme.setObjectName(_OBJECT_NAME)
        return theme

    def __init__(self, app: QGuiApplication, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._app = app
        self._hints = app.styleHints()
        self._theme = SYSTEM
        self._system_scheme = self._hints.colorScheme()
        self._applying = False
        self._dark = is_dark(app.palette())
        self._hints.colorSchemeChanged.connect(self._on_hints_color_scheme_changed)

    @property
    def theme(self) -> str:
        return self._theme

    @property
    def dark(self) -> bool:
        """Whether the window is dark now."""
        return self._dark

    def apply(self, theme: str) -> None:
        """Use `theme` ("system", "light" or "dark") from now on."""
        self._theme = theme_name(theme)
        self._applying = True
        try:
            self._app.setPalette(QPalette())  # the platform's own, to see what it gives
            if self._theme == SYSTEM:
                self._hints.unsetColorScheme()
                scheme = self._hints.colorScheme()
                if scheme != Qt.ColorScheme.Unknown:
                    self._system_scheme = scheme
                wanted = self._system_scheme
            else:
                wanted = Qt.ColorScheme.Dark if self._theme == DARK else Qt.ColorScheme.Light
                self._hints.setColorScheme(wanted)
        finally:
            self._applying = False
        platform_dark = is_dark(self._app.palette())
        if wanted == Qt.ColorScheme.Unknown:
            dark = platform_dark  # the desktop does not say: its palette is its choice
        else:
            dark = wanted == Qt.ColorScheme.Dark
            if dark != platform_dark:  # the platform could not: batchdesk's own palette
                self._app.setPalette(dark_palette() if dark else light_palette())
        self._dark = dark
        self.changed.emit(dark)

    def _on_hints_color_scheme_changed(self, scheme: Qt.ColorScheme) -> None:
        if self._applying or self._theme != SYSTEM:
            return  # our own request echoed, or a fixed choice that the desktop cannot change
        self._system_scheme = scheme
        self.apply(SYSTEM)
