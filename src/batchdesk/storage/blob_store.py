"""Content-addressed file storage in the database: each distinct file's bytes stored once.

A file is keyed by its sha256 and written as 1 MiB chunks, so neither writing nor reading ever
holds a whole file in memory. A `blobs` row and all of its chunks commit in one transaction, so
a blob that exists is complete. Uploads run in their own transactions of a few dozen megabytes,
before the batch is created, so the batch's own transaction stays small; a submission cut short
after some uploads committed leaves files no job uses, which `collect_garbage` (`batchdesk db
gc`) removes once they are older than the grace period.

Using a stored file and deleting it are kept apart by row locks. Whoever starts using a file
(a submission creating its jobs, a worker storing an output) first locks its `blobs` row FOR
KEY SHARE, or inserts it; whoever deletes unused files locks their rows FOR UPDATE SKIP LOCKED
and deletes only those that, seen afresh, no job uses. A user never waits for a deletion of
more than one round, never finds a file half gone, and a deleter passes over files in use.
"""

import hashlib
import struct
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from psycopg import sql

from batchdesk.errors import Cancelled, FileProblem, NotFound
from batchdesk.storage.database import Database
from batchdesk.storage.pool import Connection

CHUNK_SIZE = 1 << 20
TRANSACTION_BYTES = 64 << 20

ProgressCallback = Callable[[int, int], None]  # (bytes done, bytes in all)
CancelCheck = Callable[[], bool]


@dataclass(frozen=True)
class FileDigest:
    sha256: bytes
    size: int

    @property
    def hex(self) -> str:
        return self.sha256.hex()


def _read_chunks(stream: BinaryIO) -> Iterator[bytes]:
    while chunk := stream.read(CHUNK_SIZE):
        yield chunk


def _open(path: Path) -> BinaryIO:
    try:
        return path.open("rb")
    except OSError as exc:
        raise FileProblem(f"Cannot read {path}: {exc.strerror or exc}.") from exc


def hash_file(path: Path, on_bytes: Callable[[int], None] | None = None) -> FileDigest:
    """Return the sha256 and size of the file at `path`, reading it a chunk at a time."""
    digest = hashlib.sha256()
    size = 0
    with _open(path) as stream:
        try:
            for chunk in _read_chunks(stream):
                digest.update(chunk)
                size += len(chunk)
                if on_bytes:
                    on_bytes(len(chunk))
        except OSError as exc:
            raise FileProblem(f"Cannot read {path}: {exc.strerror or exc}.") from exc
    return FileDigest(digest.digest(), size)


def existing(connection: Connection, digests: Iterable[FileDigest]) -> set[bytes]:
    """Return the hashes among `digests` that are already stored."""
    hashes = list({d.sha256 for d in digests})
    if not hashes:
        return set()
    cursor = connection.cursor()
    rows = cursor.execute("SELECT sha256 FROM blobs WHERE sha256 = ANY(%s)", (hashes,)).fetchall()
    return {bytes(row[0]) for row in rows}


def transaction_groups(
    items: Iterable[tuple[Path, FileDigest]],
) -> Iterator[list[tuple[Path, FileDigest]]]:
    """Split `items` into groups of about TRANSACTION_BYTES, each stored in one transaction."""
    group: list[tuple[Path, FileDigest]] = []
    group_bytes = 0
    for item in items:
        if group and group_bytes + item[1].size > TRANSACTION_BYTES:
            yield group
            group, group_bytes = [], 0
        group.append(item)
        group_bytes += item[1].size
    if group:
        yield group


def upload(
    database: Database,
    items: Iterable[tuple[Path, FileDigest]],
    total: int,
    progress: ProgressCallback | None = None,
    cancelled: CancelCheck | None = None,
) -> int:
    """Store the files not stored yet, a transaction per group; return how many bytes were sent.

    `items` may be produced lazily (hashed ahead on another thread), and `total` is their size
    in bytes: progress counts a file already stored as done as soon as that is known. Two
    workstations uploading the same file at once is fine: the second one's insert of the
    `blobs` row waits for the first to commit, then skips the file.
    """
    done = sent = 0
    if progress:
        progress(0, total)
    for group in transaction_groups(items):
        if cancelled and cancelled():
            raise Cancelled("The submission was cancelled; no batch was created.")
        unique: dict[bytes, tuple[Path, FileDigest]] = {}
        for path, digest in group:
            unique.setdefault(digest.sha256, (path, digest))
        with database.begin() as connection:
            stored = existing(connection, (d for _, d in unique.values()))
            todo = [item for sha, item in unique.items() if sha not in stored]
            done += sum(d.size for _, d in group) - sum(d.size for _, d in todo)
            group_sent = _upload_group(connection, todo, done, total, progress, cancelled)
        done += group_sent
        sent += group_sent
        if progress:
            progress(done, total)
    return sent


