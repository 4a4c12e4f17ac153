"""Specification of how submitted files and folders become PNG files and reasons for the rest."""

import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from batchdesk.domain.file_selection import (
    PNG_SIGNATURE,
    FileSelection,
    SelectedFile,
    describe_selection,
    select_files,
)

SRC_DIR = Path(__file__).parents[2] / "src"
NOT_PNG_CONTENT = "not a PNG image: named .png but its content is not PNG"


def make_png(path: Path, size: tuple[int, int] = (4, 4)) -> Path:
    """Write a real PNG image with Pillow, creating parent folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (200, 30, 60)).save(path, format="PNG")
    return path


def make_jpeg(path: Path, size: tuple[int, int] = (4, 4)) -> Path:
    """Write a real JPEG image with Pillow, whatever the name says."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (10, 120, 200)).save(path, format="JPEG")
    return path


def chunk(kind: bytes, data: bytes = b"") -> bytes:
    """Return one PNG chunk: length, type, data and CRC."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def chunks_of(content: bytes) -> list[tuple[int, bytes, int]]:
    """Return (offset, type, length) of each chunk of a whole PNG."""
    found, offset = [], len(PNG_SIGNATURE)
    while offset < len(content):
        length, kind = struct.unpack(">I4s", content[offset : offset + 8])
        found.append((offset, kind, length))
        offset += 12 + length
    return found


def make_file(path: Path, content: bytes = b"text") -> Path:
    """Write a file with the given bytes, creating parent folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def make_selected(file_name: str) -> SelectedFile:
    """Return a selected file for description tests; nothing is read from disk."""
    return SelectedFile(path=Path("/renders") / file_name, file_name=file_name, size=1)


def file_names(selection: FileSelection) -> list[str]:
    return [selected.file_name for selected in selection.files]


def reasons(selection: FileSelection) -> dict[Path, str]:
    return {rejected.path: rejected.reason for rejected in selection.rejected}


def test_folder_tree_accepts_pngs_and_reports_other_files_in_stable_order(tmp_path: Path) -> None:
    root = tmp_path / "renders"
    make_png(root / "b.png")
    make_png(root / "A.png")
    make_file(root / "notes.txt")
    make_file(root / "README")
    make_jpeg(root / "photo.jpg")
    make_png(root / "sub" / "c.png")
    make_file(root / "sub" / "archive.tar.gz")

    selection = select_files([root])

    assert [selected.path for selected in selection.files] == [
        root / "A.png",
        root / "b.png",
        root / "sub" / "c.png",
    ]
    assert [(rejected.path, rejected.reason) for rejected in selection.rejected] == [
        (root / "notes.txt", "not a PNG file (.txt)"),
        (root / "photo.jpg", "not a PNG file (.jpg)"),
        (root / "README", "not a PNG file (no extension)"),
        (root / "sub" / "archive.tar.gz", "not a PNG file (.gz)"),
    ]
    assert select_files([root]) == selection


def test_accepted_file_records_absolute_path_name_and_size(tmp_path: Path) -> None:
    png = make_png(tmp_path / "shot.png", size=(16, 16))

    selection = select_files([png])

    assert selection.files == (
        SelectedFile(path=png, file_name="shot.png", size=png.stat().st_size, width=16, height=16),
    )
    assert selection.rejected == ()
    assert selection.total_size == png.stat().st_size


