"""The batch commands: gui, submit, list, show, stats, delete."""

import argparse
import importlib
import sys
from pathlib import Path
from types import ModuleType

from batchdesk.app import open_app
from batchdesk.cli.output import (
    ProgressLine,
    err,
    local_time,
    print_json,
    short,
    table,
    visible,
)
from batchdesk.domain.batch_query import (
    BatchQuery,
    parse_moment,
    parse_sort_column,
    parse_sort_order,
    parse_statuses,
)
from batchdesk.domain.file_selection import FileSelection, select_files
from batchdesk.domain.units import format_size, plural
from batchdesk.errors import InvalidRequest, KnownError
from batchdesk.jobs.pipeline_document import check_row
from batchdesk.storage import batch_queries, job_attempts
from batchdesk.storage.submission import SubmissionRequest, current_user, submit

# Skipped files listed one per line up to this many; beyond it, a count.
MAX_LISTED_SKIPS = 20


def _window_module(name: str) -> ModuleType:
    """Import batchdesk.gui.NAME; a machine without Qt's libraries gets a sentence, not a trace."""
    try:
        return importlib.import_module(f"batchdesk.gui.{name}")
    except ImportError as exc:
        if not (exc.name or "").startswith(("PySide6", "shiboken6")):
            raise  # our bug, not the machine's
        raise KnownError(  # Qt or the system libraries it needs are missing here
            f"The window cannot start: {exc}. Install the system libraries Qt needs "
            "(scripts/install does it as root; the README lists them), or use the command line."
        ) from exc


def cmd_gui(args: argparse.Namespace) -> int:
    run_gui = _window_module("application").run_gui
    return int(run_gui(args.database_url, error_dialogs=not args.no_error_dialogs))


def cmd_self_test(_args: argparse.Namespace) -> int:
    return int(_window_module("self_test").run_self_test())


def _report_skips(selection: FileSelection) -> None:
    for rejected in selection.rejected[:MAX_LISTED_SKIPS]:
        err(f"Skipped {rejected.display}: {rejected.reason}.")
    hidden = len(selection.rejected) - MAX_LISTED_SKIPS
    if hidden > 0:
        err(f"Skipped {plural(hidden, 'more path')} (use --json to see every one).")


def _skipped_json(selection: FileSelection) -> list[dict[str, str]]:
    return [{"path": r.display, "reason": r.reason} for r in selection.rejected]


