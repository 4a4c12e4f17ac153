"""Walking a batch for export: each job placed, listed and counted, then its files handed out.

The zip export and folder delivery write files differently but walk a batch the same way.
"""

from collections.abc import Iterator
from uuid import UUID

from batchdesk.export.layout import BatchLayout, PlacedFile, PlacedJob
from batchdesk.export.manifest import ManifestWriter
from batchdesk.export.summary import StatusTally
from batchdesk.export.transfer import Transfer
from batchdesk.storage import batch_contents
from batchdesk.storage.pool import Connection


def placed_files(
    connection: Connection,
    batch_id: UUID,
    layout: BatchLayout,
    manifest: ManifestWriter,
    tally: StatusTally,
    transfer: Transfer,
) -> Iterator[tuple[PlacedJob, PlacedFile]]:
    """Yield every file of the batch in job order, with its job already in manifest and tally."""
    for job in batch_contents.iter_contents(connection, batch_id):
        transfer.check_cancelled()
        placed = layout.place(job)
        manifest.add(placed)
        tally.add(job.status)
        for file in placed.files:
            yield placed, file
