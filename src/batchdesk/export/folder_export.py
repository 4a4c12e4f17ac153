"""Writing stored files into a folder: one job's outputs, or a whole batch delivered.

Each file is written under a temporary name and renamed when complete, so a reader of the
folder (a person, a sync client, a render farm) never sees a half-written file.
"""

import errno
from pathlib import Path
from uuid import UUID

from batchdesk.errors import FileProblem, NotFound
from batchdesk.export.atomic_file import TargetExists, atomic_target
from batchdesk.export.batch_walk import placed_files
from batchdesk.export.entry_names import UniqueNames
from batchdesk.export.layout import MANIFEST_NAME, BatchLayout, batch_folder_name
from batchdesk.export.manifest import ManifestWriter
from batchdesk.export.summary import ExportSummary, StatusTally
from batchdesk.export.transfer import CancelCheck, ProgressCallback, Transfer
from batchdesk.storage import batch_contents, batch_queries
from batchdesk.storage.database import Database


def make_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError as exc:
        raise FileProblem(f"{folder} is a file, not a folder; choose another place.") from exc
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EPERM):
            reason = "permission denied. Choose a folder you can write to"
        elif exc.errno == errno.ENOTDIR:
            blocker = next((p for p in folder.parents if p.exists() and not p.is_dir()), None)
            reason = f"{blocker or 'part of that path'} is a file, not a folder"
        elif exc.errno == errno.EROFS:
            reason = "it is on a read-only file system. Choose another folder"
        else:
            reason = exc.strerror or str(exc)
        raise FileProblem(f"Cannot create the folder {folder}: {reason}.") from exc


def export_job(
    database: Database,
    batch: str | UUID,
    job: str,
    folder: Path,
    *,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
    cancelled: CancelCheck | None = None,
) -> ExportSummary:
    """Write the outputs of one job (its file name or id) into `folder`, creating it if needed."""
    folder = Path(folder).absolute()
    with database.connect() as connection:
        row = batch_queries.find_batch(connection, str(batch))
        name = row.base_directory_name
        contents = batch_contents.find_job(connection, row.id, name, job)
        if not contents.outputs:
            raise NotFound(f"{contents.file_name} in {name} has no outputs: {_why_none(contents)}")
        names = UniqueNames()
        placed = [(stored, names.claim(stored.name)) for stored in contents.outputs]
        make_folder(folder)
        existing = [folder / file_name for _, file_name in placed]
        existing = [path for path in existing if path.exists()]
        if existing and not overwrite:
            raise TargetExists(
                f"{', '.join(p.name for p in existing)} already "
                f"{'exists' if len(existing) == 1 else 'exist'} in {folder}; "
                "choose another folder or allow replacing.",
                existing,
            )
        transfer = Transfer(
            sum(stored.size for stored, _ in placed),
            len(placed),
            progress,
            cancelled,
            f"Export of {contents.file_name} cancelled; files already written stay in {folder}.",
        )
        for stored, file_name in placed:
            with atomic_target(folder / file_name, overwrite=True) as stream:
                transfer.copy(connection, stored, file_name, stream.write, batch=name)
    tally = StatusTally()
    tally.add(contents.status)
    return ExportSummary(name, folder, transfer.done_files, transfer.done_bytes, tally)


def _why_none(job: batch_contents.JobContents) -> str:
    if job.status == "failed":
        return f"it failed ({job.last_error or 'no reason recorded'})."
    if job.status == "cancelled":
        return "it was cancelled."
    if job.status == "completed":
        return "its pipeline writes none."
    return f"it is {job.status}; try again when it has run."


def deliver_batch(
    database: Database,
    batch: str | UUID,
    folder: Path,
    *,
    progress: ProgressCallback | None = None,
    cancelled: CancelCheck | None = None,
) -> ExportSummary:
    """Write the batch to `folder/BASE_NAME/` as the zip would hold it, file by file.

    Delivering again replaces the files with the same names; other files there are left alone.
    """
    with database.connect() as connection:
        row = batch_queries.find_batch(connection, str(batch))
        name = row.base_directory_name
        destination = Path(folder).absolute() / batch_folder_name(name)
        totals = batch_contents.totals(connection, row.id)
        transfer = Transfer(
            totals.output_bytes,
            totals.output_files,
            progress,
            cancelled,
            f"Delivery of {name} cancelled; the files already written stay in {destination}.",
        )
        make_folder(destination)
        tally = StatusTally()
        layout = BatchLayout(include_inputs=False)
        with atomic_target(destination / MANIFEST_NAME, overwrite=True) as manifest_stream:
            manifest = ManifestWriter(manifest_stream)
            for _placed, file in placed_files(
                connection, row.id, layout, manifest, tally, transfer
            ):
                with atomic_target(destination / file.path, overwrite=True) as stream:
                    transfer.copy(connection, file.stored, file.path, stream.write, batch=name)
            manifest.detach()
    return ExportSummary(name, destination, transfer.done_files, transfer.done_bytes, tally)
