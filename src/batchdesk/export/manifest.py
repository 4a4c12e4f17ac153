"""manifest.csv: one row per exported file (or per job that produced none).

CSV rather than JSON because the people who read it are production coordinators with a
spreadsheet: one row per file sorts and filters there as it is. It is UTF-8 with a byte-order mark
so spreadsheet programs show non-English file names correctly (Python reads it with
`encoding="utf-8-sig"`).
"""

import csv
import io
from typing import IO

from batchdesk.export.layout import PlacedJob

COLUMNS = (
    "position",
    "file_name",
    "status",
    "pipeline",
    "attempts",
    "error",
    "output",
    "output_size",
    "output_sha256",
    "media_type",
    "width",
    "height",
    "input_size",
    "input_sha256",
    "original",
)


class ManifestWriter:
    """Writes manifest rows to a binary stream as jobs are placed."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="", write_through=True)
        self._csv = csv.writer(self._text)
        self._csv.writerow(COLUMNS)

    def add(self, placed: PlacedJob) -> None:
        job = placed.job
        common = [job.position + 1, job.file_name, job.status, job.pipeline, job.attempts]
        original = placed.original.path if placed.original else ""
        tail = [job.input.size, job.input.sha256.hex(), original]
        if not placed.outputs:
            self._csv.writerow([*common, job.last_error or "", "", "", "", "", "", "", *tail])
        for output in placed.outputs:
            stored = output.stored
            self._csv.writerow(
                [
                    *common,
                    job.last_error or "",
                    output.path,
                    stored.size,
                    stored.sha256.hex(),
                    stored.media_type,
                    stored.width if stored.width is not None else "",
                    stored.height if stored.height is not None else "",
                    *tail,
                ]
            )

    def detach(self) -> None:
        """Flush and let go of the stream without closing it."""
        self._text.flush()
        self._text.detach()