def store_in_transaction(connection: Connection, items: Sequence[tuple[Path, FileDigest]]) -> int:
    """Store the files not stored yet inside the caller's transaction; return bytes sent.

    Those already stored are held (FOR KEY SHARE) until the caller commits, so the caller can
    go on to reference them: a file being deleted at this moment counts as not stored.
    """
    unique: dict[bytes, tuple[Path, FileDigest]] = {}
    for path, digest in items:
        unique.setdefault(digest.sha256, (path, digest))
    stored = hold(connection, unique)
    todo = [item for sha, item in unique.items() if sha not in stored]
    return _upload_group(connection, todo, 0, 0, None, None)


def hold(connection: Connection, hashes: Iterable[bytes]) -> set[bytes]:
    """Hold the stored files among `hashes` against deletion until commit; return them.

    A file being deleted at this moment is waited for and then counts as not stored. Rows are
    locked in hash order, as uploads insert them, so two holders never wait on each other.
    """
    wanted = sorted(set(hashes))
    if not wanted:
        return set()
    rows = connection.execute(
        "SELECT sha256 FROM blobs WHERE sha256 = ANY(%s) ORDER BY sha256 FOR KEY SHARE",
        (wanted,),
    ).fetchall()
    return {bytes(row[0]) for row in rows}


def _upload_group(
    connection: Connection,
    group: list[tuple[Path, FileDigest]],
    done: int,
    total: int,
    progress: ProgressCallback | None,
    cancelled: CancelCheck | None,
) -> int:
    if not group:
        return 0
    cursor = connection.cursor()
    # In hash order: two workstations uploading overlapping files insert their rows in the same
    # order, so neither can hold one row while waiting for a row the other holds.
    rows = cursor.execute(
        "INSERT INTO blobs (sha256, size) "
        "SELECT * FROM unnest(%s::bytea[], %s::bigint[]) AS u(sha256, size) ORDER BY sha256 "
        "ON CONFLICT (sha256) DO NOTHING RETURNING sha256",
        ([d.sha256 for _, d in group], [d.size for _, d in group]),
    ).fetchall()
    owned = {bytes(row[0]) for row in rows}
    sent = 0
    with cursor.copy(
        "COPY blob_chunks (sha256, chunk_index, data) FROM STDIN (FORMAT BINARY)"
    ) as copy:
        copy.set_types(["bytea", "int4", "bytea"])
        for path, digest in group:
            if digest.sha256 not in owned:
                continue
            check = hashlib.sha256()
            with _open(path) as stream:
                for index, chunk in enumerate(_read_chunks(stream)):
                    if cancelled and cancelled():
                        raise Cancelled("The submission was cancelled; no batch was created.")
                    check.update(chunk)
                    copy.write_row((digest.sha256, index, chunk))
                    sent += len(chunk)
                    if progress:
                        progress(done + sent, total)
            if check.digest() != digest.sha256:
                raise FileProblem(
                    f"{path} changed while it was being submitted; submit it again once it is "
                    "written completely."
                )
    return sent


def read_chunks(connection: Connection, sha256: bytes) -> Generator[bytes, None, None]:
    """Yield the stored bytes of one blob in order, a chunk at a time."""
    index = 0
    while True:
        row = connection.execute(
            "SELECT data FROM blob_chunks WHERE sha256 = %s AND chunk_index = %s",
            (sha256, index),
            binary=True,  # raw bytes on the wire; the text format sends bytea as hex
        ).fetchone()
        if row is None:
            return
        yield bytes(row[0])
        index += 1


