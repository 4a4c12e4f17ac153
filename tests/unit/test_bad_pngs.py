"""Damaged PNGs whose checksums are right: every pipeline refuses them, with the same sentence.

`original` never decodes, so it must find what a decode would find (pixel data that does not
inflate, rows missing, metadata that unpacks like a bomb) another way; a pipeline that decodes
must say the same thing in the same words. The files are real PNGs written by Pillow and then
taken apart chunk by chunk, changed, and put back together with right checksums.
"""

import os
import random
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, PngImagePlugin

from batchdesk.jobs.image_pipeline import run_pipeline
from batchdesk.jobs.input_buffer import InputBuffer
from batchdesk.jobs.job_failures import JobFailed
from batchdesk.jobs.pipeline_spec import parse_pipeline

FILE = "PL_DXB191_front.png"
ORIGINAL: list[dict[str, Any]] = []
DECODING: list[dict[str, Any]] = [{"op": "output"}]
BOTH = pytest.mark.parametrize("steps", [ORIGINAL, DECODING], ids=["original", "decoding"])
Chunks = list[tuple[bytes, bytes]]


# -- factories --------------------------------------------------------------------------------


def make_png(
    path: Path, size: tuple[int, int] = (120, 90), mode: str = "RGB", **options: Any
) -> Path:
    """Write a PNG of random pixels, so its pixel data is long and does not compress away."""
    path.parent.mkdir(parents=True, exist_ok=True)
    noise = Image.frombytes("RGB", size, random.Random(size[0]).randbytes(size[0] * size[1] * 3))
    image = (
        noise.convert("P", palette=Image.Palette.ADAPTIVE) if mode == "P" else noise.convert(mode)
    )
    image.save(path, format="PNG", **options)
    return path


def read_chunks(path: Path) -> Chunks:
    data = path.read_bytes()
    chunks, position = [], 8
    while position < len(data):
        length, kind = struct.unpack(">I4s", data[position : position + 8])
        chunks.append((kind, data[position + 8 : position + 8 + length]))
        position += 12 + length
    return chunks


def write_chunks(path: Path, chunks: Chunks) -> Path:
    """Write chunks as a PNG file, each with its right checksum."""
    out = bytearray(b"\x89PNG\r\n\x1a\n")
    for kind, data in chunks:
        out += struct.pack(">I4s", len(data), kind) + data
        out += struct.pack(">I", zlib.crc32(kind + data))
    path.write_bytes(bytes(out))
    return path


def with_pixel_stream(path: Path, change: Callable[[bytes], bytes]) -> Path:
    """Rewrite a PNG's pixel data: `change` gets the concatenated IDAT data and returns new data."""
    chunks = read_chunks(path)
    stream = change(b"".join(data for kind, data in chunks if kind == b"IDAT"))
    first = next(i for i, (kind, _) in enumerate(chunks) if kind == b"IDAT")
    rest = [chunk for chunk in chunks if chunk[0] != b"IDAT"]
    return write_chunks(path, [*rest[:first], (b"IDAT", stream), *rest[first:]])


def with_rows(path: Path, change: Callable[[bytes], bytes]) -> Path:
    """Rewrite a PNG's inflated rows (filter bytes included) and compress them again."""
    return with_pixel_stream(path, lambda stream: zlib.compress(change(zlib.decompress(stream))))


def with_chunk(path: Path, kind: bytes, data: bytes, *, after: bytes) -> Path:
    """Add a chunk right after the first chunk of type `after`."""
    chunks = read_chunks(path)
    at = next(i for i, (k, _) in enumerate(chunks) if k == after) + 1
    return write_chunks(path, [*chunks[:at], (kind, data), *chunks[at:]])


def bomb(size: int = 2 << 20) -> bytes:
    """Compressed zeros: a few kilobytes that unpack to `size` bytes."""
    return zlib.compress(b"\0" * size, 9)


# -- helpers ----------------------------------------------------------------------------------


def failure(tmp_path: Path, source: Path, steps: list[dict[str, Any]]) -> str:
    """Return the job's sentence for the file (the same as for its bytes received into memory)."""
    sentence = outcome(tmp_path, source, steps)
    assert sentence != "ok"
    return sentence


def outcome(tmp_path: Path, source: Path, steps: list[dict[str, Any]]) -> str:
    """Return 'ok' or the job's sentence, the same for the file and for its bytes in memory.

    The runner receives an input into memory when it fits its memory budget, into a file
    otherwise: a bad input must be told in the same words either way.
    """
    spec = parse_pipeline("test-pipeline", "", 1, steps)
    data = source.read_bytes()
    results = []
    with InputBuffer(len(data)) as in_memory:
        in_memory.write(data)
        for where, name in ((source, "work-file"), (in_memory, "work-memory")):
            work = tmp_path / name
            work.mkdir(exist_ok=True)
            try:
                run_pipeline(spec, where, work, file_name=FILE)
            except JobFailed as exc:
                results.append(str(exc))
            else:
                results.append("ok")
    assert results[1] == results[0], "the same input read from memory is told differently"
    return results[0]


