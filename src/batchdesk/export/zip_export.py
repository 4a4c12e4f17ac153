"""Export a batch as BASE_NAME.zip: a `BASE_NAME/` folder of outputs and a manifest.

The zip is streamed from the database chunk by chunk into a temporary file beside the target
and renamed at the end, so memory stays flat and a failed or cancelled export leaves nothing
under the chosen name. A batch that is still running or has failed jobs is exported as it
stands, and the summary's warnings say what is missing.
"""

import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import IO
from uuid import UUID

from batchdesk.domain.units import plural
from batchdesk.export.atomic_file import atomic_target, check_target
from batchdesk.export.batch_walk import placed_files
from batchdesk.export.layout import MANIFEST_NAME, BatchLayout, batch_folder_name
from batchdesk.export.manifest import ManifestWriter
from batchdesk.export.summary import ExportSummary, StatusTally
from batchdesk.export.transfer import CancelCheck, ProgressCallback, Transfer
from batchdesk.export.zip_stream import ZipStream
from batchdesk.storage import batch_contents, batch_queries
from batchdesk.storage.database import Database

# The manifest is built while outputs stream and added last; past this size it spills to disk.
MANIFEST_MEMORY_LIMIT = 8 * 1024 * 1024


def default_zip_name(base_directory_name: str) -> str:
    return f"{batch_folder_name(base_directory_name)}.zip"


def export_zip(
    database: Database,
    batch: str | UUID,
    target: Path,
    *,
    include_inputs: bool = False,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
    cancelled: CancelCheck | None = None,
) -> ExportSummary:
    """Write the batch named by `batch` (id or base directory name) to the zip file `target`.

    `progress` is called as bytes are written (from this thread); `cancelled` is polled between
    chunks and stops the export with `Cancelled`. Raises FileProblem, NotFound, Cancelled or
    DatabaseUnavailable with a sentence to show; in every case no file is left at `target`.
    """
    target = Path(target).absolute()
    check_target(target, overwrite=overwrite)  # before any database work
    with database.connect() as connection:
        row = batch_queries.find_batch(connection, str(batch))
        totals = batch_contents.totals(connection, row.id)
        name = row.base_directory_name
        folder = batch_folder_name(name)
        transfer = Transfer(
            totals.output_bytes + (totals.input_bytes if include_inputs else 0),
            totals.output_files + (totals.jobs if include_inputs else 0),
            progress,
            cancelled,
            f"Export of {name} cancelled; nothing was written to {target.name}.",
            share_paths=database.share_paths,
        )
        tally = StatusTally()
        layout = BatchLayout(include_inputs=include_inputs)
        with (
            atomic_target(target, overwrite=overwrite) as stream,
            tempfile.SpooledTemporaryFile(MANIFEST_MEMORY_LIMIT) as manifest_buffer,
        ):
            archive = ZipStream(stream)
            try:
                manifest = ManifestWriter(manifest_buffer)
                for placed, file in placed_files(
                    connection, row.id, layout, manifest, tally, transfer
                ):
                    job = placed.job
                    archive.add(
                        f"{folder}/{file.path}",
                        file.stored.size,
                        file.stored.media_type,
                        job.finished_at if file is not placed.original else job.created_at,
                        partial(transfer.copy, connection, file.stored, file.path, batch=name),
                    )
                manifest.detach()
                size = manifest_buffer.tell()
                manifest_buffer.seek(0)
                archive.add(
                    f"{folder}/{MANIFEST_NAME}",
                    size,
                    "text/csv",
                    None,
                    partial(_copy_stream, manifest_buffer),
                )
                summary = ExportSummary(
                    name, target, transfer.done_files, transfer.done_bytes, tally
                )
                archive.finish(_comment(summary))
            except BaseException:
                archive.abandon()
                raise
    return summary


def _copy_stream(source: IO[bytes], write: Callable[[bytes], object]) -> None:
    while chunk := source.read(1024 * 1024):
        write(chunk)


def _comment(summary: ExportSummary) -> str:
    tally = summary.tally
    return (
        f"{summary.batch}: {plural(tally.jobs, 'job')}, {tally.completed} completed, "
        f"{tally.failed} failed, {tally.cancelled} cancelled, {tally.unfinished} unfinished; "
        f"exported by batchdesk"
    )
