"""Reading a stored file back whole: the streamed ways give exactly the bytes uploaded."""

import os
from pathlib import Path

import pytest

from batchdesk.errors import NotFound
from batchdesk.storage import blob_store
from batchdesk.storage.blob_store import CHUNK_SIZE
from batchdesk.storage.database import Database


def stored_file(database: Database, tmp_path: Path, size: int) -> tuple[bytes, bytes]:
    """Upload `size` random bytes; return their sha256 and the bytes."""
    data = os.urandom(size)
    path = tmp_path / f"file-{size}.bin"
    path.write_bytes(data)
    digest = blob_store.hash_file(path)
    blob_store.upload(database, [(path, digest)], size)
    return digest.sha256, data


@pytest.mark.parametrize("size", [1, CHUNK_SIZE, 2 * CHUNK_SIZE + 12_345])
def test_a_file_streamed_by_copy_is_the_file_uploaded(
    database: Database, tmp_path: Path, size: int
) -> None:
    sha256, data = stored_file(database, tmp_path, size)
    with database.connect() as connection:
        views = b"".join(bytes(v) for v in blob_store.stream_chunk_views(connection, sha256))
        rows = b"".join(blob_store.stream_chunks(connection, sha256))
        # The connection goes on working after a whole COPY.
        assert connection.execute("SELECT 1").fetchone() == (1,)
    assert views == data
    assert rows == data


def test_a_file_with_a_missing_part_is_reported_incomplete(
    database: Database, tmp_path: Path
) -> None:
    sha256, _ = stored_file(database, tmp_path, 3 * CHUNK_SIZE)
    with database.connect() as connection:
        # Seen by the stream on the same connection, and never committed.
        connection.execute(
            "DELETE FROM blob_chunks WHERE sha256 = %s AND chunk_index = 1", (sha256,)
        )
        with pytest.raises(NotFound, match="part 1 is missing"):
            for _ in blob_store.stream_chunk_views(connection, sha256):
                pass