def pillow_decodes(path: Path) -> bool:
    try:
        with Image.open(path) as image:
            image.load()
    except (OSError, SyntaxError, ValueError):
        return False
    return True


def damaged(detail: str) -> str:
    return (
        f"{FILE} is damaged ({detail}): export it again from the original render and submit the "
        "new file."
    )


# -- pixel data -------------------------------------------------------------------------------


@BOTH
def test_pixel_data_that_does_not_inflate_fails_though_every_checksum_is_right(
    tmp_path: Path, steps: list[dict[str, Any]]
) -> None:
    def corrupt(stream: bytes) -> bytes:
        middle = len(stream) // 2
        return (
            stream[:middle]
            + bytes(b ^ 0xFF for b in stream[middle : middle + 64])
            + stream[middle + 64 :]
        )

    source = with_pixel_stream(make_png(tmp_path / "in" / FILE), corrupt)
    with source.open("rb") as file:
        PngImagePlugin.PngImageFile(file).verify()  # the checksums are right

    assert failure(tmp_path, source, steps) == damaged("its compressed pixel data is corrupt")


@BOTH
def test_pixel_data_that_stops_inside_the_last_row_fails(
    tmp_path: Path, steps: list[dict[str, Any]]
) -> None:
    source = with_rows(make_png(tmp_path / "in" / FILE), lambda rows: rows[:-5])
    assert failure(tmp_path, source, steps) == damaged("its pixel data ends before the last row")


