"""Moving stored files' bytes between the database and the file store (`batchdesk db move-files`).

A file moves on its own, in an order that leaves its `blobs` row pointing at whole, checked
bytes whenever the move stops (Ctrl+C, a killed process, a lost server, a full share):

Into the store:
  1. the bytes are copied from the database to the store: a temporary name, flushed, checked
     against the hash, then given the file's name (a copy already there is read and checked
     instead, and used if it is whole);
  2. one transaction locks the row FOR UPDATE, sets `location = 'store'` and deletes the chunks.
  Stopped before 2 commits, the row is still in the database with every chunk; the next run
  finds the copy in the store, checks it and goes on from there.

Into the database:
  1. one transaction locks the row FOR UPDATE, copies the store's file into `blob_chunks`
     (checked against the hash as it is read: a damaged file rolls it all back), and sets
     `location = 'database'`;
  2. then the store's copy is deleted, while a FOR KEY SHARE lock shows the row still in the
     database (so `db gc` cannot drop it and a new upload bring the name back into use).
  Stopped between 1 and 2, an unused copy stays in the store, for `db gc` to reclaim.

The FOR UPDATE lock waits for the submissions and workers taking hold of the file (they lock
it FOR KEY SHARE) and keeps `db gc` away (it skips locked rows). Readers take no lock (a
viewer may not): `file_bytes` follows a file that moves while it is read. One mover runs per
database at a time (an advisory lock): two moving opposite ways could delete each other's copy.
A file is done once its row is where it should be, so a run after an interrupt only moves what
is left.
"""

import hashlib
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from zlib_ng import zlib_ng

from batchdesk.domain.units import format_size
from batchdesk.errors import InvalidRequest, KnownError, NotFound
from batchdesk.storage import blob_store, file_bytes, folder_store, store_gc, store_identity
from batchdesk.storage.database import Database
from batchdesk.storage.folder_store import StoreUnavailable
from batchdesk.storage.pool import Connection, only_row

MOVE_LOCK_KEY = 0x62617463_68646B4D  # "batchdk" + "M": any fixed bigint unique to us
_PAGE = 500  # rows looked up per query while walking the files to move
_COPIES_TRIED = 3  # a copy removed by `db gc` before its row named it is made again


class MoveRefused(KnownError):
    """The move cannot start (or go on): no store set, the share unusable, another mover."""


@dataclass
class MoveTally:
    """What a move has done so far; a progress report carries it as it grows."""

    to: str
    total_files: int = 0  # files to move when it began
    total_bytes: int = 0
    already_there: int = 0  # files in the chosen place when it began
    moved_files: int = 0
    moved_bytes: int = 0
    done_bytes: int = 0  # moved, passed over and in flight: what the progress bar shows
    done_files: int = 0
    old_copies_left: int = 0  # store copies of files moved into the database not deleted
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def as_json(self) -> dict[str, object]:
        return {
            "to": self.to,
            "moved_files": self.moved_files,
            "moved_bytes": self.moved_bytes,
            "already_there": self.already_there,
            "not_moved": self.problems,
            "old_copies_left": self.old_copies_left,
            "seconds": round(self.seconds, 3),
        }


MoveProgress = Callable[[MoveTally], None]


def move_files(database: Database, to: str, progress: MoveProgress | None = None) -> MoveTally:
    """Move every stored file's bytes to `to` (`store` or `database`); return the tally.

    Raises MoveRefused with a sentence before anything moves when the move cannot be done, and
    StoreUnavailable when the share fails during the move (every file whole in one place).
    """
    return FileMover(database, to, progress).run()


