"""Turn the files and folders an artist submits into PNG files to process and reasons for the rest.

Everything submitted ends up either in `FileSelection.files` or in `FileSelection.rejected` with a
short reason: nothing is dropped silently. A candidate's chunk structure is walked to its end
(each chunk's 8-byte head is read and its data skipped), so a file cut short by an unfinished
copy is refused here, before it is uploaded, rather than failing later as a job. Nothing is
decoded or inflated: renders can be hundreds of megabytes, and the real decoding happens later,
in a job, which also catches damage inside the image data.
"""

import errno
import os
import stat
import struct
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# The PNG specification's largest chunk length (2**31 - 1).
_MAX_CHUNK_LENGTH = 0x7FFF_FFFF
_CHUNK_HEAD = struct.Struct(">I4s")  # length, type
_IHDR_SIZE = struct.Struct(">II")  # width, height: the first 8 of IHDR's 13 bytes
_IHDR_LENGTH = 13

DESCRIPTION_MAX_LENGTH = 199
"""Generated descriptions stay under 200 characters."""

_DESCRIBED_NAME_MAX_LENGTH = 70
_FOLDER_NAME_MAX_LENGTH = 150
_SUFFIX_MAX_LENGTH = 20
_ELLIPSIS = "…"

# A file swapped for a FIFO between stat and open must not block us, and a terminal must never
# become our controlling terminal; the flags that do not exist on this OS are simply left out.
_OPEN_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_NOCTTY", 0)
    | getattr(os, "O_BINARY", 0)
)

_Identity = tuple[int, int] | str


@dataclass(frozen=True)
class SelectedFile:
    """A PNG file that will become one job."""

    path: Path
    file_name: str
    size: int
    width: int = 0  # from the PNG header
    height: int = 0


@dataclass(frozen=True)
class RejectedPath:
    """A submitted or found path that will not become a job, and why."""

    path: Path
    display: str
    reason: str


@dataclass(frozen=True)
class FileSelection:
    """The accepted PNG files, in a stable order, and every rejected path."""

    files: tuple[SelectedFile, ...]
    rejected: tuple[RejectedPath, ...]

    @property
    def total_size(self) -> int:
        """Return the total size of the accepted files, in bytes."""
        return sum(selected.size for selected in self.files)


def select_files(paths: Iterable[str | os.PathLike[str]]) -> FileSelection:
    """Split the given files and folders into PNG files and rejected paths with reasons.

    Folders are walked recursively in a stable order; the same file or folder reached twice is
    taken once. Filesystem problems become rejections and never raise.
    """
    collector = _Collector()
    for given in paths:
        collector.visit_given(os.fspath(given))
    return FileSelection(files=tuple(collector.files), rejected=tuple(collector.rejected))


def describe_selection(
    paths: Sequence[str | os.PathLike[str]], files: Sequence[SelectedFile]
) -> str:
    """Return a batch description for when the artist leaves it empty.

    One folder given: "12 PNG files from folder renders". Otherwise up to two file names:
    "5 PNG files: a.png, b.png and 3 more". The result is always under 200 characters.
    """
    count = len(files)
    noun = "PNG file" if count == 1 else "PNG files"
    if len(paths) == 1 and os.path.isdir(paths[0]):
        folder = _shorten(_folder_name(os.fspath(paths[0])), _FOLDER_NAME_MAX_LENGTH)
        description = f"{count} {noun} from folder {folder}"
    elif count == 0:
        description = f"0 {noun}"
    else:
        names = [
            _shorten(_escape_controls(selected.file_name), _DESCRIBED_NAME_MAX_LENGTH)
            for selected in files[:2]
        ]
        description = f"{count} {noun}: {', '.join(names)}"
        if count > 2:
            description += f" and {count - 2} more"
    return _shorten(description, DESCRIPTION_MAX_LENGTH)


