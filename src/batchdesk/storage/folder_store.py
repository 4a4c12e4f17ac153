"""File bytes in a folder on the studio's share, named by their sha256.

The folder is content-addressed: a file's bytes are at `ab/cd/abcd...` (its sha256 in hex, under
two levels of fan-out folders so no folder grows past 65,536 entries). A name always holds the
same bytes, so a file already present is never written again, and two workstations storing the
same file at once both end up with the one right file.

A file is written to a temporary name in its own folder (on the same share, so the rename is
atomic), flushed to disk with its folder, and only then given its name: a crash leaves a
temporary file at most, never a short file under a real name. The caller commits the database
row that references a file only after `put` returns, so a committed row never points at bytes
that are not durable. Reading checks the bytes against their hash as they stream, so a damaged
or replaced file is reported by name instead of passed on.
"""

import errno
import hashlib
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from batchdesk.errors import Cancelled, FileProblem, KnownError, NotFound

CHUNK_SIZE = 1 << 20
TEMPORARY_PREFIX = ".incoming-"

CancelCheck = Callable[[], bool]


class StoreUnavailable(KnownError):
    """The file store's folder cannot be used: not mounted, read-only, full or refused."""


class DamagedFile(NotFound):
    """A stored file's bytes are not the ones stored: as far as anyone can use it, it is gone.

    A NotFound, so a job whose input is damaged fails at once rather than being retried: only
    restoring the file (or submitting it again) helps.
    """


def relative_path(sha256: bytes) -> Path:
    """Return where a file with this hash lives inside the store folder."""
    name = sha256.hex()
    return Path(name[:2], name[2:4], name)


def check_folder(root: Path) -> None:
    """Raise StoreUnavailable with a sentence unless `root` is a folder this process can write.

    A small file is written, flushed and removed, so a read-only share or one mounted for
    reading only is found before any file depends on it.
    """
    if not root.is_absolute():
        raise StoreUnavailable(f"The file store must be an absolute path, not {root}.")
    if not root.is_dir():
        raise StoreUnavailable(
            f"The file store {root} is not there: is the share mounted on this machine?"
            if not root.exists()
            else f"The file store {root} is not a folder."
        )
    probe = root / f"{TEMPORARY_PREFIX}probe-{uuid.uuid4().hex}"
    try:
        with probe.open("xb") as out:
            try:
                out.write(b"batchdesk")
                out.flush()
                os.fsync(out.fileno())
            finally:
                probe.unlink()
    except OSError as exc:
        raise _unavailable(root, exc, "write to") from exc


def put(
    root: Path,
    source: Path,
    sha256: bytes,
    size: int,
    on_bytes: Callable[[int], None] | None = None,
    cancelled: CancelCheck | None = None,
) -> int:
    """Make the file with this hash durable in the store, from `source`; return bytes written.

    A file already present under the name (with the right size) is left alone and 0 returned.
    Raises FileProblem when `source` no longer has the hash it was submitted with, and
    StoreUnavailable when the store cannot be written; nothing is left under the real name then.
    """
    target = root / relative_path(sha256)
    if _present(target, size):
        return 0
    if not root.is_dir():
        raise StoreUnavailable(
            f"The file store {root} is not there: is the share mounted on this machine?"
        )
    temporary = target.parent / f"{TEMPORARY_PREFIX}{uuid.uuid4().hex}"
    check = hashlib.sha256()
    written = 0
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            stream = source.open("rb")
        except OSError as exc:
            raise FileProblem(f"Cannot read {source}: {exc.strerror or exc}.") from exc
        with stream, temporary.open("xb") as out:
            while chunk := _read(stream, source):
                if cancelled and cancelled():
                    raise Cancelled("The submission was cancelled; no batch was created.")
                check.update(chunk)
                out.write(chunk)
                written += len(chunk)
                if on_bytes:
                    on_bytes(len(chunk))
            out.flush()
            os.fsync(out.fileno())
        if check.digest() != sha256:
            raise FileProblem(
                f"{source} changed while it was being submitted; submit it again once it is "
                "written completely."
            )
        _publish(temporary, target)
        _sync_folder(target.parent)
    except OSError as exc:
        raise _unavailable(root, exc, "write to") from exc
    finally:
        temporary.unlink(missing_ok=True)
    return written