class FileMover:
    """One run of `db move-files`; `tally` says what it did, also after an interrupt."""

    def __init__(self, database: Database, to: str, progress: MoveProgress | None = None) -> None:
        if to not in (file_bytes.STORE, file_bytes.DATABASE):
            raise InvalidRequest(f"Files move to 'store' or 'database', not {to!r}.")
        self.database = database
        self.tally = MoveTally(to)
        self._progress = progress or (lambda _tally: None)
        self._began = time.monotonic()

    def run(self) -> MoveTally:
        self.database.require_write("moving files")
        with self._one_mover():
            root = self._prepare()
            try:
                for sha256, size in self._files_to_move():
                    self._move(root, sha256, size)
            finally:
                self.tally.seconds = time.monotonic() - self._began
        return self.tally

    @contextmanager
    def _one_mover(self) -> Iterator[None]:
        with self.database.connect() as connection:
            connection.autocommit = True  # the lock outlives statements, not a transaction
            try:
                got = only_row(
                    connection.execute("SELECT pg_try_advisory_lock(%s)", (MOVE_LOCK_KEY,))
                )[0]
                if not got:
                    raise MoveRefused(
                        "Another `batchdesk db move-files` is running on this database: wait "
                        "for it to finish, or stop it, and run this again."
                    )
                try:
                    yield
                finally:
                    connection.execute("SELECT pg_advisory_unlock(%s)", (MOVE_LOCK_KEY,))
            finally:
                connection.autocommit = False

    def _prepare(self) -> Path | None:
        """Count the work, check the store can take it; return the store's folder here."""
        to = self.tally.to
        with self.database.connect() as connection:
            setting = file_bytes.read_setting(connection)
            row = only_row(
                connection.execute(
                    "SELECT count(*) FILTER (WHERE location = %s), "
                    "count(*) FILTER (WHERE location <> %s), "
                    "coalesce(sum(size) FILTER (WHERE location <> %s), 0) FROM blobs",
                    (to, to, to),
                )
            )
        self.tally.already_there, self.tally.total_files, self.tally.total_bytes = map(int, row)
        paths = self.database.share_paths
        root = file_bytes.local_folder(setting, paths)
        if to == file_bytes.STORE:
            if root is None:
                raise MoveRefused(
                    "No file store is set, so there is nowhere to move files to: set one with "
                    "`batchdesk db file-store PATH` first."
                )
            if setting.new_files != file_bytes.STORE:
                raise MoveRefused(
                    "New files are kept in the database: set the file store again with "
                    f"`batchdesk db file-store {setting.folder}` before moving files there."
                )
            folder_store.check_folder(root)  # not there, read-only: a sentence, nothing moved
            self._check_ours(root)
            self._check_room(root)
        elif self.tally.total_files:
            if root is None:
                raise MoveRefused(
                    f"{self.tally.total_files:,} files are kept in the file store, but no file "
                    "store folder is set in the studio settings."
                )
            if not root.is_dir():
                raise StoreUnavailable(
                    f"The file store {root} is not there: is the share mounted on this machine?"
                )
            self._check_ours(root)
        self._progress(self.tally)
        return root

    def _check_ours(self, root: Path) -> None:
        with self.database.connect() as connection:
            store_identity.check(connection, root, self.database.share_paths)

    def _check_room(self, root: Path) -> None:
        free = shutil.disk_usage(root).free
        if self.tally.total_bytes and free < self.tally.total_bytes:
            raise StoreUnavailable(
                f"The file store {root} has {format_size(free)} free, and the files to move "
                f"take {format_size(self.tally.total_bytes)}: make room on the share and run "
                "this again (nothing was moved)."
            )

    def _files_to_move(self) -> Iterator[tuple[bytes, int]]:
        after = b""
        while True:
            with self.database.connect() as connection:
                rows = connection.execute(
                    "SELECT sha256, size FROM blobs WHERE location <> %s AND sha256 > %s "
                    "ORDER BY sha256 LIMIT %s",
                    (self.tally.to, after, _PAGE),
                ).fetchall()
            if not rows:
                return
            for sha256, size in rows:
                yield bytes(sha256), int(size)
            after = bytes(rows[-1][0])

    def _move(self, root: Path | None, sha256: bytes, size: int) -> None:
        before = self.tally.done_bytes
        try:
            if self.tally.to == file_bytes.STORE:
                assert root is not None
                moved = self._into_store(root, sha256, size)
            else:
                moved = self._into_database(root, sha256, size)
        except folder_store.DamagedFile as exc:
            moved = False
            if self._still_kept(sha256):
                self.tally.problems.append(str(exc))
        except NotFound as exc:  # missing from the store: it stays where the row says
            moved = False
            self.tally.problems.append(str(exc))
        if moved:
            self.tally.moved_files += 1
            self.tally.moved_bytes += size
        self.tally.done_files += 1
        self.tally.done_bytes = before + size
        self._progress(self.tally)

    def _count_bytes(self, size: int) -> None:
        self.tally.done_bytes += size
        self._progress(self.tally)

    def _into_store(self, root: Path, sha256: bytes, size: int) -> bool:
        for _ in range(_COPIES_TRIED):
            with (
                self.database.connect() as connection,
                # Closed before the connection goes back, so a COPY cut short ends first.
                closing(blob_store.stream_chunk_views(connection, sha256)) as chunks,
            ):
                crc32 = _copy_into_store(root, chunks, sha256, size, self._count_bytes)
            with self.database.begin() as connection:
                location = _lock(connection, sha256)
                if location != file_bytes.DATABASE:
                    return False  # deleted by `db gc` meanwhile: its copy is unused, gc's to take
                # `db gc` removes old store files no row names, such as a copy an earlier run
                # left: kept from it until this commits, and seen to be there after.
                store_gc.lock_folders(connection, [sha256])
                if not store_gc.there(root, sha256, size):
                    continue
                connection.execute(
                    "UPDATE blobs SET location = 'store', crc32 = %s WHERE sha256 = %s",
                    (crc32, sha256),
                )
                connection.execute("DELETE FROM blob_chunks WHERE sha256 = %s", (sha256,))
            return True
        raise NotFound(
            f"The stored file {sha256.hex()[:12]} was removed from the file store each time it "
            "was copied there; it stays in the database."
        )

    def _into_database(self, root: Path | None, sha256: bytes, size: int) -> bool:
        with self.database.begin() as connection:
            location = _lock(connection, sha256)
            if location != file_bytes.STORE:
                return False
            if root is None:  # a file stored to the store after the count, with no folder set
                raise NotFound(f"The stored file {sha256.hex()[:12]} has no file store folder.")
            connection.execute("DELETE FROM blob_chunks WHERE sha256 = %s", (sha256,))  # none
            with connection.cursor().copy(
                "COPY blob_chunks (sha256, chunk_index, data) FROM STDIN (FORMAT BINARY)"
            ) as copy:
                copy.set_types(["bytea", "int4", "bytea"])
                for index, chunk in enumerate(folder_store.read(root, sha256, size)):
                    copy.write_row((sha256, index, chunk))
                    self._count_bytes(len(chunk))
            connection.execute(
                "UPDATE blobs SET location = 'database' WHERE sha256 = %s", (sha256,)
            )
        self._delete_old_copy(root, sha256)
        return True

    def _delete_old_copy(self, root: Path, sha256: bytes) -> None:
        with self.database.begin() as connection:
            # Held to the commit: the row cannot be deleted, so no upload can make the name
            # the store copy of a new row while it is being deleted.
            row = connection.execute(
                "SELECT location FROM blobs WHERE sha256 = %s FOR KEY SHARE", (sha256,)
            ).fetchone()
            if row is None or row[0] != file_bytes.DATABASE:
                return
            try:
                folder_store.remove(root, sha256)
            except OSError:  # a read-only share, a file held open on Windows: gc's to take
                self.tally.old_copies_left += 1

    def _still_kept(self, sha256: bytes) -> bool:
        with self.database.connect() as connection:
            return (
                connection.execute("SELECT 1 FROM blobs WHERE sha256 = %s", (sha256,)).fetchone()
                is not None
            )


