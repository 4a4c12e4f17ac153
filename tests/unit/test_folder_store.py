"""The folder store: content-addressed, written whole or not at all, checked when read."""

import hashlib
import os
import zlib
from pathlib import Path

import pytest

from batchdesk.errors import FileProblem, NotFound
from batchdesk.storage import folder_store
from batchdesk.storage.folder_store import DamagedFile, StoreUnavailable


def make_file(path: Path, content: bytes) -> tuple[Path, bytes]:
    path.write_bytes(content)
    return path, hashlib.sha256(content).digest()


def test_a_file_is_stored_under_its_hash_in_fan_out_folders(tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    source, sha = make_file(tmp_path / "a.png", b"pixels" * 1000)

    put = folder_store.put(store, source, sha, 6000)

    name = sha.hex()
    assert put.written == 6000
    assert put.crc32 == zlib.crc32(source.read_bytes())  # the CRC reads check, from zlib's own
    assert (store / name[:2] / name[2:4] / name).read_bytes() == source.read_bytes()
    assert b"".join(folder_store.read(store, sha, 6000)) == source.read_bytes()
    leftovers = [p for p in store.rglob("*") if p.name.startswith(folder_store.TEMPORARY_PREFIX)]
    assert leftovers == []


def test_a_file_already_present_is_not_written_again(tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    source, sha = make_file(tmp_path / "a.png", b"same bytes")
    folder_store.put(store, source, sha, 10)
    stored = store / folder_store.relative_path(sha)
    before = stored.stat()

    assert folder_store.put(store, source, sha, 10) == folder_store.Put(0, None)
    assert stored.stat().st_ino == before.st_ino
    assert stored.stat().st_mtime_ns == before.st_mtime_ns


def test_a_source_that_changed_since_hashing_is_refused_and_nothing_is_named(
    tmp_path: Path,
) -> None:
    store = tmp_path / "store"
    store.mkdir()
    source, sha = make_file(tmp_path / "a.png", b"first")
    source.write_bytes(b"later")

    with pytest.raises(FileProblem, match="changed while it was being submitted"):
        folder_store.put(store, source, sha, 5)
    assert [p for p in store.rglob("*") if p.is_file()] == []


def test_a_damaged_stored_file_is_reported_by_its_path(tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    source, sha = make_file(tmp_path / "a.png", b"original bytes")
    folder_store.put(store, source, sha, 14)
    stored = store / folder_store.relative_path(sha)
    stored.write_bytes(b"ORIGINAL bytes")

    with pytest.raises(DamagedFile, match=f"{stored} is damaged"):
        b"".join(folder_store.read(store, sha, 14))
    with pytest.raises(DamagedFile, match=f"{stored} is damaged"):  # by its CRC-32 this time
        b"".join(folder_store.read(store, sha, 14, zlib.crc32(b"original bytes")))
    assert folder_store.verify(store, sha, 14) is not None


def test_reads_check_the_crc_and_db_check_also_the_sha256(tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    source, sha = make_file(tmp_path / "a.png", b"original bytes")
    crc = folder_store.put(store, source, sha, 14).crc32
    assert crc is not None
    assert folder_store.verify(store, sha, 14, crc) is None
    stored = store / folder_store.relative_path(sha)

    # Replaced by bytes whose CRC-32 is recorded as the row's (a row gone wrong): a read
    # trusts the CRC, the thorough check `db check --files` runs does not.
    stored.write_bytes(b"replaced bytes")
    wrong = zlib.crc32(b"replaced bytes")
    assert b"".join(folder_store.read(store, sha, 14, wrong)) == b"replaced bytes"
    assert "is damaged" in (folder_store.verify(store, sha, 14, wrong) or "")
    assert folder_store.whole_crc32(store, sha, 14) is None
    stored.write_bytes(b"original bytes")
    assert folder_store.whole_crc32(store, sha, 14) == crc


def test_a_missing_stored_file_and_a_missing_share_say_which(tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    sha = hashlib.sha256(b"never stored").digest()

    with pytest.raises(NotFound, match="missing from the file store"):
        b"".join(folder_store.read(store, sha, 12))
    with pytest.raises(StoreUnavailable, match="is the share mounted"):
        b"".join(folder_store.read(tmp_path / "not-mounted", sha, 12))
    with pytest.raises(StoreUnavailable, match="is the share mounted"):
        folder_store.check_folder(tmp_path / "not-mounted")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes to read-only folders")
def test_a_folder_this_user_cannot_write_is_refused_with_a_sentence(tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.mkdir(mode=0o555)
    source, sha = make_file(tmp_path / "a.png", b"bytes")

    with pytest.raises(StoreUnavailable, match="permission denied"):
        folder_store.check_folder(store)
    with pytest.raises(StoreUnavailable, match="permission denied"):
        folder_store.put(store, source, sha, 5)


def test_copying_many_small_files_keeps_a_bounded_number_open(tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    sources = [make_file(tmp_path / f"{i}.png", b"small %d" % i)[0] for i in range(600)]
    open_files = []

    with folder_store.Writes(store) as writes:
        for source in sources:  # copying outruns flushing: each flush waits for the disk
            writes.add(source)
            open_files.append(len(os.listdir("/proc/self/fd")))
        writes.publish()

    assert max(open_files) - min(open_files) <= folder_store.IN_FLIGHT + 2
    assert len([p for p in store.rglob("*") if p.is_file()]) == 600