# A binary COPY's header: signature, flags, then the length of an extension area to skip.
_COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
_COPY_HEADER = struct.Struct("!11sii")
# Each row: its number of fields (-1 ends the data), then chunk_index (length 4, value), then
# the length of the chunk's bytes, which follow.
_COPY_ROW = struct.Struct("!hiii")
_COPY_END = struct.Struct("!h")


def stream_chunks(connection: Connection, sha256: bytes) -> Iterator[bytes]:
    """Yield a blob's bytes in one streamed query, for reading whole files quickly.

    The server sends the next chunks while the caller writes this one (an export is ~30%
    faster than with one query per chunk). Stopping early cancels the statement, which aborts
    the connection's transaction: callers that may stop early and go on using the connection
    use `read_chunks`.
    """
    expected = 0
    with connection.cursor() as cursor:
        rows = cursor.stream(
            "SELECT chunk_index, data FROM blob_chunks WHERE sha256 = %s ORDER BY chunk_index",
            (sha256,),
            binary=True,
        )
        for index, data in rows:
            if index != expected:
                name = sha256.hex()[:12]
                raise NotFound(f"The stored file {name} is incomplete: part {expected} is missing.")
            expected += 1
            yield bytes(data)


def stream_chunk_views(connection: Connection, sha256: bytes) -> Generator[memoryview, None, None]:
    """`stream_chunks` by a binary COPY: each chunk is a view of the protocol's own buffer.

    No result row and no copy into `bytes` per chunk: a third less client CPU for a runner's
    inputs (bench/README.md). Write each view before asking for the next. Stopping early
    aborts the connection's transaction, as with `stream_chunks`.
    """
    query = sql.SQL(
        "COPY (SELECT chunk_index, data FROM blob_chunks WHERE sha256 = {} "
        "ORDER BY chunk_index) TO STDOUT (FORMAT binary)"
    ).format(sql.Literal(sha256))
    expected = 0
    with connection.cursor() as cursor, cursor.copy(query) as copy:
        header = True
        for block in copy:
            view = memoryview(block)
            if header:
                signature, _flags, extension = _COPY_HEADER.unpack_from(view)
                if signature != _COPY_SIGNATURE:
                    raise RuntimeError("the server's binary COPY has an unknown header")
                view = view[_COPY_HEADER.size + extension :]
                header = False
            # The server sends one row per message; the header and the end come with a row
            # or alone.
            while len(view) >= 2:
                if _COPY_END.unpack_from(view)[0] == -1:
                    break  # the end of the data: the loop reads on to the end of the COPY
                _fields, _size, index, length = _COPY_ROW.unpack_from(view)
                data = view[_COPY_ROW.size : _COPY_ROW.size + length]
                if len(data) != length:
                    raise RuntimeError("a row of the server's binary COPY spans two messages")
                if index != expected:
                    name = sha256.hex()[:12]
                    raise NotFound(
                        f"The stored file {name} is incomplete: part {expected} is missing."
                    )
                expected += 1
                yield data
                view = view[_COPY_ROW.size + length :]


@dataclass(frozen=True)
class BlobCount:
    files: int
    bytes: int
    in_store: int = 0  # of `files`, those whose bytes are in the file store (gone at its gc)


def delete_unreferenced(connection: Connection, candidates: Iterable[bytes]) -> BlobCount:
    """Delete those of `candidates` that no job uses any more; return how many went.

    Runs inside the caller's transaction (deleting a batch). A candidate that another
    transaction is taking hold of right now is left for `collect_garbage`.
    """
    hashes = sorted(set(candidates))
    if not hashes:
        return BlobCount(0, 0)
    return _lock_and_delete(connection, "b.sha256 = ANY(%s)", [hashes], len(hashes))


# Files no job uses are kept this long after their upload: a submission still uploading (or
# about to create its batch) is never robbed of its files.
GRACE_SECONDS = 3600
# Files deleted per transaction: each transaction stays short whatever the garbage.
GC_ROUND = 200

_UNREFERENCED = (
    "NOT EXISTS (SELECT 1 FROM jobs j WHERE j.input_sha256 = b.sha256) "
    "AND NOT EXISTS (SELECT 1 FROM job_outputs o WHERE o.sha256 = b.sha256)"
)