class _Collector:
    """Accumulate accepted and rejected paths while remembering what was already seen."""

    def __init__(self) -> None:
        self.files: list[SelectedFile] = []
        self.rejected: list[RejectedPath] = []
        self._seen_files: set[_Identity] = set()
        self._seen_folders: set[_Identity] = set()

    def visit_given(self, raw: str) -> None:
        """Judge one path exactly as the artist gave it."""
        if raw == "":
            # Path("") means the current folder, which is not what an empty argument asked for.
            self.rejected.append(RejectedPath(Path(raw), '""', "empty path"))
            return
        path = _absolute(raw)
        status = self._stat(path)
        if status is None:
            return
        if stat.S_ISDIR(status.st_mode):
            if self._enter_folder(path, status, "listed twice"):
                self._walk(path)
        else:
            self._judge_file(path, status)

    def _walk(self, root: Path) -> None:
        # An explicit stack rather than recursion: a deep tree must not hit the recursion limit.
        children = self._list(root)
        if children is None:
            return
        stack: list[tuple[Path, Iterator[Path], int]] = [(root, children, self._count())]
        while stack:
            folder, remaining, count_before = stack[-1]
            child = next(remaining, None)
            if child is None:
                stack.pop()
                if self._count() == count_before:
                    self._reject(folder, "empty folder")
                continue
            status = self._stat(child)
            if status is None:
                continue
            if not stat.S_ISDIR(status.st_mode):
                self._judge_file(child, status)
            elif self._enter_folder(child, status, "folder already included"):
                grandchildren = self._list(child)
                if grandchildren is not None:
                    stack.append((child, grandchildren, self._count()))

    def _enter_folder(self, path: Path, status: os.stat_result, reason_if_seen: str) -> bool:
        """Return whether the folder is new; reject it when it was already walked."""
        identity = _identity(path, status)
        if identity in self._seen_folders:
            self._reject(path, reason_if_seen)
            return False
        self._seen_folders.add(identity)
        return True

    def _list(self, folder: Path) -> Iterator[Path] | None:
        """Return the folder's entries in a stable order, or None after rejecting the folder."""
        try:
            with os.scandir(folder) as entries:
                names = [entry.name for entry in entries]
        except OSError as exc:
            self._reject(folder, _cannot_read(exc))
            return None
        names.sort(key=lambda name: (name.casefold(), name))
        return iter([folder / name for name in names])

    def _stat(self, path: Path) -> os.stat_result | None:
        """Return the status after following links, or None after rejecting the path."""
        try:
            return os.stat(path)
        except ValueError:
            # An embedded NUL or an unencodable character: no file can have this name.
            self._reject(path, "not a valid path")
        except OSError as exc:
            self._reject(path, _stat_failure_reason(path, exc))
        return None

    def _judge_file(self, path: Path, status: os.stat_result) -> None:
        if not stat.S_ISREG(status.st_mode):
            self._reject(path, "not a regular file")
            return
        identity = _identity(path, status)
        if identity in self._seen_files:
            self._reject(path, "listed twice")
            return
        name = path.name
        if not name.lower().endswith(".png"):
            self._reject(path, f"not a PNG file ({_describe_suffix(name)})")
            return
        if status.st_size == 0:
            self._reject(path, "empty file (0 bytes)")
            return
        try:
            layout = _read_layout(path)
        except OSError as exc:
            self._reject(path, _cannot_read(exc))
            return
        if layout.problem is not None:
            self._reject(path, layout.problem)
        else:
            self._seen_files.add(identity)
            self.files.append(
                SelectedFile(
                    path=path,
                    file_name=_utf8_text(name),
                    size=layout.size,
                    width=layout.width,
                    height=layout.height,
                )
            )

    def _reject(self, path: Path, reason: str) -> None:
        self.rejected.append(RejectedPath(path=path, display=_display(path), reason=reason))

    def _count(self) -> int:
        return len(self.files) + len(self.rejected)


@dataclass(frozen=True)
class _Layout:
    """What walking a file's PNG chunks found: its size and header, or why it is not whole."""

    size: int
    problem: str | None
    width: int = 0
    height: int = 0


def _read_layout(path: Path) -> _Layout:
    """Walk the file's chunks from the signature to IEND, reading only each chunk's head."""
    fd = os.open(path, _OPEN_FLAGS)
    try:
        # Checked again on the open file: it may have been replaced since it was listed.
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode):
            return _Layout(0, "not a regular file")
        return _walk_chunks(fd, status.st_size)
    finally:
        os.close(fd)


