"""Content-addressed file storage in the database: each distinct file's bytes stored once.

A file is keyed by its sha256 and written as 1 MiB chunks, so neither writing nor reading ever
holds a whole file in memory. A `blobs` row and all of its chunks commit in one transaction, so
a blob that exists is complete. Uploads run in their own transactions of a few dozen megabytes,
before the batch is created: a blob nobody references yet is harmless and is removed by
`delete_unreferenced`, while the batch's own transaction stays small.
"""

import hashlib
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from batchdesk.errors import Cancelled, FileProblem, NotFound
from batchdesk.storage.database import Database
from batchdesk.storage.pool import Connection

CHUNK_SIZE = 1 << 20
TRANSACTION_BYTES = 64 << 20
# Serialises deleting unreferenced blobs against transactions that start referencing them.
BLOB_GC_LOCK_KEY = 0x62617463_68646B02

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


def _transaction_groups(
    items: Iterable[tuple[Path, FileDigest]],
) -> Iterator[list[tuple[Path, FileDigest]]]:
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
    for group in _transaction_groups(items):
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
    """Store the files not stored yet inside the caller's transaction; return bytes sent."""
    unique: dict[bytes, tuple[Path, FileDigest]] = {}
    for path, digest in items:
        unique.setdefault(digest.sha256, (path, digest))
    stored = existing(connection, (d for _, d in unique.values()))
    todo = [item for sha, item in unique.items() if sha not in stored]
    return _upload_group(connection, todo, 0, 0, None, None)


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


def delete_unreferenced(connection: Connection, candidates: Iterable[bytes]) -> int:
    """Delete those of `candidates` that no job references any more; return how many went.

    Runs inside the caller's transaction, holding the blob lock that batch creation shares, so
    a batch being created cannot lose a blob it has just checked.
    """
    hashes = list(set(candidates))
    if not hashes:
        return 0
    connection.execute("SELECT pg_advisory_xact_lock(%s)", (BLOB_GC_LOCK_KEY,))
    deleted = connection.execute(
        "DELETE FROM blobs b WHERE b.sha256 = ANY(%s) "
        "AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.input_sha256 = b.sha256) "
        "AND NOT EXISTS (SELECT 1 FROM job_outputs o WHERE o.sha256 = b.sha256)",
        (hashes,),
    ).rowcount
    return int(deleted)
