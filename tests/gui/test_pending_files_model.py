"""The pending list: each file once, why a file will be skipped, thumbnails made off the GUI."""

import struct
import threading
import zlib
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from PySide6.QtCore import QMimeData, QModelIndex, Qt, QUrl
from PySide6.QtGui import QImage, QPixmap

from batchdesk.domain.file_selection import PNG_SIGNATURE
from batchdesk.domain.naming import PrefixRule
from tests.factories import make_png

from batchdesk.gui import thumbnail_loader
from batchdesk.gui.background import BackgroundTasks
from batchdesk.gui.pending_files_model import (
    PENDING_FILE_ROLE,
    PendingFile,
    PendingFilesModel,
    paths_from_mime,
    scan_paths,
)
from batchdesk.gui.thumbnail_loader import make_thumbnail

RULE = PrefixRule()
NAME, SIZE, DIMENSIONS, PREFIX, STATUS = range(5)


def write_png_header(path: Path, width: int, height: int) -> Path:
    """Write a whole PNG claiming `width` x `height` with a few bytes of data, like a bomb."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)  # far too little for the pixels: a job would find out
    path.write_bytes(
        PNG_SIGNATURE + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )
    return path


def by_name(rows: tuple[PendingFile, ...] | list[PendingFile]) -> dict[str, PendingFile]:
    return {row.file_name: row for row in rows}


@pytest.fixture
def model(qtbot: QtBot, tasks: BackgroundTasks) -> PendingFilesModel:
    return PendingFilesModel(tasks, RULE, max_megapixels=200)


def add_and_wait(qtbot: QtBot, model: PendingFilesModel, paths: list[Path]) -> None:
    model.add_paths(paths)
    qtbot.waitUntil(lambda: not model.scanning, timeout=10_000)


def text(model: PendingFilesModel, row: int, column: int) -> str:
    return model.data(model.index(row, column))


def test_a_png_is_listed_with_its_size_dimensions_and_customer(tmp_path: Path) -> None:
    path = make_png(tmp_path / "PL_DXB191_front.png", size=(640, 480))

    (row,) = scan_paths([path], RULE, max_megapixels=200)

    assert row.accepted
    assert (row.file_name, row.width, row.height, row.prefix) == (
        "PL_DXB191_front.png",
        640,
        480,
        "PL_DXB",
    )
    assert row.size == path.stat().st_size
    assert row.selected is not None
    assert row.selected.path == path


def test_files_that_would_fail_are_flagged_with_the_reason(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not an image")
    renamed = tmp_path / "PL_DXB191_renamed.png"
    renamed.write_bytes(b"\xff\xd8\xff\xe0 a JPEG really")
    bomb = write_png_header(tmp_path / "PL_DXB192_bomb.png", 30_000, 30_000)
    cut = tmp_path / "PL_DXB193_cut.png"
    cut.write_bytes(PNG_SIGNATURE + b"\x00\x00")

    rows = by_name(scan_paths([notes, renamed, bomb, cut, tmp_path / "gone.png"], RULE, 200))

    assert not any(row.accepted for row in rows.values())
    assert rows["notes.txt"].problem == "not a PNG file (.txt)"
    assert "content is not PNG" in (rows["PL_DXB191_renamed.png"].problem or "")
    assert rows["PL_DXB192_bomb.png"].problem == (
        "too many pixels: 30,000 × 30,000 (900 megapixels), more than the 200-megapixel limit"
    )
    assert (rows["PL_DXB192_bomb.png"].width, rows["PL_DXB192_bomb.png"].height) == (30_000, 30_000)
    assert rows["PL_DXB193_cut.png"].problem == "damaged PNG: its header is cut short or missing"
    assert rows["gone.png"].problem == "does not exist"


def test_the_pixel_limit_is_the_one_in_the_settings(tmp_path: Path) -> None:
    path = make_png(tmp_path / "PL_DXB191_big.png", size=(1500, 1000))

    (allowed,) = scan_paths([path], RULE, max_megapixels=2)
    (refused,) = scan_paths([path], RULE, max_megapixels=1)

    assert allowed.accepted
    assert not refused.accepted
    assert refused.problem == (
        "too many pixels: 1,500 × 1,000 (1.5 megapixels), more than the 1-megapixel limit"
    )


def test_a_folder_is_read_recursively(tmp_path: Path) -> None:
    make_png(tmp_path / "shoot" / "PL_DXB191_a.png")
    make_png(tmp_path / "shoot" / "deeper" / "PL_DXB192_b.png", seed=1)

    rows = scan_paths([tmp_path / "shoot"], RULE, 200)

    # select_files' stable order: names compared without case, so "deeper/" comes first.
    assert [row.file_name for row in rows] == ["PL_DXB192_b.png", "PL_DXB191_a.png"]
    assert all(row.accepted for row in rows)


def test_a_file_dropped_twice_or_again_inside_its_folder_is_listed_once(
    qtbot: QtBot, model: PendingFilesModel, tmp_path: Path
) -> None:
    first = make_png(tmp_path / "shoot" / "PL_DXB191_a.png")
    make_png(tmp_path / "shoot" / "PL_DXB192_b.png", seed=1)
    notes = tmp_path / "notes.txt"
    notes.write_text("x")

    add_and_wait(qtbot, model, [first, notes])
    add_and_wait(qtbot, model, [first, notes])
    add_and_wait(qtbot, model, [tmp_path / "shoot"])

    assert [row.file_name for row in model.files()] == [
        "PL_DXB191_a.png",
        "notes.txt",
        "PL_DXB192_b.png",
    ]
    assert [f.file_name for f in model.accepted_files()] == ["PL_DXB191_a.png", "PL_DXB192_b.png"]
    assert model.source_paths == (first, notes, tmp_path / "shoot")


def test_rows_show_what_each_file_is_and_a_warning_for_skipped_ones(
    qtbot: QtBot, model: PendingFilesModel, tmp_path: Path
) -> None:
    good = make_png(tmp_path / "PL_DXB191_front.png", size=(64, 32))
    notes = tmp_path / "notes.txt"
    notes.write_text("x")

    model.add_files(scan_paths([good, notes], RULE, 200))

    assert [text(model, 0, column) for column in range(5)] == [
        "PL_DXB191_front.png",
        f"{good.stat().st_size} B",
        "64 × 32",
        "PL_DXB",
        "Ready",
    ]
    assert text(model, 1, STATUS) == "Skipped: not a PNG file (.txt)"
    assert model.data(model.index(1, STATUS), Qt.ItemDataRole.DecorationRole) is not None
    assert model.data(model.index(0, STATUS), Qt.ItemDataRole.DecorationRole) is None
    tooltip = model.data(model.index(1, STATUS), Qt.ItemDataRole.ToolTipRole)
    assert tooltip == "Will not be submitted: not a PNG file (.txt)."
    # The name's tooltip: the whole path (the list elides long names) and what will happen.
    assert model.data(model.index(0, NAME), Qt.ItemDataRole.ToolTipRole) == (
        f"{good}\nWill be submitted."
    )
    assert model.data(model.index(1, NAME), Qt.ItemDataRole.ToolTipRole) == (
        f"{notes}\nWill not be submitted: not a PNG file (.txt)."
    )
    assert model.data(model.index(1, NAME), PENDING_FILE_ROLE).path == notes
    assert model.headerData(PREFIX, Qt.Orientation.Horizontal) == "Customer"


def test_thumbnails_arrive_later_made_off_the_gui_thread(
    qtbot: QtBot, model: PendingFilesModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = make_png(tmp_path / "PL_DXB191_wide.png", size=(400, 200))
    gui_thread = threading.get_ident()
    threads: list[int] = []

    def recording(path: Path, size: int = 48) -> QImage:
        threads.append(threading.get_ident())
        return make_thumbnail(path, size)

    monkeypatch.setattr(thumbnail_loader, "make_thumbnail", recording)
    (new,) = model.add_files(scan_paths([path], RULE, 200))
    index = model.index(0, NAME)
    assert model.data(index, Qt.ItemDataRole.DecorationRole) is None

    with qtbot.waitSignal(model.dataChanged, timeout=10_000):
        model.thumbnail_loader.request([new.path])

    thumbnail = model.data(index, Qt.ItemDataRole.DecorationRole)
    assert isinstance(thumbnail, QPixmap)
    assert (thumbnail.width(), thumbnail.height()) == (48, 24)
    assert threads
    assert gui_thread not in threads


def test_dropped_files_get_their_thumbnails_by_themselves(
    qtbot: QtBot, model: PendingFilesModel, tmp_path: Path
) -> None:
    paths = [make_png(tmp_path / f"PL_DXB19{i}_v.png", size=(96, 96), seed=i) for i in range(5)]

    add_and_wait(qtbot, model, paths)

    def all_have_thumbnails() -> bool:
        rows = range(model.rowCount())
        return all(model.index(r, NAME).data(Qt.ItemDataRole.DecorationRole) for r in rows)

    qtbot.waitUntil(all_have_thumbnails, timeout=10_000)
    assert model.rowCount() == 5


def test_a_thumbnail_of_something_unreadable_is_a_null_image(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not an image")

    assert make_thumbnail(notes).isNull()
    assert make_thumbnail(tmp_path / "missing.png").isNull()


def test_a_render_too_big_to_decode_for_a_thumbnail_gets_none_without_a_qt_warning(
    tmp_path: Path,
) -> None:
    # Qt's PNG reader decodes everything before scaling: 70 megapixels would take 280 MB, and
    # Qt would refuse them with a warning (its allocation limit is 256 MB).
    big = make_png(tmp_path / "PL_DXB191_huge.png", size=(10_000, 7_000), mode="L")

    assert make_thumbnail(big).isNull()


def test_removing_files_keeps_the_others_and_lets_them_be_added_again(
    qtbot: QtBot, model: PendingFilesModel, tmp_path: Path
) -> None:
    paths = [make_png(tmp_path / f"PL_DXB19{i}_v.png", seed=i) for i in range(5)]
    rows = model.add_files(scan_paths(paths, RULE, 200))

    model.remove_files({rows[1].key, rows[2].key, rows[4].key})

    assert [row.path for row in model.files()] == [paths[0], paths[3]]
    assert model.add_files(scan_paths([paths[2]], RULE, 200))[0].path == paths[2]
    model.clear()
    assert model.rowCount() == 0
    assert model.source_paths == ()


def test_the_model_passes_qt_s_model_checks(
    qtbot: QtBot, qtmodeltester, model: PendingFilesModel, tmp_path: Path
) -> None:
    good = make_png(tmp_path / "PL_DXB191_front.png", size=(64, 32))
    notes = tmp_path / "notes.txt"
    notes.write_text("x")
    (row, _skipped) = model.add_files(scan_paths([good, notes], RULE, 200))
    model.set_thumbnail(row.path, make_thumbnail(good))

    qtmodeltester.check(model)

    assert model.rowCount(model.index(0, 0)) == 0
    assert model.data(QModelIndex()) is None


def test_file_urls_and_pasted_paths_become_paths(tmp_path: Path) -> None:
    folder = tmp_path / "shoot"
    urls = QMimeData()
    urls.setUrls([QUrl.fromLocalFile(str(folder)), QUrl("https://example.com/a.png")])
    pasted = QMimeData()
    pasted.setText(
        f'{folder / "a.png"}\n  "{folder / "b c.png"}"  \n\nfile://{folder / "d.png"}\n'
        "relative/e.png\nhttps://example.com/f.png\nsome words\n~/g.png\n"
    )

    assert paths_from_mime(urls) == [folder]
    assert paths_from_mime(pasted) == [
        folder / "a.png",
        folder / "b c.png",
        folder / "d.png",
        Path("~/g.png").expanduser(),
    ]
    assert paths_from_mime(QMimeData()) == []
