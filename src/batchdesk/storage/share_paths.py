"""How this machine reaches the studio's share: a studio path, and where it is mounted here.

The file store's folder is one studio-wide setting, written as the studio knows it (say
`/mnt/renders/batchdesk`). A machine that mounts the share somewhere else (`/media/share` on a
laptop, `R:\\` on Windows) says so once in its local settings, as `STUDIO=LOCAL`
(`/mnt/renders=/media/share`); every path under the studio prefix is then read and written under
the local one instead.
"""

from dataclasses import dataclass
from pathlib import Path

from batchdesk.errors import KnownError

_SEPARATORS = "/\\"


@dataclass(frozen=True)
class SharePaths:
    """One mapping from a studio path prefix to this machine's, or none (paths are the same)."""

    studio: str = ""
    local: str = ""

    @classmethod
    def parse(cls, text: str | None) -> "SharePaths":
        """Read `STUDIO=LOCAL` (the local setting `file_store_mapping`); None or "" maps nothing."""
        if not text:
            return cls()
        studio, equals, local = text.partition("=")
        studio, local = studio.strip(), local.strip()
        if not equals or not studio or not local:
            raise KnownError(
                f"The setting 'file_store_mapping' must be STUDIO_PATH=LOCAL_PATH (for example "
                f"/mnt/renders=/media/share), not {text!r}."
            )
        return cls(studio.rstrip(_SEPARATORS) or studio, local)

    def to_local(self, studio_path: str) -> Path:
        """Return where `studio_path` is on this machine."""
        if self.studio and _under(studio_path, self.studio):
            rest = studio_path[len(self.studio) :].strip(_SEPARATORS)
            parts = [part for part in rest.replace("\\", "/").split("/") if part]
            return Path(self.local, *parts)
        return Path(studio_path)

    def describe(self) -> str | None:
        """The mapping as a person reads it, or None when there is none."""
        return f"{self.studio} is {self.local} on this machine" if self.studio else None


def _under(path: str, prefix: str) -> bool:
    if _is_drive(prefix) and _is_drive(path):
        # Windows drive letters ignore case: R:\renders and r:\renders are one place.
        path, prefix = path[0].upper() + path[1:], prefix[0].upper() + prefix[1:]
    if path == prefix:
        return True
    return path.startswith(prefix) and (
        prefix[-1] in _SEPARATORS or path[len(prefix)] in _SEPARATORS
    )


def _is_drive(path: str) -> bool:
    return len(path) >= 2 and path[1] == ":" and path[0].isalpha()