def cmd_submit(args: argparse.Namespace) -> int:
    selection = select_files(args.paths)
    if not args.json:
        _report_skips(selection)
    if not selection.files:
        if args.json:
            print_json({"batches": [], "skipped": _skipped_json(selection), "warnings": []})
        raise KnownError(
            f"No PNG files to submit: {plural(len(selection.rejected), 'path')} skipped."
        )
    with open_app(args.database_url, on_status=err) as app:
        app.database.require_write("submitting")
        request = SubmissionRequest(
            files=selection.files,
            source_paths=tuple(Path(p) for p in args.paths),
            description=args.description,
            pipeline=args.pipeline or app.settings.default_pipeline,
            split_by_prefix=args.split_by_prefix,
            prefix_rule=app.settings.prefix_rule,
            created_by=current_user(),
        )
        progress = ProgressLine()
        try:
            result = submit(app.database, request, progress, check_pipeline=check_row)
        finally:
            progress.finish()
    if args.json:
        print_json(
            {
                "batches": [
                    {
                        "id": str(b.id),
                        "base_directory_name": b.base_directory_name,
                        "customer_prefix": b.customer_prefix,
                        "batch_date": b.batch_date.isoformat(),
                        "batch_counter": b.batch_counter,
                        "render_description": b.render_description,
                        "pipeline": b.pipeline,
                        "pipeline_version": b.pipeline_version,
                        "total_files": b.total_files,
                        "total_size": b.total_size,
                        "status": b.status,
                    }
                    for b in result.batches
                ],
                "skipped": _skipped_json(selection),
                "warnings": list(result.warnings),
            }
        )
        return 0
    for warning in result.warnings:
        err(f"Warning: {warning}")
    for batch in result.batches:
        print(
            visible(
                f"Created {batch.base_directory_name}: {plural(batch.total_files, 'file')}, "
                f"{format_size(batch.total_size)}, pipeline {batch.pipeline} (id {batch.id})"
            )
        )
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    query = BatchQuery(
        statuses=parse_statuses(args.status),
        customer_prefix=args.customer,
        text=args.text,
        created_by=args.created_by,
        pipeline=args.pipeline,
        created_from=parse_moment(args.since) if args.since else None,
        created_before=parse_moment(args.until, end_of_day=True) if args.until else None,
        finished_from=parse_moment(args.finished_since) if args.finished_since else None,
        sort_by=parse_sort_column(args.sort_by),
        order=parse_sort_order(args.order),
        limit=args.limit,
        offset=args.offset,
    )
    with open_app(args.database_url, on_status=err) as app, app.database.connect() as connection:
        batches, total = batch_queries.batch_page(connection, query)
        any_batches = total > 0 or batch_queries.count_batches(connection, BatchQuery()) > 0
    if args.json:
        print_json([b.as_json() for b in batches])
        return 0
    if not batches:
        if total or any_batches:
            print("No batches match.")
        else:
            print("No batches yet: submit some PNG files.")
        return 0
    rows = [
        [
            b.base_directory_name,
            b.status,
            str(b.priority),
            f"{b.finished_count}/{b.total_files}",
            format_size(b.total_size),
            local_time(b.created_at),
            short(b.render_description, 40),
        ]
        for b in batches
    ]
    print(table(["NAME", "STATUS", "PRI", "DONE", "SIZE", "CREATED", "DESCRIPTION"], rows))
    if total > len(batches):
        first = args.offset + 1
        print(f"Showing {first}-{args.offset + len(batches)} of {total:,} batches.")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    with open_app(args.database_url, on_status=err) as app, app.database.connect() as connection:
        batch = batch_queries.find_batch(connection, args.batch)
        jobs = batch_queries.list_jobs(connection, batch.id)
        histories = job_attempts.batch_histories(connection, batch.id) if args.json else {}
    if args.json:
        jobs_json = [
            j.as_json() | {"history": [a.as_json() for a in histories.get(j.id, ())]} for j in jobs
        ]
        print_json(batch.as_json() | {"jobs": jobs_json})
        return 0
    print(batch.base_directory_name)
    details = [
        ("Status", batch.status),
        ("Priority", str(batch.priority)),
        *(
            [("Paused", f"since {local_time(batch.paused_at)} (batchdesk resume lets it run)")]
            if batch.paused_at
            else []
        ),
        ("Description", visible(batch.render_description)),
        ("Pipeline", visible(f"{batch.pipeline}, version {batch.pipeline_version}")),
        (
            "Jobs",
            f"{batch.total_files} ({batch.queued_count} queued, {batch.processing_count} "
            f"processing, {batch.completed_count} completed, {batch.failed_count} failed, "
            f"{batch.cancelled_count} cancelled)",
        ),
        ("Size", format_size(batch.total_size)),
        ("Created", f"{local_time(batch.created_at)} by {visible(batch.created_by)}"),
        ("Completed", local_time(batch.completed_at) or "-"),
        ("Finished", local_time(batch.finished_at) or "-"),
        ("Id", str(batch.id)),
    ]
    for label, value in details:
        print(f"  {label + ':':<13}{value}")
    print()
    rows = [
        [
            str(j.position + 1),
            short(j.file_name, 48),
            j.status,
            str(j.attempts),
            format_size(j.input_size),
            short(j.last_error or "", 60),
        ]
        for j in jobs
    ]
    print(table(["#", "FILE", "STATUS", "TRIES", "SIZE", "ERROR"], rows))
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    with open_app(args.database_url, on_status=err) as app, app.database.connect() as connection:
        stats = batch_queries.batch_stats(connection)
    if args.json:
        print_json(stats.as_json())
        return 0
    for key, value in stats.as_json().items():
        print(f"{key.replace('_', ' ')}: {value:,}")
    return 0


def _confirm(prompt: str) -> bool:
    if not sys.stdin.isatty():
        raise InvalidRequest("Refusing to delete without confirmation: add --yes.")
    answer = input(f"{prompt} [y/N] ").strip().lower()
    return answer in {"y", "yes"}


def cmd_delete(args: argparse.Namespace) -> int:
    with open_app(args.database_url, on_status=err) as app:
        app.database.require_write("deleting")
        with app.database.connect() as connection:
            batches = [batch_queries.find_batch(connection, ref) for ref in args.batches]
        unique = list({b.id: b for b in batches}.values())
        if not args.yes:
            listed = ", ".join(
                f"{b.base_directory_name} ({plural(b.total_files, 'file')})" for b in unique
            )
            if not _confirm(f"Delete {listed}, with their jobs and stored files?"):
                err("Nothing deleted.")
                return 1
        gone = []
        for batch in unique:
            with app.database.begin() as connection:
                deleted = batch_queries.delete_batch(connection, batch.id)
            gone.append(deleted)
            note = ""
            if deleted.interrupted_jobs:
                note = (
                    f"; {plural(deleted.interrupted_jobs, 'job was', 'jobs were')} running and "
                    "their results will be discarded"
                )
            print(
                f"Deleted {deleted.base_directory_name} ({plural(deleted.total_files, 'file')})"
                f"{note}."
            )
        if space := batch_queries.store_space_note(gone):
            print(space)
    return 0
