"""Space back from the file store: files no row names, and what killed uploads left behind.

A file in the store is in use while a `blobs` row with location `store` names its hash. Rows
go (`blob_store.collect_garbage`, deleting a batch) but the bytes stay until `batchdesk db gc`
walks the folder: it removes each file no row names that was written over the grace period ago,
and each temporary file (`.incoming-*`) as old, which only an upload killed midway leaves.

An old file can still be taken up again at any moment: an upload (or a worker storing an
output) that finds a file already in the folder does not write it again, then commits the row
naming it, and that file's age protects nothing. Writer and collector are kept apart by an
advisory lock on the file's first-level fan-out folder:

- the writer, in the transaction that inserts its rows, takes the lock SHARED (`hold`) and only
  then checks that each file is there, writing again any that is not; the lock goes when the
  rows commit;
- the collector takes it EXCLUSIVE without waiting (a folder in use is left for the next run),
  then, in a new statement, looks for rows naming its candidates, and unlinks those no row
  names before it commits.

Either the writer's row committed before the collector looked (the file stays), or the
collector had unlinked before the writer checked (the writer writes the file again). The lock
is per folder (256 keys), not per file: a writer of thousands of small files takes at most 256
locks, well inside the server's shared lock table, and the collector works a folder at a time.
"""

import contextlib
import os
import re
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from batchdesk.storage import blob_store, folder_store, store_identity
from batchdesk.storage.blob_store import FileDigest
from batchdesk.storage.database import Database
from batchdesk.storage.folder_store import StoreUnavailable
from batchdesk.storage.pool import Connection, only_row

# First key of the two-key advisory lock; the second is the first byte of the file's hash.
LOCK_CLASS = 0x42_44_53  # "BDS"
GRACE_SECONDS = blob_store.GRACE_SECONDS
# Files looked at (and removed) per transaction: a folder's lock is never held for long.
ROUND = 500

ProgressCallback = Callable[[int, int], None]  # (folders looked through, folders in all)

_FOLDER = re.compile("[0-9a-f]{2}")
_NAME = re.compile("[0-9a-f]{64}")


def _lock_key(sha256: bytes) -> int:
    return sha256[0]


def hold(connection: Connection, root: Path, items: Sequence[tuple[Path, FileDigest]]) -> int:
    """Keep these store files from `db gc` until the caller commits; return bytes written.

    Call it in the transaction that commits the rows naming the files, after writing them with
    `folder_store.put`: a file `db gc` removed meanwhile (one `put` found already there) is
    written again from its source.
    """
    if not items:
        return 0
    lock_folders(connection, (d.sha256 for _, d in items))
    written = 0
    for path, digest in items:
        if not there(root, digest.sha256, digest.size):
            written += folder_store.put(root, path, digest.sha256, digest.size).written
    return written


def lock_folders(connection: Connection, hashes: Iterable[bytes]) -> None:
    """Keep `db gc` from these files' folders until the caller's transaction ends.

    For whoever comes to name a file already in the store without `hold` (moving a file into
    the store): take this, then check the file is `there`, then commit the row naming it.
    """
    keys = sorted({_lock_key(sha256) for sha256 in hashes})
    if keys:
        connection.execute(
            "SELECT pg_advisory_xact_lock_shared(%s, k) FROM unnest(%s::int4[]) AS k",
            (LOCK_CLASS, keys),
        )


def there(root: Path, sha256: bytes, size: int) -> bool:
    """Whether the file is in the store with its size, as the file server says right now.

    Opened, not stat'ed: an NFS client checks with the server when a file is opened
    (close-to-open consistency), while a stat may be answered from a cache that has not yet
    seen another machine remove the file.
    """
    try:
        descriptor = os.open(root / folder_store.relative_path(sha256), os.O_RDONLY)
    except OSError:
        return False
    try:
        return os.fstat(descriptor).st_size == size
    finally:
        os.close(descriptor)


