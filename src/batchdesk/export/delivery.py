"""Auto-delivery: every batch that completes is written to DELIVERY_FOLDER/BASE_NAME/.

Runs on a thread beside the job runner (in `batchdesk worker` and in the window) on machines
whose settings name a delivery folder. Batches that completed within the look-back window and
were not delivered since are picked up, so a machine that was off or restarting catches up,
while turning delivery on does not write out the studio's whole history. A delivery that fails
(folder unplugged, disk full) is tried again after a pause; the others go on.
"""

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

from batchdesk.errors import Cancelled, KnownError
from batchdesk.export.folder_export import write_delivery
from batchdesk.export.summary import ExportSummary
from batchdesk.storage import deliveries
from batchdesk.storage.database import Database

log = logging.getLogger(__name__)

LOOKBACK_SECONDS = 24 * 3600.0
RETRY_AFTER_SECONDS = 300.0


@dataclass(frozen=True)
class DeliveryEvent:
    kind: str  # delivered, failed
    batch: str
    path: str
    message: str = ""


class AutoDelivery:
    """Delivers completed batches to one folder, one batch at a time."""

    def __init__(
        self,
        database: Database,
        folder: Path,
        *,
        interval: float = 10.0,
        lookback_seconds: float = LOOKBACK_SECONDS,
        retry_after: float = RETRY_AFTER_SECONDS,
        on_event: Callable[[DeliveryEvent], None] | None = None,
    ) -> None:
        self.database = database
        self.folder = Path(folder).expanduser().absolute()
        self.interval = interval
        self.lookback_seconds = lookback_seconds
        self.retry_after = retry_after
        self._on_event = on_event or (lambda _event: None)
        self._failed_at: dict[UUID, float] = {}
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="batchdesk-delivery", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop after the file being written; a batch cut short leaves nothing and is
        delivered again later."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                self.deliver_pending()
            except KnownError as exc:  # the database went away: try again at the next round
                log.warning("auto-delivery paused: %s", exc)
            self._stopping.wait(self.interval)

    def deliver_pending(self) -> list[ExportSummary]:
        """Deliver every batch waiting now; return what was written."""
        with self.database.connect() as connection:
            waiting = deliveries.pending(connection, self.lookback_seconds)
        done: list[ExportSummary] = []
        for item in waiting:
            if self._stopping.is_set():
                break
            failed_at = self._failed_at.get(item.batch_id)
            if failed_at is not None and time.monotonic() - failed_at < self.retry_after:
                continue
            summary = self._deliver(item)
            if summary is not None:
                done.append(summary)
        return done

    def _deliver(self, item: deliveries.PendingDelivery) -> ExportSummary | None:
        with deliveries.claimed(self.database, item.batch_id) as mine:
            if not mine:
                return None
            try:
                summary = write_delivery(
                    self.database, item.batch_id, self.folder, cancelled=self._stopping.is_set
                )
            except Cancelled:
                return None  # stopping; delivered again by whoever runs next
            except KnownError as exc:
                self._failed_at[item.batch_id] = time.monotonic()
                log.warning("could not deliver %s: %s", item.base_directory_name, exc)
                self._on_event(
                    DeliveryEvent("failed", item.base_directory_name, str(self.folder), str(exc))
                )
                return None
        self._failed_at.pop(item.batch_id, None)
        self._on_event(DeliveryEvent("delivered", summary.batch, str(summary.path)))
        return summary
