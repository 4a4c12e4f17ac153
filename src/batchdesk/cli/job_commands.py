"""The job commands: worker, retry, cancel."""

import argparse
import json
import sys
import threading
from pathlib import Path

from batchdesk.app import open_app
from batchdesk.cli.interruptible_wait import wait_interruptibly
from batchdesk.cli.output import err
from batchdesk.domain.units import plural
from batchdesk.export.delivery import AutoDelivery, DeliveryEvent
from batchdesk.jobs.job_execution import JobEvent
from batchdesk.jobs.runner import Runner, RunnerConfig
from batchdesk.storage import batch_queries, job_queue


class EventPrinter:
    """Progress lines on stderr (or JSON lines with --json), one per finished job."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self._lock = threading.Lock()

    def __call__(self, event: JobEvent | DeliveryEvent) -> None:
        with self._lock:
            if self.as_json:
                sys.stderr.write(json.dumps(event.__dict__) + "\n")
                sys.stderr.flush()
                return
            if event.kind == "started":
                return
            if isinstance(event, DeliveryEvent):
                if event.kind == "delivered":
                    err(f"Delivered {event.batch} to {event.path}")
                else:
                    err(f"Could not deliver {event.batch}: {event.message} (will try again)")
                return
            where = f"{event.batch} / {event.file_name}"
            if event.kind == "completed":
                line = f"Completed {where} in {event.seconds:.1f} s " + (
                    f"({plural(event.outputs, 'output')})"
                )
            elif event.kind == "failed":
                line = f"Failed {where}: {event.message}"
            elif event.kind == "requeued":
                line = f"Will retry {where}: {event.message}"
            else:
                line = f"{event.kind.capitalize()} {where}: {event.message}"
            err(line)

    def state_changed(self, state: str) -> None:
        """The studio asked this worker to pause or to run again (`batchdesk workers`)."""
        with self._lock:
            kind = "paused" if state == "paused" else "resumed"
            if self.as_json:
                sys.stderr.write(json.dumps({"kind": kind}) + "\n")
                sys.stderr.flush()
            elif kind == "paused":
                err("Paused on request: running jobs finish, no new ones start.")
            else:
                err("Resumed on request: taking jobs again.")


def cmd_worker(args: argparse.Namespace) -> int:
    with open_app(args.database_url, on_status=err) as app:
        app.database.require_write("running jobs")
        threads = args.threads or app.settings.worker_threads  # both checked: 1 to 64
        config = RunnerConfig(
            threads=threads,
            max_pixels=app.settings.max_megapixels * 1_000_000,
            memory_budget=app.settings.memory_budget_mb << 20,
            liveness_timeout=args.liveness_timeout,
        )
        printer = EventPrinter(args.json)
        runner = Runner(app.database, config, on_event=printer, on_state=printer.state_changed)
        folder = args.deliver_to or app.settings.delivery_folder
        delivery = AutoDelivery(app.database, Path(folder), on_event=printer) if folder else None
        runner.start()
        # From here on an interrupt, even one that lands while the first lines are written (a
        # supervisor sends it as soon as it reads them), stops the runner before the database
        # closes under its threads.
        try:
            if delivery is not None:
                delivery.start()
                err(f"Delivering completed batches to {delivery.folder}.")
            err(
                f"Worker {runner.worker_id} running {plural(threads, 'thread')} on the "
                f"{app.database.description}"
                + (" until the queue is empty." if args.drain else ".")
            )
            wait_interruptibly(runner.drained if args.drain else None)
        except KeyboardInterrupt:
            err("Stopping: giving back the jobs that have not finished...")
        except SystemExit:  # SIGTERM (a service stop): the same, then exit 143 as killed
            err("Stopping: giving back the jobs that have not finished...")
            raise
        finally:
            if delivery is not None:
                if args.drain:
                    delivery.deliver_pending()  # what the drained queue just completed
                delivery.stop()
            runner.stop()
    return 0


def cmd_retry(args: argparse.Namespace) -> int:
    if args.jobs:
        from batchdesk.cli.farm_commands import retry_jobs

        return retry_jobs(args)
    with open_app(args.database_url, on_status=err) as app:
        app.database.require_write("retrying")
        with app.database.connect() as connection:
            batch = batch_queries.find_batch(connection, args.batch)
        count = job_queue.retry_batch(app.database, batch.id)
    if count:
        print(f"Queued {plural(count, 'failed job')} of {batch.base_directory_name} again.")
    else:
        print(f"{batch.base_directory_name} has no failed jobs to retry.")
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    with open_app(args.database_url, on_status=err) as app:
        app.database.require_write("cancelling")
        with app.database.connect() as connection:
            batch = batch_queries.find_batch(connection, args.batch)
        result = job_queue.cancel_batch(app.database, batch.id)
    if not result.queued and not result.running:
        print(f"{batch.base_directory_name} has no unfinished jobs to cancel.")
        return 0
    print(
        f"Cancelled {plural(result.queued + result.running, 'job')} of "
        f"{batch.base_directory_name}"
        + (f"; {result.running} running will stop at their next step." if result.running else ".")
    )
    return 0
