"""File bytes in a folder on the studio's share, named by their sha256.

The folder is content-addressed: a file's bytes are at `ab/cd/abcd...` (its sha256 in hex, under
two levels of fan-out folders so no folder grows past 65,536 entries). A name always holds the
same bytes, so a file already present is never replaced (a copy made before its hash was known
is dropped), and two workstations storing the same file at once both end up with the one right
file.

A file is copied to a temporary name in the store's folder (on the same share, so linking it
into place is atomic), hashed from that copy (so the name always matches the bytes it holds),
flushed to disk, and only then given its name, whose folder is flushed too: a crash leaves
temporary files at most, never a short file under a real name. Many files are written before
they are flushed and named together (`Writes`), so the disk commits them at once rather than one
by one. The caller commits the database rows that reference files only after `put` or
`Writes.publish` returns, so a committed row never points at bytes that are not durable.
Reading checks the bytes as they stream, so a damaged or replaced file is reported by name
instead of passed on: against the CRC-32 computed when the file was written (kept in its row),
or, for files written before there was one, against the sha256 (fifteen times the CPU).
"""

import ctypes
import errno
import hashlib
import mmap
import os
import sys
import uuid
from collections.abc import Callable, Collection, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from zlib_ng import zlib_ng

from batchdesk.errors import Cancelled, FileProblem, KnownError, NotFound

CHUNK_SIZE = 1 << 20
COPY_STEP = 8 << 20  # bytes the kernel copies between progress reports and cancel checks
TEMPORARY_PREFIX = ".incoming-"
# Flushes in flight at once: enough for the disk (or the share's server) to commit them together.
SYNC_THREADS = 4
# Files copied but not yet hashed and flushed, at most: each holds a descriptor open.
IN_FLIGHT = 64
# Folders to flush above which one syncfs of the whole file system is cheaper.
FOLDERS_PER_SYNCFS = 16

_BINARY = getattr(os, "O_BINARY", 0)  # Windows: no newline translation
_CREATE_FLAGS = os.O_RDWR | os.O_CREAT | os.O_EXCL | _BINARY
# sendfile copies file to file on Linux only (elsewhere it wants a socket to write to).
_SENDFILE = sys.platform.startswith("linux") and hasattr(os, "sendfile")
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None
if _LIBC is not None and not hasattr(_LIBC, "syncfs"):  # a C library from before 2011
    _LIBC = None
_NO_SENDFILE = {errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV}

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
        raise unavailable(root, exc, "write to") from exc


@dataclass(frozen=True)
class Put:
    """What `put` did: the bytes it wrote, and the file's CRC-32 (None: it was there already)."""

    written: int
    crc32: int | None


def put(
    root: Path,
    source: Path,
    sha256: bytes,
    size: int,
    on_bytes: Callable[[int], None] | None = None,
    cancelled: CancelCheck | None = None,
) -> Put:
    """Make the file with this hash durable in the store, from `source`.

    A file already present under the name (with the right size) is left alone: nothing
    written, its CRC-32 not known. Raises FileProblem when `source` no longer has the hash it
    was submitted with, and StoreUnavailable when the store cannot be written; nothing is left
    under the real name then.
    """
    if _present(root / relative_path(sha256), size):
        return Put(0, None)
    with Writes(root) as writes:
        writes.add(source, sha256, on_bytes, cancelled)
        written = writes.publish()
        return Put(written, writes.files()[0].crc32)


@dataclass(frozen=True)
class Copied:
    """A file copied into a temporary name in the store: its checksums, size, whether synced."""

    temporary: Path
    sha256: bytes
    crc32: int
    size: int
    synced: bool


