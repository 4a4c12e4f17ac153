"""Factories for test data: real PNG files and real batches, made the way users make them."""

from collections.abc import Sequence
from datetime import date
from pathlib import Path

from PIL import Image

from batchdesk.domain.file_selection import PNG_SIGNATURE, select_files
from batchdesk.storage.database import Database
from batchdesk.storage.submission import SubmissionRequest, SubmissionResult, submit


def make_png(path: Path, size: tuple[int, int] = (8, 8), mode: str = "RGB", seed: int = 0) -> Path:
    """Write a real PNG whose content depends on `seed`, so different seeds differ in sha256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    colour: int | tuple[int, ...]
    if mode in ("L", "P"):
        colour = seed % 256
    elif mode == "LA":
        colour = (seed % 256, 255)
    elif mode == "RGBA":
        colour = (seed % 256, (seed // 256) % 256, 7, 255)
    else:
        colour = (seed % 256, (seed // 256) % 256, (seed // 65536) % 256)
    Image.new(mode, size, colour).save(path, format="PNG")
    return path


def make_damaged_png(path: Path, size: tuple[int, int] = (256, 256), seed: int = 0) -> Path:
    """Write a PNG whose chunks are all there but whose image data is corrupt.

    Submitting accepts it (its structure is whole), and the job fails on it: the damage a bad
    disk or a broken copy leaves inside a file, rather than at its end.
    """
    content = bytearray(make_png(path, size=size, seed=seed).read_bytes())
    offset = len(PNG_SIGNATURE)
    while content[offset + 4 : offset + 8] != b"IDAT":
        offset += 12 + int.from_bytes(content[offset : offset + 4], "big")
    length = int.from_bytes(content[offset : offset + 4], "big")
    middle = offset + 8 + length // 2
    content[middle : middle + 4] = bytes(255 - b for b in content[middle : middle + 4])
    path.write_bytes(bytes(content))
    return path


def make_pngs(folder: Path, names: Sequence[str], seed: int = 0) -> list[Path]:
    return [make_png(folder / name, seed=seed + i) for i, name in enumerate(names)]


def make_batch(
    database: Database,
    folder: Path,
    count: int = 3,
    prefix: str = "PL_DXB",
    *,
    description: str = "test batch",
    batch_date: date | None = None,
    seed: int = 0,
) -> SubmissionResult:
    """Submit `count` new PNG files named like a customer's renders; return the result."""
    names = [f"{prefix}{191 + i}_view{i}.png" for i in range(count)]
    paths = make_pngs(folder, names, seed=seed)
    selection = select_files(paths)
    request = SubmissionRequest(
        files=selection.files,
        source_paths=tuple(paths),
        description=description,
        created_by="tester@test",
        batch_date=batch_date,
    )
    return submit(database, request)