@dataclass
class StoreGarbage:
    """What `collect` found in the store: files removed (or that would be), and files kept."""

    files: int = 0  # temporary files included
    bytes: int = 0
    temporary_files: int = 0
    temporary_bytes: int = 0
    recent_files: int = 0  # no row names them, but they are within the grace period
    recent_bytes: int = 0
    busy_files: int = 0  # in a folder an upload was holding: left for the next run
    busy_bytes: int = 0
    problem: str | None = None  # why the store could not be looked through: nothing removed

    def as_json(self) -> dict[str, object]:
        return dict(self.__dict__)


@dataclass
class _Found:
    """One first-level folder's files: named ones by hash, and temporary ones."""

    # Paths as text: a walk of a million files makes no Path objects it does not need.
    named: dict[bytes, tuple[str, int, float]] = field(default_factory=dict)
    temporary: list[tuple[str, int, float]] = field(default_factory=list)


def collect(
    database: Database,
    root: Path,
    *,
    delete: bool,
    grace_seconds: float = GRACE_SECONDS,
    progress: ProgressCallback | None = None,
) -> StoreGarbage:
    """Remove (or with `delete` False, only count) the store's files no row names, past grace.

    Run it after `blob_store.collect_garbage`: the files of the rows that removed go in the
    same run. Without `delete`, files whose rows that would remove are counted too. A store
    that is not there is reported in `problem` and nothing is removed; one that fails midway
    (unmounted, read-only) is reported there too, with what was removed before.
    """
    result = StoreGarbage()
    if not root.is_dir():
        result.problem = (
            f"The file store {root} is not there: is the share mounted on this machine, and "
            "does its file_store_mapping point to it? Nothing was deleted from the store."
        )
        return result
    with database.connect() as connection:
        result.problem = _not_ours(connection, root, database)
    if result.problem:
        return result
    try:
        cutoff = _store_clock(root, delete) - grace_seconds
        folders = sorted(e.name for e in _entries(root) if _FOLDER.fullmatch(e.name) and _is_dir(e))
        at_root = _Found()
        _add_temporary(at_root, _entries(root))  # where uploads write, and writability probes
        _settle_temporary(result, at_root, cutoff, delete)
        for index, name in enumerate(folders):
            found = _look_through(root / name)
            _settle_temporary(result, found, cutoff, delete)
            _settle_named(database, result, found, cutoff, delete, grace_seconds)
            if progress:
                progress(index + 1, len(folders))
    except OSError as exc:
        # Whatever was deleted before this was unused: say what stopped the rest.
        doing = "delete from" if delete else "look through"
        result.problem = (
            f"Cannot {doing} the file store {root}: {exc.strerror or exc} "
            f"({exc.filename or root}); the rest of it was left as it is."
        )
    return result


def _not_ours(connection: Connection, root: Path, database: Database) -> str | None:
    """Why `root` may not be this database's store; None when its marker says it is.

    Stricter than reading and writing: a store set up before markers existed is refused too,
    since deleting every file this database does not name would empty another one's store.
    """
    if store_identity.expected_id(connection) is None:
        return (
            f"The file store {root} does not yet say which database it belongs to, so nothing "
            "was deleted from it: run `batchdesk db file-store` with its folder once to mark it."
        )
    try:
        store_identity.check(connection, root, database.share_paths)
    except StoreUnavailable as exc:
        return f"{exc} Nothing was deleted from it."
    return None


def _store_clock(root: Path, delete: bool) -> float:
    """Return the time now by the clock that dates the store's files: the file server's.

    A file's age is its modification time, set by the server on a network share; this
    machine's clock may be off from it by minutes. A file written and removed at once says what
    the server's time is. A dry run on a share it cannot write falls back on this machine's.
    """
    probe = root / f"{folder_store.TEMPORARY_PREFIX}clock-{uuid.uuid4().hex}"
    try:
        with probe.open("xb") as out:
            try:
                return os.fstat(out.fileno()).st_mtime
            finally:
                probe.unlink()
    except OSError as exc:
        if delete:  # a share it cannot write: named as the store, not as the probe
            raise OSError(exc.errno, exc.strerror, str(root)) from exc
        return time.time()


def _entries(folder: str | Path) -> Iterator[os.DirEntry[str]]:
    with os.scandir(folder) as entries:
        yield from entries


def _is_dir(entry: os.DirEntry[str]) -> bool:
    return entry.is_dir(follow_symlinks=False)