def _read(stream: BinaryIO, source: Path) -> bytes:
    try:
        return stream.read(CHUNK_SIZE)
    except OSError as exc:
        raise FileProblem(f"Cannot read {source}: {exc.strerror or exc}.") from exc


def _present(target: Path, size: int) -> bool:
    try:
        return target.stat().st_size == size
    except OSError:
        return False


def _publish(temporary: Path, target: Path) -> None:
    """Give the written file its name, never replacing a file already there."""
    try:
        # A hard link fails if the name exists: the first writer's file stays as it is.
        os.link(temporary, target)
    except FileExistsError:
        return
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
            raise
        # Shares without hard links (some SMB mounts): a rename, which replaces a file that
        # appeared meanwhile with the same bytes.
        os.replace(temporary, target)


def _sync_folder(folder: Path) -> None:
    """Flush a folder's entries, so a renamed file's name survives a power cut."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # Windows cannot open folders; its renames are durable once they return
    try:
        os.fsync(descriptor)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.EBADF):  # file systems that cannot sync folders
            raise
    finally:
        os.close(descriptor)


def read(root: Path, sha256: bytes, size: int) -> Iterator[bytes]:
    """Yield a stored file's bytes a chunk at a time, checking them against their hash.

    Raises NotFound when the file is missing and DamagedFile when its bytes are not the ones
    stored (after the last chunk: a caller writes them somewhere temporary until then).
    """
    path = root / relative_path(sha256)
    try:
        stream = path.open("rb")
    except FileNotFoundError:
        if not root.is_dir():
            raise StoreUnavailable(
                f"The file store {root} is not there: is the share mounted on this machine?"
            ) from None
        raise NotFound(
            f"The stored file {path} is missing from the file store (was it deleted or moved?)."
        ) from None
    except OSError as exc:
        raise _unavailable(root, exc, "read from") from exc
    check = hashlib.sha256()
    length = 0
    with stream:
        while True:
            try:
                chunk = stream.read(CHUNK_SIZE)
            except OSError as exc:
                raise _unavailable(root, exc, "read from") from exc
            if not chunk:
                break
            check.update(chunk)
            length += len(chunk)
            yield chunk
    if length != size or check.digest() != sha256:
        raise DamagedFile(
            f"The stored file {path} is damaged: its bytes do not match the file that was "
            "stored (restore it from a backup)."
        )


def verify(root: Path, sha256: bytes, size: int) -> str | None:
    """Return a sentence on what is wrong with a stored file, or None when it is whole."""
    try:
        for _chunk in read(root, sha256, size):
            pass
    except KnownError as exc:
        return str(exc)
    return None


def remove(root: Path, sha256: bytes) -> None:
    """Delete a stored file (one no row references any more); a missing file is fine."""
    (root / relative_path(sha256)).unlink(missing_ok=True)


def _unavailable(root: Path, exc: OSError, doing: str) -> StoreUnavailable:
    reason = {
        errno.ENOSPC: "the share is full",
        errno.EDQUOT: "the share's quota is used up",
        errno.EROFS: "the share is mounted read-only",
        errno.EACCES: "permission denied",
        errno.EPERM: "permission denied",
        errno.ENOENT: "it is not there (is the share mounted on this machine?)",
        errno.ENOTDIR: "it is not there (is the share mounted on this machine?)",
    }.get(exc.errno or 0, exc.strerror or str(exc))
    return StoreUnavailable(f"Cannot {doing} the file store {root}: {reason}.")
