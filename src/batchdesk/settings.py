"""Where batchdesk keeps its local files, and the settings a user can change.

Settings live in one JSON file per user. `BATCHDESK_HOME` moves every local path (settings, the
embedded database, logs) under one folder, which is what tests and studio admins use.
"""

import dataclasses
import json
import os
import tempfile
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs

from batchdesk.domain.naming import DEFAULT_FALLBACK_PREFIX, DEFAULT_PREFIX_PATTERN, PrefixRule
from batchdesk.errors import KnownError
from batchdesk.storage.conninfo import strip_password
from batchdesk.storage.share_paths import SharePaths

APP_NAME = "batchdesk"

# Jobs one worker runs at once. The same on every machine, so a settings file or a service's
# env file copied between machines means the same everywhere; each running job may hold a
# database connection, and 64 stays below PostgreSQL's default max_connections (100). More
# threads than cores only help jobs that wait (uploads, external tools); the memory budget
# limits the rest.
MAX_WORKER_THREADS = 64


def threads_problem(value: int) -> str | None:
    """Why `value` cannot be a worker's thread count, or None when it can."""
    if 1 <= value <= MAX_WORKER_THREADS:
        return None
    return f"must be a whole number from 1 to {MAX_WORKER_THREADS}, not {value:,}"


@dataclass(frozen=True)
class AppPaths:
    """The local folders batchdesk writes to."""

    config_dir: Path
    data_dir: Path
    log_dir: Path

    @property
    def settings_file(self) -> Path:
        return self.config_dir / "settings.json"

    @property
    def pgdata(self) -> Path:
        """The embedded PostgreSQL server's data directory."""
        return self.data_dir / "postgres"

    @classmethod
    def from_environment(cls, environ: dict[str, str] | None = None) -> "AppPaths":
        """Return the paths for this user, honouring `BATCHDESK_HOME`."""
        env = os.environ if environ is None else environ
        home = env.get("BATCHDESK_HOME")
        if home:
            root = Path(home).expanduser().absolute()
            return cls(root / "config", root / "data", root / "logs")
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            # The embedded server runs as a separate system user and must be able to traverse
            # every parent of its data directory; under /root that would open /root to all.
            data_dir = Path("/var/lib/batchdesk")
        else:
            data_dir = platformdirs.user_data_path(APP_NAME)
        return cls(
            config_dir=platformdirs.user_config_path(APP_NAME),
            data_dir=data_dir,
            log_dir=platformdirs.user_log_path(APP_NAME),
        )


@dataclass(frozen=True)
class Settings:
    """What a user can change. Every field has a default, so a missing file is a valid one."""

    database_url: str | None = None
    prefix_pattern: str = DEFAULT_PREFIX_PATTERN
    fallback_prefix: str = DEFAULT_FALLBACK_PREFIX
    default_pipeline: str = "original"
    worker_threads: int = 2
    max_megapixels: int = 200  # larger inputs fail as possible decompression bombs
    memory_budget_mb: int = 2048  # decoded images a worker may hold at once (estimate)
    # When set, batches that complete are written to DELIVERY_FOLDER/BASE_NAME/ by this machine.
    delivery_folder: str | None = None
    # Whether this workstation runs jobs while the window is open; off for submit-only machines.
    run_jobs: bool = True
    # Whether the window shows a desktop notification when a batch finishes or fails.
    notifications: bool = True
    # The window's colours: "system" (as the desktop), "light" or "dark".
    theme: str = "system"
    # Where the studio's share is mounted on this machine when not at the path the studio
    # setting names: "STUDIO=LOCAL", e.g. "/mnt/renders=/media/share" (see `db file-store`).
    file_store_mapping: str | None = None

    @property
    def prefix_rule(self) -> PrefixRule:
        return PrefixRule(pattern=self.prefix_pattern, fallback=self.fallback_prefix)

    @property
    def share_paths(self) -> SharePaths:
        return SharePaths.parse(self.file_store_mapping)

    @classmethod
    def load(cls, path: Path) -> "Settings":
        """Read settings from `path`; a missing file gives the defaults."""
        try:
            raw = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return cls()
        except OSError as exc:
            raise KnownError(f"Cannot read the settings file {path}: {exc.strerror}.") from exc
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise KnownError(
                f"The settings file {path} is not valid JSON (line {exc.lineno}): "
                "fix it or delete it to start from the defaults."
            ) from exc
        if not isinstance(data, dict):
            raise KnownError(f"The settings file {path} must hold a JSON object.")
        return cls.from_dict(data, source=path)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: Path | None = None) -> "Settings":
        """Return settings from a decoded JSON object, refusing values of the wrong type."""
        known = _field_types(cls)
        values: dict[str, Any] = {}
        for key, value in data.items():
            if key not in known:
                continue  # a newer batchdesk's setting: keep working, it is preserved on save
            expected, optional = known[key]
            if not _has_type(value, expected, optional):
                where = f" in {source}" if source else ""
                kind = _KIND_NAMES[expected] + (" or null" if optional else "")
                raise KnownError(f"The setting {key!r}{where} must be {kind}, not {value!r}.")
            values[key] = value
        settings = cls(**values)
        problem = threads_problem(settings.worker_threads)
        if problem:
            where = f" in {source}" if source else ""
            raise KnownError(f"The setting 'worker_threads'{where} {problem}.")
        settings.prefix_rule  # noqa: B018 - validates the pattern now, with a clear message
        settings.share_paths  # noqa: B018 - likewise the file store mapping
        return settings

    def save(self, path: Path) -> None:
        """Write the settings atomically, keeping keys this version does not know."""
        existing: dict[str, Any] = {}
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(loaded, dict):
                existing = loaded
        except (OSError, json.JSONDecodeError):
            pass
        data = existing | dataclasses.asdict(self)
        if self.database_url:
            # A password belongs in the keyring or ~/.pgpass, never in this file.
            data["database_url"] = strip_password(self.database_url)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".settings-", suffix=".json", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(data, out, indent=2, sort_keys=True)
                out.write("\n")
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


_KIND_NAMES: dict[type, str] = {bool: "true or false", int: "a whole number", str: "text"}


def _field_types(cls: type[Settings]) -> dict[str, tuple[type, bool]]:
    """Return each field's value type and whether it may be null, read from the annotations."""
    result: dict[str, tuple[type, bool]] = {}
    for name, hint in typing.get_type_hints(cls).items():
        members = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
        concrete = [member for member in members if member is not type(None)]
        assert len(concrete) == 1, f"setting {name} must have one type besides None"
        assert concrete[0] in _KIND_NAMES, f"setting {name}: add its type to _KIND_NAMES"
        result[name] = (concrete[0], len(concrete) < len(members))
    return result


def _has_type(value: object, expected: type, optional: bool) -> bool:
    if value is None:
        return optional
    # JSON true/false arrive as bool, which Python also counts as int: keep the two apart, so
    # `"worker_threads": true` and `"run_jobs": 1` are both refused.
    if isinstance(value, bool) or expected is bool:
        return isinstance(value, bool) and expected is bool
    return isinstance(value, expected)