def _add_temporary(found: _Found, entries: Iterator[os.DirEntry[str]]) -> None:
    for entry in entries:
        if entry.name.startswith(folder_store.TEMPORARY_PREFIX) and entry.is_file(
            follow_symlinks=False
        ):
            status = entry.stat(follow_symlinks=False)
            found.temporary.append((entry.path, status.st_size, status.st_mtime))


def _look_through(top: Path) -> _Found:
    """List a first-level folder's stored and temporary files; anything else is left alone."""
    found = _Found()
    for second in _entries(top):
        if not (_FOLDER.fullmatch(second.name) and _is_dir(second)):
            continue
        prefix = top.name + second.name
        for entry in _entries(second.path):
            if entry.name.startswith(folder_store.TEMPORARY_PREFIX):
                _add_temporary(found, iter([entry]))
            elif (
                _NAME.fullmatch(entry.name)
                and entry.name.startswith(prefix)
                and entry.is_file(follow_symlinks=False)
            ):
                status = entry.stat(follow_symlinks=False)
                found.named[bytes.fromhex(entry.name)] = (
                    entry.path,
                    status.st_size,
                    status.st_mtime,
                )
    return found


def _settle_temporary(result: StoreGarbage, found: _Found, cutoff: float, delete: bool) -> None:
    # No row ever names a temporary file: one past the grace period is a killed upload's
    # (a live upload's file is written to as it goes, so it stays young).
    for path, size, mtime in found.temporary:
        if mtime >= cutoff:
            result.recent_files += 1
            result.recent_bytes += size
            continue
        if delete:
            _unlink(path)
        result.files += 1
        result.bytes += size
        result.temporary_files += 1
        result.temporary_bytes += size


def _settle_named(
    database: Database,
    result: StoreGarbage,
    found: _Found,
    cutoff: float,
    delete: bool,
    grace_seconds: float,
) -> None:
    hashes = sorted(found.named)
    for start in range(0, len(hashes), ROUND):
        some = hashes[start : start + ROUND]
        if delete:
            _remove(database, result, found, some, cutoff)
            continue
        with database.connect() as connection:
            kept = blob_store.store_rows_kept(connection, some, grace_seconds)
        for sha in _old_unused(result, found, some, kept, cutoff):
            result.files += 1
            result.bytes += found.named[sha][1]


def _old_unused(
    result: StoreGarbage, found: _Found, hashes: list[bytes], named: set[bytes], cutoff: float
) -> list[bytes]:
    """Return the files among `hashes` no row names written before `cutoff`; count the rest."""
    old = []
    for sha in hashes:
        if sha in named:
            continue
        _path, size, mtime = found.named[sha]
        if mtime < cutoff:
            old.append(sha)
        else:
            result.recent_files += 1
            result.recent_bytes += size
    return old


def _remove(
    database: Database, result: StoreGarbage, found: _Found, hashes: list[bytes], cutoff: float
) -> None:
    """Remove those of `hashes` that no row names, seen under their folder's exclusive lock."""
    with database.begin() as connection:
        got = only_row(
            connection.execute(
                "SELECT pg_try_advisory_xact_lock(%s, %s)", (LOCK_CLASS, _lock_key(hashes[0]))
            )
        )[0]
        # A statement of its own, after the lock: it sees every row committed before the lock
        # was taken, and no writer can commit another until this transaction ends. (Asked in
        # the statement that takes the lock, it would miss a row committed while that started.)
        named = blob_store.store_rows_kept(connection, hashes, None)
        old = _old_unused(result, found, hashes, named, cutoff)
        if not got:  # an upload is holding files of this folder: all of it waits for next time
            result.busy_files += len(old)
            result.busy_bytes += sum(found.named[sha][1] for sha in old)
            return
        for sha in old:
            path, size, _mtime = found.named[sha]
            if not _still_old(path, cutoff):
                continue
            _unlink(path)
            result.files += 1
            result.bytes += size


def _still_old(path: str, cutoff: float) -> bool:
    # A share without hard links publishes by rename, which can replace a file with a new one.
    try:
        return os.stat(path, follow_symlinks=False).st_mtime < cutoff
    except FileNotFoundError:
        return False


def _unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):  # gone already: what we wanted
        os.unlink(path)
