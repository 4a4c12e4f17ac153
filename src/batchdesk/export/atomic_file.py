"""Write a file under a temporary name beside its target and rename it into place at the end.

Whatever stops the writing (a full disk, a cancel, Ctrl+C, a lost database) removes the
temporary file, so nothing half-written ever carries the name the user chose. Errors from the
operating system become one sentence that says where and what to do.
"""

import errno
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import BinaryIO

from batchdesk.errors import FileProblem

TEMPORARY_SUFFIX = ".part"


class TargetExists(FileProblem):
    """The files to write are there already and replacing them was not allowed."""

    def __init__(self, message: str, paths: list[Path]) -> None:
        super().__init__(message)
        self.paths = paths


def temporary_name(target: Path) -> Path:
    """A hidden name beside `target` that says what it is, short enough for any file system."""
    return target.with_name(f".{target.stem[:60]}.{secrets.token_hex(4)}{TEMPORARY_SUFFIX}")


def describe_os_error(exc: OSError, target: Path) -> str:
    """One sentence for a failed write of `target`, saying that nothing was left behind."""
    folder = target.parent
    nothing = f"nothing was written to {target.name}"
    code = exc.errno
    if code in (errno.ENOSPC, errno.EDQUOT):
        return (
            f"The disk holding {folder} is full; {nothing}. "
            "Free some space or choose another folder."
        )
    if code in (errno.EACCES, errno.EPERM):
        return (
            f"Cannot write in {folder}: permission denied; {nothing}. "
            "Choose a folder you can write to."
        )
    if code == errno.EROFS:
        return f"{folder} is on a read-only file system; {nothing}. Choose another folder."
    if code == errno.EFBIG:
        return f"The file system holding {folder} does not allow a file this large; {nothing}."
    if code == errno.ENOENT and not folder.is_dir():
        return f"The folder {folder} does not exist; {nothing}."
    return f"Could not write {target}: {exc.strerror or exc}; {nothing}."


def check_target(target: Path, *, overwrite: bool) -> None:
    """Refuse early, before any work, a target that cannot be written as asked."""
    if not target.parent.is_dir():
        raise FileProblem(f"The folder {target.parent} does not exist; choose another.")
    if target.is_dir():
        raise FileProblem(f"{target} is a folder; give a file name.")
    if target.exists() and not overwrite:
        raise TargetExists(
            f"{target} already exists; choose another name or allow replacing it.", [target]
        )


@contextmanager
def atomic_target(target: Path, *, overwrite: bool) -> Iterator[BinaryIO]:
    """Yield a file to write; when the block ends normally it becomes `target`, else it is gone."""
    check_target(target, overwrite=overwrite)
    temporary = temporary_name(target)
    try:
        # 0o666 less the umask: the result gets the same permissions as any file the user makes.
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as exc:
        raise FileProblem(describe_os_error(exc, target)) from exc
    stream = os.fdopen(descriptor, "wb")
    try:
        yield stream
        stream.flush()
        os.fsync(stream.fileno())
        stream.close()
        if not overwrite and target.exists():
            raise FileProblem(
                f"{target} appeared while it was being written; nothing was replaced."
            )
        os.replace(temporary, target)
    except BaseException as exc:
        with suppress(OSError):
            stream.close()  # may fail again on a full disk; the file goes anyway
        with suppress(OSError):
            temporary.unlink()
        if isinstance(exc, OSError):
            raise FileProblem(describe_os_error(exc, target)) from exc
        raise
    sync_folder(target.parent)


def sync_folder(folder: Path) -> None:
    """Make the rename survive a power cut where the file system allows (not on Windows)."""
    with suppress(OSError, AttributeError):
        descriptor = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
