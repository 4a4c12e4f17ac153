"""One interface for file bytes, so nothing else knows whether they are in the database or a folder.

Every stored file has a `blobs` row (its sha256, size and upload time; for a file in the store,
the CRC-32 its reads check), whichever place holds its bytes: the jobs and outputs that
reference it, the locks that keep it from deletion and the garbage collector all work on those
rows. `blobs.location` says where the bytes are:
`database` (in `blob_chunks`, `blob_store`) or `store` (in the studio's file store folder,
`folder_store`). The studio setting (`batchdesk db file-store`) decides where new files go;
reading works from either place whatever the setting is.

A file bound for the store is made durable in the folder before the transaction that inserts
its row commits, so a committed row never points at bytes that are not there. That transaction
first holds the files against `batchdesk db gc` (`store_gc.hold`), which removes store files no
row names: anything else that comes to name a store file (moving files into the store) must too.
"""

from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from batchdesk.errors import Cancelled, NotFound
from batchdesk.storage import blob_store, folder_store, store_gc, store_identity
from batchdesk.storage.blob_store import CancelCheck, FileDigest, ProgressCallback
from batchdesk.storage.database import Database
from batchdesk.storage.pool import Connection
from batchdesk.storage.share_paths import SharePaths

DATABASE = "database"
STORE = "store"

# The studio settings (table studio_settings) this module keeps. The folder is remembered when
# new files go back to the database, because files already in the store are still read there.
_FOLDER_KEY = "file_store_folder"
_NEW_FILES_KEY = "file_store"
# Files copied into the store before they are named together and their rows committed: each
# group ends with a wait for its last flushes, so groups are large (a submission of 1,000 x 1 MB
# is one); a crash leaves at most one group's temporary files, which `db gc` removes.
STORE_GROUP_BYTES = 1 << 30
STORE_GROUP_FILES = 4096


@dataclass(frozen=True)
class FileStoreSetting:
    """Where new files go (`database` or `store`), and the store's folder as the studio names it."""

    new_files: str = DATABASE
    folder: str | None = None

    def describe(self) -> str:
        if self.new_files == STORE:
            return f"New files are kept in the file store {self.folder}."
        where = f" (files kept earlier in {self.folder} are read from there)" if self.folder else ""
        return f"New files are kept in the database{where}."


def read_setting(connection: Connection) -> FileStoreSetting:
    """Return the studio's file store setting."""
    rows = dict(
        connection.execute(
            "SELECT key, value FROM studio_settings WHERE key = ANY(%s)",
            ([_FOLDER_KEY, _NEW_FILES_KEY],),
        ).fetchall()
    )
    folder = rows.get(_FOLDER_KEY)
    new_files = STORE if rows.get(_NEW_FILES_KEY) == STORE and folder else DATABASE
    return FileStoreSetting(new_files, folder)