@dataclass(frozen=True)
class UnreferencedBlobs:
    """Stored files no job uses: all of them, and those still within the grace period."""

    files: int
    bytes: int
    recent_files: int
    recent_bytes: int


def unreferenced(connection: Connection, grace_seconds: float = GRACE_SECONDS) -> UnreferencedBlobs:
    """Count the stored files no job uses, and those among them younger than the grace period."""
    row = connection.execute(
        "SELECT count(*), coalesce(sum(size), 0), "
        "count(*) FILTER (WHERE created_at >= now() - make_interval(secs => %s)), "
        "coalesce(sum(size) FILTER (WHERE created_at >= now() - make_interval(secs => %s)), 0) "
        f"FROM blobs b WHERE {_UNREFERENCED}",
        (grace_seconds, grace_seconds),
    ).fetchone()
    assert row is not None
    return UnreferencedBlobs(int(row[0]), int(row[1]), int(row[2]), int(row[3]))


def delete_unreferenced_older_than(
    connection: Connection, grace_seconds: float, limit: int = GC_ROUND
) -> BlobCount:
    """Delete up to `limit` stored files no job uses, uploaded over `grace_seconds` ago.

    Runs in the caller's transaction. The files are first locked (FOR UPDATE), skipping any
    that a transaction is taking hold of right now (a submission or a worker holds the files it
    uses FOR KEY SHARE until it commits), then deleted only if, seen afresh, still no job uses
    them: nobody can start using a file while it is locked, and any use committed before is seen.
    """
    where = "b.created_at < now() - make_interval(secs => %s)"
    return _lock_and_delete(connection, where, [grace_seconds], limit)


def _lock_and_delete(
    connection: Connection, where: str, params: list[object], limit: int
) -> BlobCount:
    locked = connection.execute(
        f"SELECT sha256 FROM blobs b WHERE {where} AND {_UNREFERENCED} "
        "ORDER BY sha256 LIMIT %s FOR UPDATE SKIP LOCKED",
        [*params, limit],
    ).fetchall()
    if not locked:
        return BlobCount(0, 0)
    # A new statement sees every use committed until the rows were locked.
    deleted = connection.execute(
        f"DELETE FROM blobs b WHERE b.sha256 = ANY(%s) AND {_UNREFERENCED} "
        "RETURNING size, location = 'store'",
        ([bytes(row[0]) for row in locked],),
    ).fetchall()
    return BlobCount(
        len(deleted), sum(int(row[0]) for row in deleted), sum(1 for row in deleted if row[1])
    )


def collect_garbage(
    database: Database, *, delete: bool, grace_seconds: float = GRACE_SECONDS
) -> BlobCount:
    """Delete (or with `delete` False, only count) the stored files no job uses, past the grace.

    Deletes a round of files per transaction until none is left; files in use by a transaction
    at that moment are passed over and looked at again by the next run.
    """
    if not delete:
        with database.connect() as connection:
            found = unreferenced(connection, grace_seconds)
        return BlobCount(found.files - found.recent_files, found.bytes - found.recent_bytes)
    files = size = 0
    while True:
        with database.begin() as connection:
            done = delete_unreferenced_older_than(connection, grace_seconds)
        files += done.files
        size += done.bytes
        if done.files == 0:
            return BlobCount(files, size)


def store_rows_kept(
    connection: Connection, hashes: Sequence[bytes], grace_seconds: float | None
) -> set[bytes]:
    """Return those of `hashes` that a row with location `store` names (the file store's gc).

    With `grace_seconds`, leave out the rows `collect_garbage` would delete with that grace,
    so a dry run counts their files as gone too.
    """
    if grace_seconds is None:
        rows = connection.execute(
            "SELECT sha256 FROM blobs WHERE location = 'store' AND sha256 = ANY(%s)",
            (list(hashes),),
            binary=True,  # hashes as bytes on the wire both ways, not escaped text
        ).fetchall()
    else:
        rows = connection.execute(
            "SELECT sha256 FROM blobs b WHERE location = 'store' AND sha256 = ANY(%s) "
            f"AND NOT (b.created_at < now() - make_interval(secs => %s) AND {_UNREFERENCED})",
            (list(hashes), grace_seconds),
            binary=True,
        ).fetchall()
    return {bytes(row[0]) for row in rows}
