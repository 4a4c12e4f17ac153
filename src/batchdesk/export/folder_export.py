"""Writing stored files into a folder: one job's outputs, or a whole batch delivered.

Nothing half-written ever carries a name a reader of the folder (a person, a sync client, a
render farm) would pick up: one job's outputs are each written under a temporary name and
renamed when complete; a delivered batch is written into a hidden folder that is renamed when
the whole batch and its manifest are in.
"""

import errno
import os
import secrets
import shutil
from contextlib import suppress
from pathlib import Path
from uuid import UUID

from batchdesk.domain.units import plural
from batchdesk.errors import FileProblem, KnownError, NotFound
from batchdesk.export.atomic_file import TargetExists, atomic_target, sync_folder
from batchdesk.export.batch_walk import placed_files
from batchdesk.export.entry_names import UniqueNames
from batchdesk.export.layout import MANIFEST_NAME, BatchLayout, batch_folder_name
from batchdesk.export.manifest import ManifestWriter
from batchdesk.export.summary import ExportSummary, StatusTally
from batchdesk.export.transfer import CancelCheck, ProgressCallback, Transfer
from batchdesk.storage import batch_contents, batch_queries, deliveries
from batchdesk.storage.database import Database
from batchdesk.storage.pool import Connection, only_row

# A delivery being written: `.BASE_NAME.partial-xxxxxxxx` beside `BASE_NAME/`.
PARTIAL_MARK = ".partial-"


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
            share_paths=database.share_paths,
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
    """Deliver a batch by hand: as `write_delivery`, holding the batch's delivery lock.

    Auto-delivery takes the same lock, so the two never write the same batch at once.
    """
    with database.connect() as connection:
        row = batch_queries.find_batch(connection, str(batch))
    with deliveries.claimed(database, row.id, only_if_due=False) as mine:
        if not mine:
            raise KnownError(
                f"{row.base_directory_name} is being delivered by another workstation right "
                "now; try again when it has finished."
            )
        return write_delivery(database, row.id, folder, progress=progress, cancelled=cancelled)


def write_delivery(
    database: Database,
    batch_id: UUID,
    folder: Path,
    *,
    progress: ProgressCallback | None = None,
    cancelled: CancelCheck | None = None,
) -> ExportSummary:
    """Write the batch to `folder/BASE_NAME/` as the zip would hold it, and record the delivery.

    Everything is written into a hidden `.BASE_NAME.partial-xxxx` folder beside the target,
    which becomes `BASE_NAME/` only when every file and the manifest are in: whoever watches
    the folder never sees a batch folder without its manifest. Whatever stops the writing (a
    full disk, a cancel, Ctrl+C, a lost database) removes the partial folder. Delivering again
    replaces the files with the same names, each by a rename once all are written, the manifest
    last; other files there are left alone. The caller holds the batch's delivery lock.
    """
    root = Path(folder).absolute()
    with database.connect() as connection:
        row = batch_queries.find_batch(connection, str(batch_id))
        # The delivery shows the batch as from now; a batch completed later is due again.
        as_of = only_row(connection.execute("SELECT now()"))[0]
        name = row.base_directory_name
        destination = root / batch_folder_name(name)
        totals = batch_contents.totals(connection, row.id)
        make_folder(root)
        if destination.exists() and not destination.is_dir():
            raise FileProblem(f"{destination} is a file, not a folder; move it or choose another.")
        again = destination.is_dir()
        left = (
            f"the earlier delivery in {destination} is as it was"
            if again
            else f"nothing was left in {root}"
        )
        transfer = Transfer(
            totals.output_bytes,
            totals.output_files,
            progress,
            cancelled,
            f"Delivery of {name} cancelled; {left}.",
            share_paths=database.share_paths,
        )
        _remove_partial_folders(root, destination.name)
        partial = _make_partial_folder(root, destination.name, name)
        tally = StatusTally()
        try:
            _write_batch(connection, row.id, name, partial, tally, transfer)
            if again:
                # Renames on one file system: short of a broken disk, nothing fails here.
                left = f"some files in {destination} may be new and some as they were"
                _replace_files(partial, destination)
            else:
                os.rename(partial, destination)
            sync_folder(root)
        except OSError as exc:
            shutil.rmtree(partial, ignore_errors=True)
            raise FileProblem(
                _failure(exc, name, root, transfer.done_files, totals.output_files, left)
            ) from exc
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
    deliveries.mark_delivered(database, row.id, str(destination), as_of)
    return ExportSummary(name, destination, transfer.done_files, transfer.done_bytes, tally)


def _write_batch(
    connection: Connection,
    batch_id: UUID,
    name: str,
    partial: Path,
    tally: StatusTally,
    transfer: Transfer,
) -> None:
    """Write every output and the manifest into `partial`, each file flushed to the disk."""
    layout = BatchLayout(include_inputs=False)
    with (partial / MANIFEST_NAME).open("xb") as manifest_stream:
        manifest = ManifestWriter(manifest_stream)
        for _placed, file in placed_files(connection, batch_id, layout, manifest, tally, transfer):
            target = partial / file.path
            target.parent.mkdir(parents=True, exist_ok=True)
            with target.open("xb") as stream:
                transfer.copy(connection, file.stored, file.path, stream.write, batch=name)
                stream.flush()
                os.fsync(stream.fileno())
        manifest.detach()
        manifest_stream.flush()
        os.fsync(manifest_stream.fileno())


def _replace_files(partial: Path, destination: Path) -> None:
    """Move every file of `partial` into `destination`, replacing same names, manifest last."""
    files = sorted(
        (path for path in partial.rglob("*") if not path.is_dir()),
        key=lambda path: (path.name == MANIFEST_NAME and path.parent == partial, str(path)),
    )
    for path in files:
        target = destination / path.relative_to(partial)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, target)
    shutil.rmtree(partial)
    sync_folder(destination)


def _partial_prefix(folder_name: str) -> str:
    return f".{folder_name}{PARTIAL_MARK}"


def _make_partial_folder(root: Path, folder_name: str, name: str) -> Path:
    partial = root / f"{_partial_prefix(folder_name)}{secrets.token_hex(4)}"
    try:
        partial.mkdir()  # the permissions any folder the user makes would get
    except OSError as exc:
        raise FileProblem(_failure(exc, name, root, 0, 0, f"nothing was left in {root}")) from exc
    return partial


def _remove_partial_folders(root: Path, folder_name: str) -> None:
    """Remove what a delivery of this batch that was killed midway left (we hold its lock)."""
    prefix = _partial_prefix(folder_name)
    with suppress(OSError), os.scandir(root) as entries:
        for entry in entries:
            if entry.name.startswith(prefix) and entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)


def _failure(exc: OSError, name: str, root: Path, done: int, total: int, left: str) -> str:
    """One sentence: which delivery failed, why, how far it got, and what was left."""
    after = f" after {done:,} of {plural(total, 'file')}" if done else ""
    code = exc.errno
    if code in (errno.ENOSPC, errno.EDQUOT):
        return (
            f"Delivery of {name} failed: the disk holding {root} is full{after}; {left}. "
            "Free some space or choose another folder."
        )
    if code in (errno.EACCES, errno.EPERM):
        return (
            f"Delivery of {name} failed: permission denied in {root}{after}; {left}. "
            "Choose a folder you can write to."
        )
    if code == errno.EROFS:
        return f"Delivery of {name} failed: {root} is on a read-only file system; {left}."
    return f"Delivery of {name} failed{after}: {exc.strerror or exc}; {left}."