def test_relative_path_with_dotdot_component_is_made_absolute_without_resolving(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_png(tmp_path / "renders" / "a.png")
    (tmp_path / "other").mkdir()
    monkeypatch.chdir(tmp_path / "other")

    selection = select_files(["../renders/a.png"])

    assert [selected.path for selected in selection.files] == [
        tmp_path / "other" / ".." / "renders" / "a.png"
    ]


def test_upper_case_png_extension_is_accepted(tmp_path: Path) -> None:
    png = make_png(tmp_path / "SHOT.PNG")

    selection = select_files([png])

    assert file_names(selection) == ["SHOT.PNG"]


def test_jpeg_renamed_to_png_is_rejected_for_its_content(tmp_path: Path) -> None:
    fake = make_jpeg(tmp_path / "photo.png")

    selection = select_files([fake])

    assert selection.files == ()
    assert reasons(selection) == {fake: NOT_PNG_CONTENT}


def test_png_shorter_than_its_signature_is_rejected_for_its_content(tmp_path: Path) -> None:
    truncated = make_file(tmp_path / "cut.png", PNG_SIGNATURE[:5])

    assert reasons(select_files([truncated])) == {truncated: NOT_PNG_CONTENT}


def test_zero_byte_png_is_rejected_as_empty(tmp_path: Path) -> None:
    empty = make_file(tmp_path / "empty.png", b"")

    assert reasons(select_files([empty])) == {empty: "empty file (0 bytes)"}


def test_png_cut_short_after_an_intact_header_is_rejected_before_upload(tmp_path: Path) -> None:
    whole = make_png(tmp_path / "whole.png", size=(1600, 1200)).read_bytes()
    first_100 = make_file(tmp_path / "first_100.png", whole[:100])
    half = make_file(tmp_path / "half.png", whole[: len(whole) // 2])

    selection = select_files([first_100, half])

    assert selection.files == ()
    assert reasons(selection) == {
        first_100: "damaged PNG: the file is incomplete (cut short at 100 bytes)",
        half: f"damaged PNG: the file is incomplete (cut short at {len(whole) // 2:,} bytes)",
    }


def test_png_without_its_end_marker_is_rejected(tmp_path: Path) -> None:
    whole = make_png(tmp_path / "whole.png", size=(64, 64)).read_bytes()
    offset, kind, _length = chunks_of(whole)[-1]
    assert kind == b"IEND"
    no_end = make_file(tmp_path / "no_end.png", whole[:offset])

    assert reasons(select_files([no_end])) == {
        no_end: f"damaged PNG: the file is incomplete (no end marker after {offset:,} bytes)"
    }


def test_png_whose_chunk_length_points_past_the_end_is_rejected(tmp_path: Path) -> None:
    content = bytearray(make_png(tmp_path / "whole.png", size=(64, 64)).read_bytes())
    offset, kind, _length = chunks_of(bytes(content))[1]
    assert kind == b"IDAT"
    content[offset : offset + 4] = struct.pack(">I", 0x7FFF_FFF0)
    too_long = make_file(tmp_path / "too_long.png", bytes(content))
    content[offset : offset + 4] = struct.pack(">I", 0xFFFF_FFF0)  # more than PNG allows
    impossible = make_file(tmp_path / "impossible.png", bytes(content))

    assert reasons(select_files([too_long, impossible])) == {
        too_long: f"damaged PNG: the file is incomplete (cut short at {len(content):,} bytes)",
        impossible: f"damaged PNG: unreadable data at byte {offset:,}",
    }


def test_png_with_garbage_where_a_chunk_should_start_is_rejected(tmp_path: Path) -> None:
    whole = make_png(tmp_path / "whole.png", size=(64, 64)).read_bytes()
    offset, _kind, _length = chunks_of(whole)[-1]
    garbled = make_file(
        tmp_path / "garbled.png", whole[:offset] + b"\x00\x00\x00\x00\x01\x02\x03\x04"
    )

    assert reasons(select_files([garbled])) == {
        garbled: f"damaged PNG: unreadable data at byte {offset:,}"
    }


def test_png_without_header_or_image_data_is_rejected(tmp_path: Path) -> None:
    ihdr = chunk(b"IHDR", struct.pack(">IIBBBBB", 64, 64, 8, 2, 0, 0, 0))
    no_header = make_file(tmp_path / "no_header.png", PNG_SIGNATURE + chunk(b"IEND"))
    no_pixels = make_file(tmp_path / "no_pixels.png", PNG_SIGNATURE + ihdr + chunk(b"IEND"))
    zero = chunk(b"IHDR", struct.pack(">IIBBBBB", 0, 64, 8, 2, 0, 0, 0))
    empty_image = make_file(
        tmp_path / "zero.png", PNG_SIGNATURE + zero + chunk(b"IDAT", b"x") + chunk(b"IEND")
    )

    assert reasons(select_files([no_header, no_pixels, empty_image])) == {
        no_header: "damaged PNG: its header is cut short or missing",
        no_pixels: "damaged PNG: it holds no image data",
        empty_image: "damaged PNG: its header gives no pixels",
    }


def test_the_check_walks_the_chunks_without_decoding_the_pixels(tmp_path: Path) -> None:
    # Image data that is not even zlib passes: inflating is the job's work (and its failure),
    # while the check only proves that every chunk is there, so it stays fast on any size.
    ihdr = chunk(b"IHDR", struct.pack(">IIBBBBB", 30_000, 20_000, 8, 6, 0, 0, 0))
    idat = chunk(b"IDAT", b"not zlib at all" * 1000)
    png = make_file(
        tmp_path / "huge.png", PNG_SIGNATURE + ihdr + idat + chunk(b"IEND") + b"trailing"
    )

    (selected,) = select_files([png]).files

    assert (selected.width, selected.height) == (30_000, 20_000)


def test_directory_named_png_is_walked_inside_a_folder_and_when_given(tmp_path: Path) -> None:
    root = tmp_path / "renders"
    make_png(root / "x.png" / "inner.png")

    inside = select_files([root])
    given_directly = select_files([root / "x.png"])

    assert [selected.path for selected in inside.files] == [root / "x.png" / "inner.png"]
    assert [selected.path for selected in given_directly.files] == [root / "x.png" / "inner.png"]
    assert inside.rejected == given_directly.rejected == ()


def test_empty_folder_is_reported_not_dropped(tmp_path: Path) -> None:
    root = tmp_path / "renders"
    make_png(root / "a.png")
    (root / "nothing").mkdir()
    alone = tmp_path / "alone"
    alone.mkdir()

    assert reasons(select_files([root])) == {root / "nothing": "empty folder"}
    assert reasons(select_files([alone])) == {alone: "empty folder"}


def test_broken_symlink_is_rejected_in_a_folder_and_when_given(tmp_path: Path) -> None:
    root = tmp_path / "renders"
    make_png(root / "a.png")
    dangling = root / "gone.png"
    dangling.symlink_to(tmp_path / "missing.png")

    in_folder = select_files([root])
    given_directly = select_files([dangling])

    assert file_names(in_folder) == ["a.png"]
    assert reasons(in_folder) == {dangling: "broken symbolic link"}
    assert reasons(given_directly) == {dangling: "broken symbolic link"}


def test_a_symlink_loop_is_rejected_as_a_loop_not_as_broken(tmp_path: Path) -> None:
    itself = tmp_path / "itself.png"
    itself.symlink_to(itself)
    there = tmp_path / "there.png"
    back = tmp_path / "back.png"
    there.symlink_to(back)
    back.symlink_to(there)
    folder = tmp_path / "folder"
    folder.symlink_to(folder, target_is_directory=True)
    inside = folder / "a.png"

    assert reasons(select_files([itself, there, inside])) == {
        itself: "symbolic link loop",
        there: "symbolic link loop",
        inside: "symbolic link loop in its folders",
    }


def test_symlink_loop_between_folders_terminates_and_takes_each_file_once(tmp_path: Path) -> None:
    first = tmp_path / "first"
    second = tmp_path / "second"
    make_png(first / "a.png")
    make_png(second / "b.png")
    (first / "to_second").symlink_to(second, target_is_directory=True)
    (second / "to_first").symlink_to(first, target_is_directory=True)

    selection = select_files([first])

    assert [selected.path for selected in selection.files] == [
        first / "a.png",
        first / "to_second" / "b.png",
    ]
    assert reasons(selection) == {first / "to_second" / "to_first": "folder already included"}


def test_symlink_to_a_folder_is_followed(tmp_path: Path) -> None:
    make_png(tmp_path / "real" / "a.png")
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "real", target_is_directory=True)

    selection = select_files([link])

    assert [selected.path for selected in selection.files] == [link / "a.png"]


def test_same_folder_given_twice_is_walked_once(tmp_path: Path) -> None:
    root = tmp_path / "renders"
    make_png(root / "a.png")

    selection = select_files([root, root])

    assert file_names(selection) == ["a.png"]
    assert reasons(selection) == {root: "listed twice"}


def test_same_file_listed_twice_is_accepted_once(tmp_path: Path) -> None:
    png = make_png(tmp_path / "a.png")

    selection = select_files([png, png])

    assert [selected.path for selected in selection.files] == [png]
    assert [(rejected.path, rejected.reason) for rejected in selection.rejected] == [
        (png, "listed twice")
    ]


def test_same_file_reached_through_a_symlink_and_its_folder_is_accepted_once(
    tmp_path: Path,
) -> None:
    png = make_png(tmp_path / "renders" / "a.png")
    link = tmp_path / "renders" / "b_link.png"
    link.symlink_to(png)

    selection = select_files([png, tmp_path / "renders"])

    assert [selected.path for selected in selection.files] == [png]
    assert [(rejected.path, rejected.reason) for rejected in selection.rejected] == [
        (png, "listed twice"),
        (link, "listed twice"),
    ]


def test_files_with_the_same_name_in_different_folders_are_both_accepted(
    tmp_path: Path,
) -> None:
    first = make_png(tmp_path / "monday" / "a.png")
    second = make_png(tmp_path / "tuesday" / "a.png")

    selection = select_files([tmp_path / "monday", tmp_path / "tuesday"])

    assert [selected.path for selected in selection.files] == [first, second]
    assert selection.rejected == ()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes need a POSIX system")
@pytest.mark.timeout(20)
def test_fifo_is_rejected_as_not_a_regular_file_without_blocking(tmp_path: Path) -> None:
    root = tmp_path / "renders"
    make_png(root / "a.png")
    fifo = root / "pipe.png"
    os.mkfifo(fifo)

    in_folder = select_files([root])
    given_directly = select_files([fifo])

    assert file_names(in_folder) == ["a.png"]
    assert reasons(in_folder) == {fifo: "not a regular file"}
    assert reasons(given_directly) == {fifo: "not a regular file"}


def test_names_with_spaces_and_unicode_are_accepted(tmp_path: Path) -> None:
    root = tmp_path / "Ünïcode folder"
    make_png(root / "my render 01.png")
    make_png(root / "Ærø 日本 🎨.png")

    selection = select_files([root])

    assert file_names(selection) == ["my render 01.png", "Ærø 日本 🎨.png"]


def test_very_long_name_is_accepted(tmp_path: Path) -> None:
    name_max = os.pathconf(tmp_path, "PC_NAME_MAX")
    name = "r" * (name_max - len(".png")) + ".png"
    make_png(tmp_path / "renders" / name)

    selection = select_files([tmp_path / "renders"])

    assert file_names(selection) == [name]


def test_name_that_is_not_utf8_is_shown_with_replacement_character(tmp_path: Path) -> None:
    raw = os.path.join(os.fsencode(tmp_path), b"bad\xff.png")
    make_png(Path(os.fsdecode(raw)))

    in_folder = select_files([tmp_path])
    given_directly = select_files([os.fsdecode(raw)])

    assert file_names(in_folder) == ["bad\ufffd.png"]
    assert file_names(given_directly) == ["bad\ufffd.png"]
    assert os.fsencode(in_folder.files[0].path) == raw


def test_rejected_path_display_is_printable_utf8(tmp_path: Path) -> None:
    raw = os.path.join(os.fsencode(tmp_path), b"bad\xff\nname.txt")
    make_file(Path(os.fsdecode(raw)))

    selection = select_files([tmp_path])

    (rejected,) = selection.rejected
    assert rejected.display == f"{tmp_path}/bad\ufffd\\nname.txt"
    assert rejected.display.encode("utf-8")


def test_nonexistent_path_is_rejected(tmp_path: Path) -> None:
    missing = tmp_path / "missing.png"

    selection = select_files([missing, tmp_path / "missing" / "a.png"])

    assert [(rejected.path, rejected.reason) for rejected in selection.rejected] == [
        (missing, "does not exist"),
        (tmp_path / "missing" / "a.png", "does not exist"),
    ]


def test_impossible_paths_are_rejected_without_raising(tmp_path: Path) -> None:
    selection = select_files(["", f"{tmp_path}/nul\0.png"])

    assert [rejected.reason for rejected in selection.rejected] == [
        "empty path",
        "not a valid path",
    ]


def test_unreadable_file_is_rejected_with_permission_denied() -> None:
    # Root reads anything, so the selection runs in a child that gives up root before looking.
    # The interpreter may live under a folder only root can enter (/root/.pyenv), so the child
    # imports everything first and drops privileges itself instead of being started as nobody.
    child_code = (
        "import json, os, sys\n"
        "from batchdesk.domain.file_selection import select_files\n"
        "if os.geteuid() == 0:\n"
        "    os.setgroups([])\n"
        "    os.setgid(65534)\n"
        "    os.setuid(65534)\n"
        "selection = select_files(sys.argv[1:])\n"
        "print(json.dumps([rejected.reason for rejected in selection.rejected]))\n"
    )
    # tmp_path under root's home may not be enterable by nobody: use a world-traversable folder.
    workspace = Path(tempfile.mkdtemp(dir="/tmp"))
    try:
        workspace.chmod(0o755)
        renders = workspace / "renders"
        renders.mkdir()
        renders.chmod(0o755)
        locked = make_png(renders / "locked.png")
        locked.chmod(0o000)

        result = subprocess.run(
            [sys.executable, "-c", child_code, str(locked)],
            env={**os.environ, "PYTHONPATH": str(SRC_DIR)},
            cwd=workspace,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        shutil.rmtree(workspace)

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == ["cannot be read (permission denied)"]


def test_description_names_the_folder_when_one_folder_is_given(tmp_path: Path) -> None:
    root = tmp_path / "renders"
    make_png(root / "a.png")
    make_png(root / "b.png")
    single = make_png(tmp_path / "single" / "only.png").parent

    assert describe_selection([root], select_files([root]).files) == (
        "2 PNG files from folder renders"
    )
    assert describe_selection([single], select_files([single]).files) == (
        "1 PNG file from folder single"
    )


def test_description_lists_file_names_when_files_or_several_folders_are_given(
    tmp_path: Path,
) -> None:
    png = make_png(tmp_path / "a.png")

    assert describe_selection([png], [make_selected("a.png")]) == "1 PNG file: a.png"
    assert describe_selection(
        [tmp_path / "x", tmp_path / "y"], [make_selected("a.png"), make_selected("b.png")]
    ) == ("2 PNG files: a.png, b.png")
    assert describe_selection(
        [png], [make_selected(name) for name in ["a.png", "b.png", "c.png"]]
    ) == ("3 PNG files: a.png, b.png and 1 more")
    assert describe_selection([png], [make_selected(f"{letter}.png") for letter in "abcde"]) == (
        "5 PNG files: a.png, b.png and 3 more"
    )


def test_description_of_nothing_says_zero_files() -> None:
    assert describe_selection([], []) == "0 PNG files"


def test_description_shortens_long_names_with_an_ellipsis() -> None:
    long_name = "customer_" + "x" * 300 + "_final.png"

    description = describe_selection(["a", "b"], [make_selected(long_name)] * 2)

    assert len(description) < 200
    assert description.startswith("2 PNG files: customer_x")
    assert "…" in description
    assert description.endswith("_final.png")


def test_description_shortens_a_long_folder_name(tmp_path: Path) -> None:
    root = tmp_path / ("folder_" + "y" * 240)
    make_png(root / "a.png")

    description = describe_selection([root], select_files([root]).files)

    assert len(description) < 200
    assert description.startswith("1 PNG file from folder folder_y")
    assert "…" in description


@given(names=st.lists(st.text(min_size=1, max_size=400), max_size=5))
def test_description_is_always_under_200_characters(names: list[str]) -> None:
    files = [make_selected(name) for name in names]

    assert len(describe_selection(["a", "b"], files)) < 200
