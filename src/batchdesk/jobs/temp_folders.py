"""Workers' temporary folders: named after their process, removed when that process is gone.

A runner works in `batchdesk-worker-HOST-PID-START-xxxxxxxx` under the system's temporary
folder (or its `work_dir`); START is when the process started, as the kernel counts it. A worker
stopped normally removes its folder; one that was SIGKILLed cannot, and the next worker to
start on this host removes it: a folder of this host whose process no longer exists, or whose
process id now belongs to a process that started at another time (the id was reused), or that
is older than the last boot. Folders of other hosts (a shared work folder), of other users,
symbolic links and folders named the older way (no process recorded) are left alone.

Linux tells a process's start time in /proc; elsewhere only whether the id exists is known,
so a reused id keeps a dead worker's folder until that process ends too.
"""

import logging
import os
import re
import shutil
import socket
import stat
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

PREFIX = "batchdesk-worker-"
_PROC = Path("/proc")


def make_worker_folder(parent: Path | None = None) -> Path:
    """Remove dead workers' folders under `parent` (None: the temporary folder); make ours."""
    where = Path(parent) if parent is not None else Path(tempfile.gettempdir())
    swept = sweep_stale(where)
    if swept:
        log.info("removed %d temporary folders of workers that are gone", swept)
    pid = os.getpid()
    name = f"{PREFIX}{_host()}-{pid}-{_start_time(pid) or 0}-"
    return Path(tempfile.mkdtemp(prefix=name, dir=where))


def sweep_stale(where: Path) -> int:
    """Remove the folders of this host's workers that are gone; return how many went."""
    host = _host()
    booted = _boot_time()
    removed = 0
    try:
        entries = list(os.scandir(where))
    except OSError:
        return 0
    for entry in entries:
        owner = _parse(entry.name)
        if owner is None or owner[0] != host:
            continue
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
            continue
        _, pid, started = owner
        before_boot = booted is not None and info.st_mtime < booted
        if before_boot or not _running(pid, started):
            shutil.rmtree(entry.path, ignore_errors=True)
            removed += 1
    return removed


def _host() -> str:
    # Letters, digits and dots only: the name's parts are separated by hyphens.
    return re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname())[:40] or "host"


def _parse(name: str) -> tuple[str, int, int] | None:
    """(host, pid, start time) from a folder's name, or None if it does not record them."""
    if not name.startswith(PREFIX):
        return None
    parts = name[len(PREFIX) :].split("-")
    if len(parts) != 4 or not parts[1].isdigit() or not parts[2].isdigit():
        return None
    return parts[0], int(parts[1]), int(parts[2])


def _start_time(pid: int) -> int | None:
    """The process's start time in clock ticks after boot (Linux), or None if unknown."""
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: count from its end.
    fields = text[text.rfind(")") + 2 :].split()
    try:
        return int(fields[19])  # field 22 of the line
    except (IndexError, ValueError):
        return None


def _running(pid: int, started: int) -> bool:
    if (_PROC / "self" / "stat").exists():
        now = _start_time(pid)
        return now is not None and (started == 0 or now == started)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # it exists, under another user
    return True


def _boot_time() -> float | None:
    """When this machine last booted (Linux), or None if unknown."""
    try:
        for line in (_PROC / "stat").read_text().splitlines():
            if line.startswith("btime "):
                return float(line.split()[1])
    except (OSError, ValueError):
        return None
    return None
