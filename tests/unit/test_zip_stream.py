"""The streaming zip writer: Zip64 where sizes need it, sizes checked, stored or deflated."""

import shutil
import struct
import subprocess
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from batchdesk.export.zip_stream import ZipStream, zip_time

MIB = 1024 * 1024
GIB = 1024 * MIB
ZIP64_EXTRA_ID = 0x0001


def zeros(size: int) -> Iterator[bytes]:
    block = bytes(8 * MIB)
    while size > 0:
        yield block[: min(size, len(block))]
        size -= len(block)


def zip64_extra_present(extra: bytes) -> bool:
    offset = 0
    while offset + 4 <= len(extra):
        header_id, length = struct.unpack_from("<HH", extra, offset)
        if header_id == ZIP64_EXTRA_ID:
            return True
        offset += 4 + length
    return False


def test_images_are_stored_and_other_files_deflated(tmp_path: Path) -> None:
    target = tmp_path / "small.zip"
    with target.open("wb") as stream:
        archive = ZipStream(stream)
        archive.add_chunks("b/a.png", 3, "image/png", [b"png"])
        archive.add_chunks("b/a.jpg", 3, "image/jpeg", [b"jpg"])
        archive.add_chunks("b/m.csv", 2000, "text/csv", [b"x" * 2000])
        archive.finish("comment")
    with zipfile.ZipFile(target) as read:
        assert [i.compress_type for i in read.infolist()] == [
            zipfile.ZIP_STORED,
            zipfile.ZIP_STORED,
            zipfile.ZIP_DEFLATED,
        ]
        assert read.read("b/m.csv") == b"x" * 2000
        assert read.read("b/a.png") == b"png"
        assert read.testzip() is None  # every entry's CRC checked
        assert read.comment == b"comment"
        assert not any(zip64_extra_present(i.extra) for i in read.infolist())


def test_a_stream_shorter_than_declared_is_refused(tmp_path: Path) -> None:
    with (tmp_path / "short.zip").open("wb") as stream:
        archive = ZipStream(stream)
        with pytest.raises(ValueError, match="3 bytes arrived where 5 were declared"):
            archive.add_chunks("a.png", 5, "image/png", [b"abc"])
        archive.abandon()


def test_times_before_1980_are_clamped_and_aware_times_become_local() -> None:
    assert zip_time(datetime(1970, 1, 1, tzinfo=UTC)) == (1980, 1, 1, 0, 0, 0)
    moment = datetime(2026, 11, 28, 12, 30, 5, tzinfo=UTC)
    local = moment.astimezone()
    assert zip_time(moment) == (2026, 11, 28, local.hour, local.minute, 5)


@pytest.mark.slow
def test_a_batch_past_4_gib_gets_zip64_records_and_reads_back(tmp_path: Path) -> None:
    # Stored, as PNG outputs are: 4.6 GiB on disk, written and read back in a stream.
    sizes = {"batch/first.png": int(1.5 * GIB), "batch/big.png": 3 * GIB + 7, "batch/last.png": 1}
    target = tmp_path / "huge.zip"
    with target.open("wb") as stream:
        archive = ZipStream(stream)
        for name, size in sizes.items():
            archive.add_chunks(name, size, "image/png", zeros(size))
        archive.finish()

    with zipfile.ZipFile(target) as read:
        infos = {info.filename: info for info in read.infolist()}
        assert {name: info.file_size for name, info in infos.items()} == sizes
        assert infos["batch/last.png"].header_offset > 4 * GIB
        assert zip64_extra_present(infos["batch/big.png"].extra)
        assert zip64_extra_present(infos["batch/last.png"].extra)  # its offset needs 64 bits
        assert read.testzip() is None  # every CRC checked
    if shutil.which("unzip"):  # a second, independent reader where there is one
        checked = subprocess.run(["unzip", "-tqq", str(target)], capture_output=True, check=False)
        assert checked.returncode == 0, checked.stdout + checked.stderr