def write_setting(connection: Connection, setting: FileStoreSetting) -> None:
    """Store the studio's file store setting (in the caller's transaction)."""
    values = {_NEW_FILES_KEY: setting.new_files, _FOLDER_KEY: setting.folder}
    for key, value in values.items():
        if value is None:
            connection.execute("DELETE FROM studio_settings WHERE key = %s", (key,))
        else:
            connection.execute(
                "INSERT INTO studio_settings (key, value) VALUES (%s, %s) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )


def local_folder(setting: FileStoreSetting, paths: SharePaths) -> Path | None:
    """Return the store's folder as this machine reaches it, or None when there is none."""
    return paths.to_local(setting.folder) if setting.folder else None


def _new_files_folder(connection: Connection, paths: SharePaths) -> Path | None:
    setting = read_setting(connection)
    folder = local_folder(setting, paths) if setting.new_files == STORE else None
    if folder is not None and folder.is_dir():  # a missing folder gets its own sentence later
        store_identity.check(connection, folder, paths)
    return folder


# -- writing -------------------------------------------------------------------------------------


def upload_files(
    database: Database,
    paths: Sequence[Path],
    total: int,
    progress: ProgressCallback | None = None,
    cancelled: CancelCheck | None = None,
) -> list[FileDigest]:
    """Store the files at `paths` where the setting says; return their digests, in order.

    Into a folder store, each file is copied and the copy hashed, once: the bytes named are the
    bytes hashed. Into the database, a thread hashes each file one step ahead of its upload,
    which hashes again as it sends to catch a file changed meanwhile. `total` is the files'
    size in bytes, for progress. A file stored already is not stored again.
    """
    with database.connect() as connection:
        folder = _new_files_folder(connection, database.share_paths)
    if folder is not None:
        return _upload_to_store(database, folder, paths, None, total, progress, cancelled)
    digests: list[FileDigest] = []
    # hashlib releases the GIL, so the files are read and hashed while earlier ones are sent.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="batchdesk-hash") as hasher:
        futures = [hasher.submit(blob_store.hash_file, path) for path in paths]
        try:
            blob_store.upload(
                database, _collect(paths, futures, digests, cancelled), total, progress, cancelled
            )
        finally:
            for future in futures:
                future.cancel()
    return digests


def _collect(
    paths: Sequence[Path],
    futures: Sequence["Future[FileDigest]"],
    into: list[FileDigest],
    cancelled: CancelCheck | None,
) -> Iterator[tuple[Path, FileDigest]]:
    """Yield each file with its digest as the hashing thread finishes it, keeping the digests."""
    for path, future in zip(paths, futures, strict=True):
        if cancelled and cancelled():
            raise Cancelled("The submission was cancelled; no batch was created.")
        digest = future.result()
        into.append(digest)
        yield path, digest


def upload(
    database: Database,
    items: Sequence[tuple[Path, FileDigest]],
    total: int,
    progress: ProgressCallback | None = None,
    cancelled: CancelCheck | None = None,
) -> None:
    """Store files whose digests are known where the setting says, as `upload_files`.

    Raises FileProblem when a file no longer has its digest.
    """
    with database.connect() as connection:
        folder = _new_files_folder(connection, database.share_paths)
    if folder is None:
        blob_store.upload(database, items, total, progress, cancelled)
        return
    paths = [path for path, _ in items]
    expected = [digest for _, digest in items]
    _upload_to_store(database, folder, paths, expected, total, progress, cancelled)


def _upload_to_store(
    database: Database,
    folder: Path,
    paths: Sequence[Path],
    expected: Sequence[FileDigest] | None,
    total: int,
    progress: ProgressCallback | None,
    cancelled: CancelCheck | None,
) -> list[FileDigest]:
    """Copy the files into the store a group at a time; each group's rows commit once it is durable.

    A group is about STORE_GROUP_BYTES (or STORE_GROUP_FILES): its files are copied and flushed,
    then named together, then their rows inserted in one short transaction.
    """
    folder_store.check_folder(folder)
    done = 0
    if progress:
        progress(0, total)

    def count(size: int) -> None:
        nonlocal done
        done += size
        if progress:
            progress(done, total)

    digests: list[FileDigest] = []
    index = 0
    while index < len(paths):
        start = index
        with folder_store.Writes(folder) as writes:
            while (
                index < len(paths)
                and writes.copied_bytes < STORE_GROUP_BYTES
                and index - start < STORE_GROUP_FILES
            ):
                if cancelled and cancelled():
                    raise Cancelled("The submission was cancelled; no batch was created.")
                want = expected[index].sha256 if expected is not None else None
                writes.add(paths[index], want, count, cancelled)
                index += 1
            copies = writes.files()
            group = [FileDigest(c.sha256, c.size) for c in copies]
            with database.begin() as connection:
                stored = blob_store.existing(connection, group)
                writes.publish(skip=stored)
                todo = _unique(zip(paths[start:index], group, strict=True))
                new = [item for sha, item in todo.items() if sha not in stored]
                store_gc.hold(connection, folder, new)  # from `db gc`, until the rows commit
                crcs = {c.sha256: c.crc32 for c in copies}
                _insert_rows(connection, [(d, crcs[d.sha256]) for _, d in new])
        digests.extend(group)
    return digests


def store_in_transaction(
    connection: Connection, items: Sequence[tuple[Path, FileDigest]], paths: SharePaths
) -> int:
    """Store the files not stored yet inside the caller's transaction; return bytes written.

    As `blob_store.store_in_transaction`: files already stored are held until the caller
    commits. With a folder store, the new files are durable in the folder before this returns,
    so before the caller can commit the rows that reference them.
    """
    folder = _new_files_folder(connection, paths)
    if folder is None:
        return blob_store.store_in_transaction(connection, items)
    unique = _unique(items)
    stored = blob_store.hold(connection, unique)
    todo = [item for sha, item in unique.items() if sha not in stored]
    puts = [folder_store.put(folder, path, d.sha256, d.size) for path, d in todo]
    sent = sum(put.written for put in puts)
    sent += store_gc.hold(connection, folder, todo)  # from `db gc`, until the caller commits
    _insert_rows(connection, [(d, put.crc32) for (_, d), put in zip(todo, puts, strict=True)])
    return sent


def _unique(items: Iterable[tuple[Path, FileDigest]]) -> dict[bytes, tuple[Path, FileDigest]]:
    unique: dict[bytes, tuple[Path, FileDigest]] = {}
    for path, digest in items:
        unique.setdefault(digest.sha256, (path, digest))
    return unique


def _insert_rows(connection: Connection, files: Sequence[tuple[FileDigest, int | None]]) -> None:
    """Insert the rows of files just made durable in the store, with their CRC-32 if known."""
    if not files:
        return
    # In hash order, as blob_store inserts: two writers of overlapping files never deadlock.
    connection.execute(
        "INSERT INTO blobs (sha256, size, location, crc32) "
        "SELECT u.sha256, u.size, 'store', u.crc32 "
        "FROM unnest(%s::bytea[], %s::bigint[], %s::bigint[]) AS u(sha256, size, crc32) "
        "ORDER BY u.sha256 ON CONFLICT (sha256) DO NOTHING",
        ([d.sha256 for d, _ in files], [d.size for d, _ in files], [crc for _, crc in files]),
    )


# -- reading -------------------------------------------------------------------------------------


def head(connection: Connection, sha256: bytes, paths: SharePaths, count: int = 64) -> bytes:
    """Return a stored file's first `count` bytes, from wherever it is, for reading its header.

    Not checked against the file's hash (reading the whole file does that). Empty when they
    cannot be read now: no such file, a store folder that is not set or not reachable.
    """
    row = connection.execute(
        "SELECT substring(data from 1 for %s) FROM blob_chunks "
        "WHERE sha256 = %s AND chunk_index = 0",
        (count, sha256),
    ).fetchone()
    if row is not None:  # in the database: one query, as for most files
        return bytes(row[0])
    place = _place(connection, sha256)
    if place is None or place.location == DATABASE or place.folder is None:
        return b""
    try:
        path = paths.to_local(place.folder) / folder_store.relative_path(sha256)
        with path.open("rb") as file:
            return file.read(count)
    except OSError:
        return b""


def chunk_views(
    connection: Connection, sha256: bytes, paths: SharePaths
) -> Iterator[bytes | memoryview]:
    """`chunks`, with a database file's chunks as views of the protocol's buffer (the fastest).

    Write each chunk before asking for the next (see `blob_store.stream_chunk_views`).
    """
    yield from _follow(connection, sha256, paths, blob_store.stream_chunk_views)


def chunks(
    connection: Connection, sha256: bytes, paths: SharePaths, *, streamed: bool = True
) -> Iterator[bytes]:
    """Yield a stored file's bytes in order, from wherever they are; nothing if it is gone.

    `streamed` reads a database file in one streamed query (fastest, but stopping early aborts
    the connection's transaction: see `blob_store.stream_chunks`); False reads it a chunk per
    query. A file in the store is checked as it is read (see `folder_store.read`).
    """
    read = blob_store.stream_chunks if streamed else blob_store.read_chunks
    for chunk in _follow(connection, sha256, paths, read):
        yield chunk if isinstance(chunk, bytes) else bytes(chunk)


@dataclass(frozen=True)
class _Place:
    location: str
    size: int
    folder: str | None  # the store's folder as the studio names it
    crc32: int | None  # what a read from the store checks (None: its sha256)


def _place(connection: Connection, sha256: bytes) -> _Place | None:
    """Return where a stored file's bytes are, or None when it is not stored (any more)."""
    row = connection.execute(
        "SELECT b.location, b.size, (SELECT value FROM studio_settings WHERE key = %s), b.crc32 "
        "FROM blobs b WHERE b.sha256 = %s",
        (_FOLDER_KEY, sha256),
    ).fetchone()
    return None if row is None else _Place(str(row[0]), int(row[1]), row[2], row[3])


def _store_chunks(
    connection: Connection, place: _Place, sha256: bytes, paths: SharePaths
) -> Iterator[bytes]:
    if place.folder is None:
        raise NotFound(
            f"The stored file {sha256.hex()[:12]} is kept in the file store, but no file store "
            "folder is set in the studio settings."
        )
    root = paths.to_local(place.folder)
    try:
        yield from folder_store.read(root, sha256, place.size, place.crc32)
    except NotFound as exc:
        if not isinstance(exc, folder_store.DamagedFile):
            store_identity.check(connection, root, paths)  # the wrong folder, not a lost file?
        raise


# A file moves at most once per `db move-files` run: following it three times in one read is
# more than enough.
_MOVES_FOLLOWED = 3


def _follow(
    connection: Connection,
    sha256: bytes,
    paths: SharePaths,
    from_database: Callable[[Connection, bytes], Iterator[bytes | memoryview]],
) -> Iterator[bytes | memoryview]:
    """Yield a file's bytes from where they are, following them if they move meanwhile.

    A reader looks up where the file is and then reads it in another statement, with no lock
    (a viewer may not take one): `db move-files` may move the file in between, and deletes the
    old copy once the new one is committed. The bytes the old place stops giving (its chunks
    gone, its file deleted) are read on from the new place, which holds the same bytes.
    """
    done = 0
    place = _place(connection, sha256)
    for _ in range(_MOVES_FOLLOWED):
        if place is None:
            return
        position = 0
        try:
            source = (
                from_database(connection, sha256)
                if place.location == DATABASE
                else _store_chunks(connection, place, sha256, paths)
            )
            for chunk in source:
                end = position + len(chunk)
                if end > done:
                    yield chunk if position >= done else chunk[done - position :]
                    done = end
                position = end
        except (NotFound, folder_store.StoreUnavailable):
            now = _place(connection, sha256)
            if now is None or now.location == place.location:
                raise
            place = now
            continue
        if done >= place.size:
            return
        now = _place(connection, sha256)
        if now is None or now.location == place.location:
            return  # cut short where it is: the caller, knowing the size, says so
        place = now
    raise NotFound(f"The stored file {sha256.hex()[:12]} kept moving while it was read; try again.")


def damaged_store_files(connection: Connection, paths: SharePaths) -> Iterator[str]:
    """Read every file kept in the store and yield a sentence for each one missing or damaged."""
    folder = read_setting(connection).folder
    rows = connection.execute(
        "SELECT sha256, size, crc32 FROM blobs WHERE location = 'store' ORDER BY sha256"
    ).fetchall()
    if rows and folder is None:
        yield f"{len(rows):,} files are kept in the file store, but no folder is set."
        return
    if rows and folder is not None:
        try:
            store_identity.check(connection, paths.to_local(folder), paths)
        except store_identity.WrongStore as exc:
            yield f"{exc} None of its {len(rows):,} files were checked."
            return
    for sha256, size, crc32 in rows:
        assert folder is not None
        problem = folder_store.verify(paths.to_local(folder), bytes(sha256), int(size), crc32)
        now = _place(connection, bytes(sha256)) if problem else None
        if problem and now is not None and now.location == STORE:  # not moved out meanwhile
            yield problem