def _walk_chunks(fd: int, size: int) -> _Layout:
    if _read_at(fd, 0, len(PNG_SIGNATURE)) != PNG_SIGNATURE:
        return _Layout(size, "not a PNG image: named .png but its content is not PNG")
    offset = len(PNG_SIGNATURE)
    width = height = 0
    has_image_data = False
    while True:
        head = _read_at(fd, offset, _CHUNK_HEAD.size)
        if offset == len(PNG_SIGNATURE) and (len(head) < _CHUNK_HEAD.size or head[4:] != b"IHDR"):
            return _Layout(size, "damaged PNG: its header is cut short or missing")
        if not head:
            return _Layout(
                size, f"damaged PNG: the file is incomplete (no end marker after {offset:,} bytes)"
            )
        if len(head) < _CHUNK_HEAD.size:
            return _Layout(size, _cut_short(size))
        length, kind = _CHUNK_HEAD.unpack(head)
        if length > _MAX_CHUNK_LENGTH or not kind.isalpha():
            return _Layout(size, f"damaged PNG: unreadable data at byte {offset:,}")
        end = offset + _CHUNK_HEAD.size + length + 4  # data, then its CRC
        if end > size:
            return _Layout(size, _cut_short(size))
        if kind == b"IHDR":
            if length != _IHDR_LENGTH:
                return _Layout(size, "damaged PNG: its header is cut short or missing")
            width, height = _IHDR_SIZE.unpack(_read_at(fd, offset + _CHUNK_HEAD.size, 8))
        elif kind == b"IDAT":
            has_image_data = True
        elif kind == b"IEND":
            break  # what follows the end marker is ignored, as decoders ignore it
        offset = end
    if not has_image_data:
        return _Layout(size, "damaged PNG: it holds no image data")
    if width == 0 or height == 0:
        return _Layout(size, "damaged PNG: its header gives no pixels")
    return _Layout(size, None, width, height)


def _cut_short(size: int) -> str:
    return f"damaged PNG: the file is incomplete (cut short at {size:,} bytes)"


def _read_at(fd: int, offset: int, count: int) -> bytes:
    """Return up to `count` bytes at `offset`, fewer only at the end of the file."""
    data = b""
    while len(data) < count:
        if hasattr(os, "pread"):
            piece = os.pread(fd, count - len(data), offset + len(data))
        else:  # Windows has no pread
            os.lseek(fd, offset + len(data), os.SEEK_SET)
            piece = os.read(fd, count - len(data))
        if not piece:
            break
        data += piece
    return data


def _stat_failure_reason(path: Path, exc: OSError) -> str:
    if isinstance(exc, PermissionError):
        return _cannot_read(exc)
    if os.path.islink(path) and exc.errno == errno.ELOOP:
        return "symbolic link loop"
    if os.path.islink(path) and exc.errno in (errno.ENOENT, errno.ENOTDIR):
        return "broken symbolic link"
    if exc.errno in (errno.ENOENT, errno.ENOTDIR):
        return "does not exist"
    if exc.errno == errno.ELOOP:
        # A link loop in one of the parent folders rather than in the last component.
        return "symbolic link loop in its folders"
    return _cannot_read(exc)


def _cannot_read(exc: OSError) -> str:
    if isinstance(exc, PermissionError):
        return "cannot be read (permission denied)"
    detail = os.strerror(exc.errno) if exc.errno is not None else exc.strerror or "unknown error"
    return f"cannot be read ({detail.lower()})"


def _identity(path: Path, status: os.stat_result) -> _Identity:
    # Some filesystems report inode 0 for everything; fall back to the resolved path there.
    if status.st_ino:
        return (status.st_dev, status.st_ino)
    return os.path.realpath(path)


def _absolute(raw: str) -> Path:
    """Return the path made absolute without resolving links or `..` components."""
    try:
        return Path(raw).absolute()
    except OSError:
        # The current folder was deleted; the relative path still names what was given.
        return Path(raw)


def _describe_suffix(name: str) -> str:
    suffix = os.path.splitext(name)[1]
    if not suffix:
        return "no extension"
    return _shorten(_escape_controls(_utf8_text(suffix)), _SUFFIX_MAX_LENGTH)


def _folder_name(raw: str) -> str:
    try:
        absolute = os.path.abspath(raw)
    except OSError:
        absolute = os.path.normpath(raw)
    return _escape_controls(_utf8_text(os.path.basename(absolute) or absolute))


def _display(path: Path) -> str:
    return _escape_controls(_utf8_text(str(path)))


def _utf8_text(name: str) -> str:
    """Return the name as valid UTF-8 text, with U+FFFD for bytes that are not UTF-8."""
    try:
        return os.fsencode(name).decode("utf-8", "replace")
    except UnicodeEncodeError:
        # A lone surrogate that did not come from the filesystem's own decoding.
        return name.encode("utf-8", "replace").decode("utf-8")


def _escape_controls(text: str) -> str:
    """Return the text with control characters and line breaks shown as escapes."""
    # A newline in a file name would otherwise split one "<path>: <reason>" line in two.
    return "".join(
        repr(char)[1:-1] if unicodedata.category(char) in ("Cc", "Zl", "Zp") else char
        for char in text
    )


def _shorten(text: str, limit: int) -> str:
    """Return the text cut to the limit with an ellipsis, keeping its end (the extension)."""
    if len(text) <= limit:
        return text
    tail = (limit - 1) // 3
    head = limit - 1 - tail
    return f"{text[:head]}{_ELLIPSIS}{text[len(text) - tail :]}"