class Writes:
    """Files copied into the store one after another, then made durable and named together.

    `add` copies a file to a temporary name in the store's folder (in the kernel where it can)
    and hands it to a few threads that hash the copy, which is what gets named, and flush it to
    disk: the flushes of many files overlap, so the disk commits them together instead of one
    after the other. `publish` waits for them, gives each its name and flushes the names (one
    syncfs on Linux); only then may the caller commit rows that reference the files. Leaving
    the `with` block removes every temporary name, so an error or a cancel leaves nothing half
    made; a crash leaves named files no row references yet and the temporary files of one
    group (TEMPORARY_PREFIX... in the store's top folder), never a row without its file.
    """

    def __init__(self, root: Path, threads: int = SYNC_THREADS) -> None:
        if not root.is_dir():
            raise StoreUnavailable(
                f"The file store {root} is not there: is the share mounted on this machine?"
            )
        self._root = root
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="batchdesk-store")
        self._copies: list[Future[Copied]] = []
        self._open: dict[Future[Copied], int] = {}  # the copies not hashed yet, and their files
        self._temporaries: list[Path] = []
        self.copied_bytes = 0

    def __enter__(self) -> "Writes":
        return self

    def __exit__(self, *_exc: object) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        for future, output in self._open.items():
            if future.cancelled():  # never started, so its file is still open
                os.close(output)
        for temporary in self._temporaries:
            temporary.unlink(missing_ok=True)

    def add(
        self,
        source: Path,
        expected: bytes | None = None,
        on_bytes: Callable[[int], None] | None = None,
        cancelled: CancelCheck | None = None,
    ) -> None:
        """Copy `source` into the store under a temporary name; with `expected`, check its hash."""
        if len(self._copies) >= IN_FLIGHT:
            # Copying may outrun flushing (a slow share): bound the files open and unflushed.
            self._copies[-IN_FLIGHT].result()
        temporary = self._root / f"{TEMPORARY_PREFIX}{uuid.uuid4().hex}"
        try:
            output = os.open(temporary, _CREATE_FLAGS, 0o666)
        except OSError as exc:
            raise unavailable(self._root, exc, "write to") from exc
        self._temporaries.append(temporary)
        try:
            size = _copy(source, output, self._root, on_bytes, cancelled)
            future = self._pool.submit(self._seal, output, temporary, size, expected, source)
        except BaseException:
            os.close(output)
            raise
        self._copies.append(future)
        self._open[future] = output
        self.copied_bytes += size

    def _seal(
        self, output: int, temporary: Path, size: int, expected: bytes | None, source: Path
    ) -> Copied:
        """Hash the copy and flush it to disk, unless a file with its hash is there already."""
        try:
            sha256, crc32 = _checksums(output, size)
            if expected is not None and sha256 != expected:
                raise FileProblem(
                    f"{source} changed while it was being submitted; submit it again once it "
                    "is written completely."
                )
            synced = not _present(self._root / relative_path(sha256), size)
            if synced:
                os.fsync(output)
        except OSError as exc:
            raise unavailable(self._root, exc, "write to") from exc
        finally:
            os.close(output)
        return Copied(temporary, sha256, crc32, size, synced)

    def files(self) -> list[Copied]:
        """Wait for every file added to be hashed (and flushed); return them in order."""
        return [future.result() for future in self._copies]

    def publish(self, skip: Collection[bytes] = ()) -> int:
        """Name every file added (but those whose hash is in `skip`), durably; return bytes named.

        A file whose name is taken already is not written again. When this returns, each file
        and its name are on disk, and the caller may commit the rows that reference them.
        """
        unique = {c.sha256: c for c in reversed(self.files()) if c.sha256 not in skip}
        folders: set[Path] = set()
        written = 0
        try:
            # In the pool: making folders and names waits on the file system's journal, and
            # these waits overlap.
            for changed, named in self._pool.map(self._name, unique.values()):
                folders.update(changed)
                written += named
            _sync_names(self._root, folders, self._pool)
        except OSError as exc:
            raise unavailable(self._root, exc, "write to") from exc
        return written

    def _name(self, copied: Copied) -> tuple[list[Path], int]:
        """Give a copied file its name; return the folders that changed and the bytes named.

        A name that exists already counts as changed too: the writer that made it may have
        crashed before flushing its folder.
        """
        target = self._root / relative_path(copied.sha256)
        changed = make_folders(self._root, target)
        if _present(target, copied.size):
            return changed, 0
        if not copied.synced:
            _sync(copied.temporary)  # the file under its name vanished since it was hashed
        named = publish(copied.temporary, target)
        copied.temporary.unlink(missing_ok=True)
        return changed, copied.size if named else 0


