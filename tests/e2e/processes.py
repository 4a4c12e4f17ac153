"""Running `python -m batchdesk` as real processes, confined to one BATCHDESK_HOME."""

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

COMMAND_TIMEOUT = 120


@dataclass(frozen=True)
class Run:
    """One finished `batchdesk` process."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        """Return stdout parsed as JSON: fails unless stdout holds JSON and nothing else."""
        return json.loads(self.stdout)


def environment_for(home: Path) -> dict[str, str]:
    """Return this process's environment with batchdesk confined to `home` and no database set."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("PG") and key not in {"BATCHDESK_DATABASE_URL", "BATCHDESK_LOG_LEVEL"}
    }
    env["BATCHDESK_HOME"] = str(home)
    return env


def run_together(
    home: Path, *commands: Sequence[str | Path], env: dict[str, str] | None = None
) -> list[Run]:
    """Start every command at once (they must not depend on each other); return their runs.

    stdin is not a terminal, as in scripts and CI.
    """
    argvs = [tuple(str(arg) for arg in command) for command in commands]
    with contextlib.ExitStack() as stack:
        processes = [
            stack.enter_context(
                subprocess.Popen(
                    [sys.executable, "-m", "batchdesk", *argv],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    encoding="utf-8",
                    errors="replace",
                    env=environment_for(home) | (env or {}),
                    cwd=home,
                )
            )
            for argv in argvs
        ]
        try:
            outputs = [process.communicate(timeout=COMMAND_TIMEOUT) for process in processes]
        except BaseException:
            for process in processes:
                process.kill()
            raise
    return [
        Run(argv, process.returncode, out, err)
        for argv, process, (out, err) in zip(argvs, processes, outputs, strict=True)
    ]


def thread_states(pid: int) -> list[str]:
    """Return the state letter of each thread of process `pid` (R, S, T, ...), from /proc."""
    states = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError):  # a thread that just ended
            stat = (task / "stat").read_text()
            # "tid (comm) state ...": comm may hold ") ", so the state follows the last one.
            states.append(stat[stat.rindex(")") + 2])
    return states


def command_lines() -> list[str]:
    """Return the command line of every process on this machine, from /proc (no `ps` needed)."""
    lines = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(FileNotFoundError, ProcessLookupError, PermissionError):
            argv = (entry / "cmdline").read_bytes().rstrip(b"\0").split(b"\0")
            lines.append(b" ".join(argv).decode(errors="replace"))
    return lines
