"""Names for exported files that are safe on every file system and unique within their folder.

File names come from artists' disks and from pipelines, so anything can be in them: folders,
`..`, drive letters, backslashes, control characters, names Windows reserves. Each name becomes a
single harmless path component; names that would land on the same file (also on case-insensitive
or normalising file systems) get a readable suffix, `name (2).png`, in the order they are claimed,
so the same batch always exports under the same names.
"""

import re
import unicodedata
from pathlib import PurePosixPath

# Characters Windows refuses in names, plus every control character.
_UNSAFE = re.compile(r'[\x00-\x1f\x7f<>:"|?*]')
_WINDOWS_DEVICES = frozenset(
    ["CON", "PRN", "AUX", "NUL"]
    + [f"COM{i}" for i in range(1, 10)]
    + [f"LPT{i}" for i in range(1, 10)]
)
# Most file systems allow 255 bytes in a name; keep room for a " (9999)" suffix.
MAX_NAME_BYTES = 240
FALLBACK_NAME = "file"


def safe_component(name: str, fallback: str = FALLBACK_NAME) -> str:
    """Return `name` as one path component that cannot leave its folder or upset a file system.

    Folders are dropped (`../../etc/x.png` -> `x.png`, `C:\\renders\\a.png` -> `a.png`), unsafe
    characters become `_`, and a name left empty becomes `fallback`.
    """
    text = unicodedata.normalize("NFC", name)
    text = text.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    text = _UNSAFE.sub("_", text).strip().rstrip(". ")
    if text in ("", ".", ".."):
        return fallback
    if text.split(".", 1)[0].upper() in _WINDOWS_DEVICES:
        text = f"_{text}"
    if text.startswith("."):  # a hidden file after unzipping would look lost
        text = f"_{text}"
    return _shorten(text)


def _split_extension(name: str) -> tuple[str, str]:
    suffix = PurePosixPath(name).suffix
    if not suffix or suffix == name or len(suffix) > 16:
        return name, ""
    return name[: -len(suffix)], suffix


def _shorten(name: str, limit: int = MAX_NAME_BYTES) -> str:
    if len(name.encode("utf-8")) <= limit:
        return name
    stem, extension = _split_extension(name)
    budget = limit - len(extension.encode("utf-8"))
    cut = stem.encode("utf-8")[:budget].decode("utf-8", errors="ignore").rstrip(". ")
    return f"{cut or FALLBACK_NAME}{extension}"


def collision_key(name: str) -> str:
    """Two names with the same key would be one file on Windows or macOS."""
    return unicodedata.normalize("NFC", name).casefold()


class UniqueNames:
    """Hands out names unique within one folder, in the order they are asked for."""

    def __init__(self, reserved: tuple[str, ...] = ()) -> None:
        self._taken = {collision_key(name) for name in reserved}

    def claim(self, name: str) -> str:
        """Return a safe, unused form of `name` and mark it used: `a.png`, `a (2).png`, ..."""
        candidate = safe_component(name)
        if collision_key(candidate) not in self._taken:
            self._taken.add(collision_key(candidate))
            return candidate
        stem, extension = _split_extension(candidate)
        number = 2
        while True:
            candidate = f"{stem} ({number}){extension}"
            if collision_key(candidate) not in self._taken:
                self._taken.add(collision_key(candidate))
                return candidate
            number += 1