def _copy(
    source: Path,
    output: int,
    root: Path,
    on_bytes: Callable[[int], None] | None,
    cancelled: CancelCheck | None,
) -> int:
    """Copy `source` into the open file `output`; return its size.

    On Linux the kernel copies (sendfile), so the bytes never pass through Python; elsewhere,
    or where sendfile refuses, a read and write loop does. Raises FileProblem when the source
    changed while it was copied (a render still being written), as its copy would be torn.
    """
    try:
        stream = source.open("rb", buffering=0)
        before = os.fstat(stream.fileno())
    except OSError as exc:
        raise FileProblem(f"Cannot read {source}: {exc.strerror or exc}.") from exc
    copied = 0
    in_kernel = _SENDFILE
    with stream:
        while True:
            # Only while bytes are left: a cancel once a file is whole takes effect before the next.
            if cancelled and copied < before.st_size and cancelled():
                raise Cancelled("The submission was cancelled; no batch was created.")
            try:
                if in_kernel:
                    count = os.sendfile(output, stream.fileno(), None, COPY_STEP)
                else:
                    count = _copy_step(stream, output)
            except OSError as exc:
                if in_kernel and copied == 0 and exc.errno in _NO_SENDFILE:
                    in_kernel = False
                    continue
                raise _copy_problem(source, root, exc) from exc
            if not count:
                break
            copied += count
            if on_bytes:
                on_bytes(count)
        after = os.fstat(stream.fileno())
    if copied != after.st_size or (before.st_size, before.st_mtime_ns) != (
        after.st_size,
        after.st_mtime_ns,
    ):
        raise FileProblem(
            f"{source} changed while it was being submitted; submit it again once it is "
            "written completely."
        )
    return copied


def _checksums(output: int, size: int) -> tuple[bytes, int]:
    """Return the sha256 and CRC-32 of the open file `output`, read where it lies in the cache."""
    if not size:
        return hashlib.sha256().digest(), 0  # an empty file cannot be mapped
    # A mapping hands both the cached pages themselves: no copy into a buffer first.
    with mmap.mmap(output, size, access=mmap.ACCESS_READ) as pages:
        return hashlib.sha256(pages).digest(), zlib_ng.crc32(pages)


def _copy_step(stream: BinaryIO, output: int) -> int:
    chunk = stream.read(CHUNK_SIZE)
    view = memoryview(chunk)
    while view:
        view = view[os.write(output, view) :]
    return len(chunk)


def _copy_problem(source: Path, root: Path, exc: OSError) -> KnownError:
    if exc.errno in _STORE_REASONS:
        return unavailable(root, exc, "write to")
    return StoreUnavailable(
        f"Cannot copy {source} into the file store {root}: {exc.strerror or exc}."
    )


def make_folders(root: Path, target: Path) -> list[Path]:
    """Make the fan-out folders `target` goes in; return the folders whose entries change."""
    changed = [target.parent]
    if not target.parent.is_dir():
        changed.append(target.parent.parent)
        if not target.parent.parent.is_dir():
            changed.append(root)
        target.parent.mkdir(parents=True, exist_ok=True)
    return changed


def _sync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDWR | _BINARY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _present(target: Path, size: int) -> bool:
    try:
        return target.stat().st_size == size
    except OSError:
        return False


def publish(temporary: Path, target: Path) -> bool:
    """Give the written file its name, never replacing a file already there; False if there."""
    try:
        # A hard link fails if the name exists: the first writer's file stays as it is.
        os.link(temporary, target)
    except FileExistsError:
        return False
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
            raise
        # Shares without hard links (some SMB mounts): a rename, which replaces a file that
        # appeared meanwhile with the same bytes.
        os.replace(temporary, target)
    return True