def _lock(connection: Connection, sha256: bytes) -> str | None:
    """Lock a file's row against every other use until commit; return its location (None: gone)."""
    row = connection.execute(
        "SELECT location FROM blobs WHERE sha256 = %s FOR UPDATE", (sha256,)
    ).fetchone()
    return None if row is None else str(row[0])


def _copy_into_store(
    root: Path,
    chunks: Iterable[bytes | memoryview],
    sha256: bytes,
    size: int,
    on_bytes: Callable[[int], None],
) -> int:
    """Make a file whole and durable in the store from its bytes in the database; its CRC-32.

    Its database copy is deleted next, so a file already under the name is read and kept only
    if its bytes are right, and a damaged one is replaced. Raises DamagedFile when `chunks` are
    not the file's bytes and StoreUnavailable when the store cannot be written; nothing new is
    under the name then.
    """
    target = root / folder_store.relative_path(sha256)
    if store_gc.there(root, sha256, size):
        crc32 = folder_store.whole_crc32(root, sha256, size)
        if crc32 is not None:
            return crc32
    if not root.is_dir():
        raise StoreUnavailable(
            f"The file store {root} is not there: is the share mounted on this machine?"
        )
    temporary = root / f"{folder_store.TEMPORARY_PREFIX}{uuid.uuid4().hex}"
    check = hashlib.sha256()
    crc32 = 0
    written = 0
    try:
        changed = folder_store.make_folders(root, target)
        with temporary.open("xb") as out:
            for chunk in chunks:
                check.update(chunk)
                crc32 = zlib_ng.crc32(chunk, crc32)
                out.write(chunk)
                written += len(chunk)
                on_bytes(len(chunk))
            out.flush()
            os.fsync(out.fileno())
        if written != size or check.digest() != sha256:
            raise folder_store.DamagedFile(
                f"The stored file {sha256.hex()[:12]} is damaged in the database: its bytes do "
                "not match the file that was stored."
            )
        # Checked bytes, so taking the name from whatever holds it (damaged, cut short, or the
        # same bytes written meanwhile) is right; a rename does so on shares without hard links.
        os.replace(temporary, target)
        for folder in changed:  # new fan-out folders too: the name must survive a power cut
            folder_store.sync_folder(folder)
    except OSError as exc:
        raise folder_store.unavailable(root, exc, "write to") from exc
    finally:
        temporary.unlink(missing_ok=True)
    return crc32
