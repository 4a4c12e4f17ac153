"""The farm commands: priority, pause, resume, retry of single jobs, and the studio's workers."""

import argparse
from collections.abc import Sequence

from batchdesk.app import AppContext, open_app
from batchdesk.cli.output import err, print_json, short, table, visible
from batchdesk.domain.units import plural
from batchdesk.errors import InvalidRequest
from batchdesk.storage import batch_queries, farm_controls, workers
from batchdesk.storage.batch_queries import BatchRow


def _find_batches(app: AppContext, references: Sequence[str]) -> list[BatchRow]:
    """The batches named (ids or names), each once, in the order given; unknown ones refused."""
    with app.database.connect() as connection:
        found = [batch_queries.find_batch(connection, ref) for ref in references]
    return list({batch.id: batch for batch in found}.values())


def split_priority_arguments(items: Sequence[str]) -> tuple[list[str], int]:
    """`BATCH... N` -> the batches and the priority; a usage error when either is missing."""
    if len(items) < 2:
        raise InvalidRequest(
            "batchdesk priority: give one or more batches, then the priority, e.g. "
            "`batchdesk priority PL_DXB_2026-11-28_batch-3 80`."
        )
    return list(items[:-1]), farm_controls.parse_priority(items[-1])


def cmd_priority(args: argparse.Namespace) -> int:
    references, priority = split_priority_arguments(args.items)
    with open_app(args.database_url, on_status=err) as app:
        app.database.require_write("changing priorities")
        batches = _find_batches(app, references)
        changes = farm_controls.set_priority(app.database, [b.id for b in batches], priority)
    for change in changes:
        was = "unchanged" if change.was == change.priority else f"was {change.was}"
        print(f"{change.base_directory_name}: priority {change.priority} ({was}).")
    return 0


def cmd_pause(args: argparse.Namespace) -> int:
    with open_app(args.database_url, on_status=err) as app:
        app.database.require_write("pausing")
        batches = _find_batches(app, args.batches)
        changes = farm_controls.pause(app.database, [b.id for b in batches])
    for change in changes:
        waiting = f"{plural(change.queued, 'queued job')} wait for `batchdesk resume`"
        if change.running:
            waiting += f"; {change.running} running will finish"
        if change.already:
            print(f"{change.base_directory_name} was already paused: {waiting}.")
        else:
            print(f"Paused {change.base_directory_name}: {waiting}.")
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    with open_app(args.database_url, on_status=err) as app:
        app.database.require_write("resuming")
        batches = _find_batches(app, args.batches)
        changes = farm_controls.resume(app.database, [b.id for b in batches])
    for change in changes:
        if change.already:
            print(f"{change.base_directory_name} is not paused.")
        else:
            print(
                f"Resumed {change.base_directory_name}: "
                f"{plural(change.queued, 'queued job')} may run."
            )
    return 0


def retry_jobs(args: argparse.Namespace) -> int:
    """`batchdesk retry BATCH --job FILE_NAME...`: finished jobs back to the queue."""
    with open_app(args.database_url, on_status=err) as app:
        app.database.require_write("retrying")
        (batch,) = _find_batches(app, [args.batch])
        requeued = farm_controls.requeue_jobs(
            app.database, batch.id, batch.base_directory_name, args.jobs
        )
    for job in requeued:
        print(
            f"Queued {visible(job.file_name)} ({job.was}) of {batch.base_directory_name} "
            "again, with fresh attempts."
        )
    return 0


def _seconds(value: float) -> str:
    return f"{value:.0f} s ago" if value < 120 else f"{value / 60:.0f} min ago"


def _state(worker: workers.WorkerRow) -> str:
    if worker.state == "stopping" or worker.state == worker.desired_state:
        return worker.state
    return f"{worker.state}, {worker.desired_state} asked"


def _running(worker: workers.WorkerRow) -> str:
    if not worker.running:
        return "-"
    first = worker.running[0]
    more = f" +{len(worker.running) - 1}" if len(worker.running) > 1 else ""
    return short(f"{first.batch} / {first.file_name}", 50) + more


def cmd_workers(args: argparse.Namespace) -> int:
    if args.workers_command in ("pause", "resume"):
        return _steer_workers(args)
    with open_app(args.database_url, on_status=err) as app, app.database.connect() as connection:
        rows = workers.list_workers(connection)
        silent = workers.silent_workers(connection)
    if args.json:
        print_json([row.as_json() for row in rows])
        return 0
    if not rows:
        print("No worker is running: open the window or start `batchdesk worker` somewhere.")
    else:
        print(
            table(
                ["WORKER", "KIND", "THREADS", "STATE", "HEARD", "RUNNING", "TODAY", "WEEK"],
                [
                    [
                        visible(row.id),
                        row.kind,
                        str(row.threads),
                        _state(row),
                        _seconds(row.seconds_since_heartbeat),
                        _running(row),
                        str(row.done_today),
                        str(row.done_this_week),
                    ]
                    for row in rows
                ],
            )
        )
    if silent:
        err(
            f"{plural(silent, 'worker has', 'workers have')} not been heard from for over "
            f"{workers.LIVE_WITHIN_SECONDS:.0f} s (stopped or cut off); the next running "
            "worker gives back their jobs."
        )
    return 0


def _steer_workers(args: argparse.Namespace) -> int:
    desired = "paused" if args.workers_command == "pause" else "running"
    with open_app(args.database_url, on_status=err) as app:
        app.database.require_write("steering workers")
        steered = workers.set_desired_state(app.database, args.worker, desired)
    for worker in steered:
        name = visible(worker.id)
        if worker.was == desired:
            print(f"{name} was already asked to {'pause' if desired == 'paused' else 'run'}.")
        elif desired == "paused":
            print(f"Asked {name} to pause: it finishes its running jobs and takes no new ones.")
        else:
            print(f"Asked {name} to run again.")
    return 0