def _sync_names(root: Path, folders: Collection[Path], pool: ThreadPoolExecutor) -> None:
    """Flush the entries of `folders`, so the names given in them survive a power cut.

    For many folders on Linux, one syncfs of the store's file system: a journaling file system
    commits every folder at once (one flush of the disk's cache, where a flush per folder costs
    one each), and a network share's server made the names durable before it answered. For a
    few (a job's outputs), or elsewhere, each folder is flushed, the flushes overlapping in
    `pool`: a syncfs also writes whatever else is waiting on that file system.
    """
    if not folders:
        return
    if _LIBC is not None and len(folders) > FOLDERS_PER_SYNCFS:
        descriptor = os.open(root, os.O_RDONLY)
        try:
            if _LIBC.syncfs(descriptor) != 0:
                error = ctypes.get_errno()
                raise OSError(error, os.strerror(error))
        finally:
            os.close(descriptor)
        return
    for _done in pool.map(sync_folder, folders):
        pass


def sync_folder(folder: Path) -> None:
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


def read(
    root: Path, sha256: bytes, size: int, crc32: int | None = None, *, thorough: bool = False
) -> Iterator[bytes]:
    """Yield a stored file's bytes a chunk at a time, checking them as they pass.

    Checked against `crc32`, the CRC-32 computed when the file was written, when it is known,
    else against the sha256; `thorough` checks the sha256 as well. Raises NotFound when the
    file is missing and DamagedFile when its bytes are not the ones stored (after the last
    chunk: a caller writes them somewhere temporary until then).
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
        raise unavailable(root, exc, "read from") from exc
    digest = hashlib.sha256() if crc32 is None or thorough else None
    crc = 0
    length = 0
    with stream:
        while True:
            try:
                chunk = stream.read(CHUNK_SIZE)
            except OSError as exc:
                raise unavailable(root, exc, "read from") from exc
            if not chunk:
                break
            if digest is not None:
                digest.update(chunk)
            if crc32 is not None:
                crc = zlib_ng.crc32(chunk, crc)
            length += len(chunk)
            yield chunk
    if (
        length != size
        or (crc32 is not None and crc != crc32)
        or (digest is not None and digest.digest() != sha256)
    ):
        raise DamagedFile(
            f"The stored file {path} is damaged: its bytes do not match the file that was "
            "stored (restore it from a backup)."
        )


def verify(root: Path, sha256: bytes, size: int, crc32: int | None = None) -> str | None:
    """Return a sentence on what is wrong with a stored file, or None when it is whole.

    Checks its sha256, and its CRC-32 when known (the one reads check).
    """
    try:
        for _chunk in read(root, sha256, size, crc32, thorough=True):
            pass
    except KnownError as exc:
        return str(exc)
    return None


def whole_crc32(root: Path, sha256: bytes, size: int) -> int | None:
    """Return a stored file's CRC-32 once its sha256 checks out; None when missing or damaged."""
    crc = 0
    try:
        for chunk in read(root, sha256, size, thorough=True):
            crc = zlib_ng.crc32(chunk, crc)
    except KnownError:
        return None
    return crc


def remove(root: Path, sha256: bytes) -> None:
    """Delete a stored file (one no row references any more); a missing file is fine."""
    (root / relative_path(sha256)).unlink(missing_ok=True)


_STORE_REASONS = {
    errno.ENOSPC: "the share is full",
    errno.EDQUOT: "the share's quota is used up",
    errno.EROFS: "the share is mounted read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.ENOENT: "it is not there (is the share mounted on this machine?)",
    errno.ENOTDIR: "it is not there (is the share mounted on this machine?)",
}


def unavailable(root: Path, exc: OSError, doing: str) -> StoreUnavailable:
    reason = _STORE_REASONS.get(exc.errno or 0, exc.strerror or str(exc))
    return StoreUnavailable(f"Cannot {doing} the file store {root}: {reason}.")