def test_original_refuses_pixel_data_missing_whole_rows(tmp_path: Path) -> None:
    # Pillow decodes this one, leaving the missing rows black; the unchanged file would carry
    # the damage to the customer, so `original` refuses it.
    source = with_rows(make_png(tmp_path / "in" / FILE), lambda rows: rows[: len(rows) // 2])
    assert failure(tmp_path, source, ORIGINAL) == damaged("its pixel data ends before the last row")


@BOTH
def test_a_row_with_an_unknown_filter_type_fails(
    tmp_path: Path, steps: list[dict[str, Any]]
) -> None:
    row = 1 + 120 * 3
    source = with_rows(
        make_png(tmp_path / "in" / FILE),
        lambda rows: rows[: 5 * row] + b"\x07" + rows[5 * row + 1 :],
    )
    assert failure(tmp_path, source, steps) == damaged("its compressed pixel data is corrupt")


@BOTH
def test_pixel_data_whose_zlib_checksum_is_wrong_fails(
    tmp_path: Path, steps: list[dict[str, Any]]
) -> None:
    source = with_pixel_stream(
        make_png(tmp_path / "in" / FILE), lambda stream: stream[:-1] + bytes([stream[-1] ^ 1])
    )
    assert failure(tmp_path, source, steps) == damaged("its compressed pixel data is corrupt")


@BOTH
def test_a_png_with_no_pixel_data_fails(tmp_path: Path, steps: list[dict[str, Any]]) -> None:
    source = make_png(tmp_path / "in" / FILE)
    write_chunks(source, [chunk for chunk in read_chunks(source) if chunk[0] != b"IDAT"])
    assert failure(tmp_path, source, steps) == damaged("it holds no pixel data")


@pytest.mark.parametrize(
    "kind",
    ["RGB", "RGBA", "L", "LA", "P", "1", "I;16", "RGB-interlaced", "P-interlaced", "16-bit-RGBA"],
)
def test_original_delivers_every_intact_kind_of_png(tmp_path: Path, kind: str) -> None:
    mode, _, layout = kind.partition("-")
    options = {"interlace": 1} if layout == "interlaced" else {}
    source = tmp_path / "in" / FILE
    if kind == "16-bit-RGBA":
        # Pillow writes no 16-bit colour PNGs: make the pixel data by hand.
        make_png(source, size=(33, 17))
        header = struct.pack(">IIBBBBB", 33, 17, 16, 6, 0, 0, 0)
        rows = b"".join(b"\0" + os.urandom(33 * 8) for _ in range(17))
        write_chunks(source, [(b"IHDR", header), (b"IDAT", zlib.compress(rows)), (b"IEND", b"")])
    else:
        # An odd size, so that interlacing leaves passes of uneven rows.
        make_png(source, size=(33, 17), mode=mode, **options)
    assert pillow_decodes(source)
    assert outcome(tmp_path, source, ORIGINAL) == "ok"


def inflates_whole(path: Path) -> bool:
    """Tell whether a PNG's pixel data inflates completely, its zlib checksum included."""
    stream = b"".join(data for kind, data in read_chunks(path) if kind == b"IDAT")
    try:
        zlib.decompress(stream)
    except zlib.error:
        return False
    return True


@pytest.mark.parametrize("mode", ["RGB", "P", "I;16", "RGBA-interlaced"])
def test_original_refuses_whatever_pillow_cannot_decode_in_the_same_words(
    tmp_path: Path, mode: str
) -> None:
    # A little fuzzing: bytes of the pixel data changed at random (checksums made right again).
    plain_mode, _, layout = mode.partition("-")
    options = {"interlace": 1} if layout else {}
    pristine = make_png(tmp_path / "pristine.png", size=(40, 30), mode=plain_mode, **options)
    chances = random.Random(plain_mode)
    refused = 0
    for attempt in range(40):
        source = tmp_path / FILE
        source.write_bytes(pristine.read_bytes())

        def scramble(stream: bytes) -> bytes:
            changed = bytearray(stream)
            for _ in range(chances.randrange(1, 4)):
                changed[chances.randrange(len(changed))] = chances.randrange(256)
            return bytes(changed)

        with_pixel_stream(source, scramble)
        original = outcome(tmp_path, source, ORIGINAL)
        if pillow_decodes(source):
            # Pillow stops reading once it has every row, so it may never see the stream's own
            # checksum, which says these pixels are not the ones that were written.
            assert original == "ok" or not inflates_whole(source), f"attempt {attempt}"
        else:
            assert original == outcome(tmp_path, source, DECODING) != "ok", f"attempt {attempt}"
            refused += 1
    assert refused >= 10  # the test did try files Pillow refuses


# -- metadata that unpacks like a bomb --------------------------------------------------------


def metadata_bomb(detail: str) -> str:
    return (
        f"{FILE} holds metadata that unpacks like a decompression bomb ({detail}): export it "
        "again without that metadata and submit the new file."
    )


@BOTH
def test_a_text_chunk_that_unpacks_past_pillows_limit_is_a_bomb_not_corrupt_pixels(
    tmp_path: Path, steps: list[dict[str, Any]]
) -> None:
    source = with_chunk(
        make_png(tmp_path / "in" / FILE), b"zTXt", b"Comment\0\0" + bomb(), after=b"IHDR"
    )
    assert failure(tmp_path, source, steps) == metadata_bomb(
        "a zTXt text chunk unpacks to more than 1 MB"
    )


@BOTH
def test_an_international_text_bomb_after_the_pixels_is_found_too(
    tmp_path: Path, steps: list[dict[str, Any]]
) -> None:
    source = with_chunk(
        make_png(tmp_path / "in" / FILE),
        b"iTXt",
        b"Description\0\x01\0en\0\0" + bomb(),
        after=b"IDAT",
    )
    assert not pillow_decodes(source)
    assert failure(tmp_path, source, steps) == metadata_bomb(
        "an iTXt text chunk unpacks to more than 1 MB"
    )


@BOTH
def test_a_colour_profile_that_unpacks_past_pillows_limit_is_a_bomb(
    tmp_path: Path, steps: list[dict[str, Any]]
) -> None:
    source = with_chunk(
        make_png(tmp_path / "in" / FILE), b"iCCP", b"ICC profile\0\0" + bomb(), after=b"IHDR"
    )
    assert failure(tmp_path, source, steps) == metadata_bomb(
        "its iCCP colour profile unpacks to more than 1 MB"
    )


@BOTH
def test_a_small_compressed_text_chunk_is_fine(tmp_path: Path, steps: list[dict[str, Any]]) -> None:
    source = with_chunk(
        make_png(tmp_path / "in" / FILE), b"zTXt", b"Comment\0\0" + bomb(1000), after=b"IDAT"
    )
    assert outcome(tmp_path, source, steps) == "ok"


# -- files that only start like a PNG ---------------------------------------------------------


def not_a_png(detail: str) -> str:
    return f"{FILE} is not a PNG image ({detail}): export it as PNG and submit it again."


@BOTH
def test_a_png_signature_followed_by_something_else_is_not_a_png_rather_than_truncated(
    tmp_path: Path, steps: list[dict[str, Any]]
) -> None:
    source = tmp_path / FILE
    source.write_bytes(
        b"\x89PNG\r\n\x1a\n" + b"Hello, this is a text file that was renamed.\n" * 20
    )
    assert failure(tmp_path, source, steps) == not_a_png(
        "it starts with a PNG signature, but what follows is not PNG data"
    )


@BOTH
def test_a_png_without_its_header_is_not_a_png(tmp_path: Path, steps: list[dict[str, Any]]) -> None:
    source = make_png(tmp_path / "in" / FILE)
    write_chunks(source, [chunk for chunk in read_chunks(source) if chunk[0] != b"IHDR"])
    assert failure(tmp_path, source, steps) == not_a_png(
        "it starts with a PNG signature, but has no PNG header"
    )


@BOTH
def test_a_png_cut_after_its_signature_is_truncated(
    tmp_path: Path, steps: list[dict[str, Any]]
) -> None:
    source = make_png(tmp_path / "in" / FILE)
    source.write_bytes(source.read_bytes()[:8])
    assert failure(tmp_path, source, steps) == (
        f"{FILE} is truncated (the file ends early): submit it again from the original render."
    )
