"""The `batchdesk` command line: a stable contract that scripts and tests rely on.

Exit codes: 0 success, 1 failure (the environment or the data said no), 2 usage. Errors are one
sentence on stderr; `--json` output goes to stdout and nothing else does.
"""

import argparse
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from batchdesk import __version__
from batchdesk.app import open_app
from batchdesk.domain.batch_query import (
    SORT_COLUMNS,
    BatchQuery,
    parse_sort_column,
    parse_sort_order,
    parse_statuses,
)
from batchdesk.domain.file_selection import FileSelection, select_files
from batchdesk.domain.units import format_size, plural
from batchdesk.errors import InvalidRequest, KnownError
from batchdesk.storage import batch_queries, migrations_runner
from batchdesk.storage.submission import SubmissionRequest, current_user, submit

# Skipped files listed one per line up to this many; beyond it, a count.
MAX_LISTED_SKIPS = 20


class UsageError(KnownError):
    exit_code = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help).")


def _err(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _print_json(value: Any) -> None:
    json.dump(value, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="batchdesk",
        description="Turn folders of PNG renders into named, tracked, exported batches.",
    )
    parser.add_argument("--version", action="version", version=f"batchdesk {__version__}")
    parser.add_argument(
        "--database-url",
        metavar="URL",
        help="PostgreSQL server to use (also BATCHDESK_DATABASE_URL); default: embedded",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    commands.add_parser("gui", help="open the window (the default)")

    submit_cmd = commands.add_parser("submit", help="files or folders of PNGs -> batch(es)")
    submit_cmd.add_argument("paths", nargs="+", metavar="PATH", type=Path)
    submit_cmd.add_argument("-d", "--description", default="", help="batch description")
    submit_cmd.add_argument("-p", "--pipeline", help="pipeline name (see settings for default)")
    submit_cmd.add_argument(
        "--split-by-prefix", action="store_true", help="one batch per customer prefix"
    )
    submit_cmd.add_argument("--json", action="store_true", help="print the result as JSON")

    list_cmd = commands.add_parser("list", help="list batches")
    list_cmd.add_argument(
        "--status",
        action="append",
        default=[],
        help="queued, processing, completed, failed, cancelled (repeat for several)",
    )
    list_cmd.add_argument("--customer", metavar="PREFIX", help="customer prefix, e.g. PL_DXB")
    list_cmd.add_argument("--text", help="text in the name or description")
    list_cmd.add_argument(
        "--sort-by", default="created_at", metavar="COL", help=", ".join(SORT_COLUMNS)
    )
    list_cmd.add_argument("--order", default="desc", help="asc or desc (default desc)")
    list_cmd.add_argument("--limit", type=int, default=100, help="batches per page (100)")
    list_cmd.add_argument("--offset", type=int, default=0, help="skip this many batches")
    list_cmd.add_argument("--json", action="store_true")

    show_cmd = commands.add_parser("show", help="one batch and its jobs")
    show_cmd.add_argument("batch", metavar="BATCH", help="batch id or base directory name")
    show_cmd.add_argument("--json", action="store_true")

    stats_cmd = commands.add_parser("stats", help="dashboard figures")
    stats_cmd.add_argument("--json", action="store_true")

    delete_cmd = commands.add_parser("delete", help="delete batches with their jobs and files")
    delete_cmd.add_argument("batches", nargs="+", metavar="BATCH")
    delete_cmd.add_argument("--yes", action="store_true", help="do not ask for confirmation")

    db_cmd = commands.add_parser("db", help="database schema and health")
    db_commands = db_cmd.add_subparsers(dest="db_command", metavar="ACTION", parser_class=_Parser)
    db_commands.required = True
    db_commands.add_parser("upgrade", help="bring the schema up to this version")
    status_cmd = db_commands.add_parser("status", help="which database, which schema revision")
    status_cmd.add_argument("--json", action="store_true")
    db_commands.add_parser("check", help="find batches whose counts disagree with their jobs")
    db_commands.add_parser("repair", help="recount the batches that `check` finds")
    tz_cmd = db_commands.add_parser("timezone", help="show or set the zone that decides 'today'")
    tz_cmd.add_argument("zone", nargs="?", help="e.g. Europe/London; 'server' for the default")
    return parser


def _status_printer(args: argparse.Namespace) -> Callable[[str], None]:
    return _err


def cmd_gui(args: argparse.Namespace) -> int:
    # The window arrives with the GUI; until then show what a window would open on.
    with open_app(args.database_url, on_status=_err) as app:
        with app.database.connect() as connection:
            stats = batch_queries.batch_stats(connection)
        print(f"batchdesk {__version__} on the {app.database.description}")
        print(
            f"{plural(stats.total_batches, 'batch', 'batches')}: {stats.queued} queued, "
            f"{stats.processing} processing, {stats.completed} completed, "
            f"{stats.failed} failed."
        )
        print("The desktop window is not part of this build yet; see `batchdesk --help`.")
    return 0


def _report_skips(selection: FileSelection) -> None:
    for rejected in selection.rejected[:MAX_LISTED_SKIPS]:
        _err(f"Skipped {rejected.display}: {rejected.reason}.")
    hidden = len(selection.rejected) - MAX_LISTED_SKIPS
    if hidden > 0:
        _err(f"Skipped {plural(hidden, 'more path')} (use --json to see every one).")


class _ProgressLine:
    """A single updating progress line on stderr, only when stderr is a terminal."""

    def __init__(self) -> None:
        self.enabled = sys.stderr.isatty()
        self.shown = False

    def __call__(self, phase: str, done: int, total: int) -> None:
        if not self.enabled or total == 0:
            return
        percent = 100 * done // total
        sys.stderr.write(f"\r{phase} {percent:3d}% ({format_size(done)} of {format_size(total)})")
        sys.stderr.flush()
        self.shown = True

    def finish(self) -> None:
        if self.shown:
            sys.stderr.write("\n")


def cmd_submit(args: argparse.Namespace) -> int:
    selection = select_files(args.paths)
    if not args.json:
        _report_skips(selection)
    if not selection.files:
        raise KnownError(
            f"No PNG files to submit: {plural(len(selection.rejected), 'path')} skipped."
        )
    with open_app(args.database_url, on_status=_err) as app:
        request = SubmissionRequest(
            files=selection.files,
            source_paths=tuple(args.paths),
            description=args.description,
            pipeline=args.pipeline or app.settings.default_pipeline,
            split_by_prefix=args.split_by_prefix,
            prefix_rule=app.settings.prefix_rule,
            created_by=current_user(),
        )
        progress = _ProgressLine()
        try:
            result = submit(app.database, request, progress)
        finally:
            progress.finish()
    if args.json:
        _print_json(
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
                        "total_files": b.total_files,
                        "total_size": b.total_size,
                        "status": b.status,
                    }
                    for b in result.batches
                ],
                "skipped": [{"path": r.display, "reason": r.reason} for r in selection.rejected],
                "warnings": list(result.warnings),
            }
        )
        return 0
    for warning in result.warnings:
        _err(f"Warning: {warning}")
    for batch in result.batches:
        print(
            f"Created {batch.base_directory_name}: {plural(batch.total_files, 'file')}, "
            f"{format_size(batch.total_size)}, pipeline {batch.pipeline} (id {batch.id})"
        )
    return 0


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    for row in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)


def _short(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _local_time(value: Any) -> str:
    return value.astimezone().strftime("%Y-%m-%d %H:%M") if value else ""


def cmd_list(args: argparse.Namespace) -> int:
    query = BatchQuery(
        statuses=parse_statuses(args.status),
        customer_prefix=args.customer,
        text=args.text,
        sort_by=parse_sort_column(args.sort_by),
        order=parse_sort_order(args.order),
        limit=args.limit,
        offset=args.offset,
    )
    with open_app(args.database_url, on_status=_err) as app, app.database.connect() as connection:
        batches = batch_queries.list_batches(connection, query)
        total = batch_queries.count_batches(connection, query)
    if args.json:
        _print_json([b.as_json() for b in batches])
        return 0
    if not batches:
        print("No batches match." if total else "No batches yet: submit some PNG files.")
        return 0
    rows = [
        [
            b.base_directory_name,
            b.status,
            f"{b.finished_count}/{b.total_files}",
            format_size(b.total_size),
            _local_time(b.created_at),
            _short(b.render_description, 40),
        ]
        for b in batches
    ]
    print(_table(["NAME", "STATUS", "DONE", "SIZE", "CREATED", "DESCRIPTION"], rows))
    if total > len(batches):
        first = args.offset + 1
        print(f"Showing {first}-{args.offset + len(batches)} of {total:,} batches.")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    with open_app(args.database_url, on_status=_err) as app, app.database.connect() as connection:
        batch = batch_queries.find_batch(connection, args.batch)
        jobs = batch_queries.list_jobs(connection, batch.id)
    if args.json:
        _print_json(batch.as_json() | {"jobs": [j.as_json() for j in jobs]})
        return 0
    print(batch.base_directory_name)
    details = [
        ("Status", batch.status),
        ("Description", batch.render_description),
        ("Pipeline", batch.pipeline),
        (
            "Jobs",
            f"{batch.total_files} ({batch.queued_count} queued, {batch.processing_count} "
            f"processing, {batch.completed_count} completed, {batch.failed_count} failed, "
            f"{batch.cancelled_count} cancelled)",
        ),
        ("Size", format_size(batch.total_size)),
        ("Created", f"{_local_time(batch.created_at)} by {batch.created_by}"),
        ("Completed", _local_time(batch.completed_at) or "-"),
        ("Id", str(batch.id)),
    ]
    for label, value in details:
        print(f"  {label + ':':<13}{value}")
    print()
    rows = [
        [
            str(j.position + 1),
            _short(j.file_name, 48),
            j.status,
            str(j.attempts),
            format_size(j.input_size),
            _short(j.last_error or "", 60),
        ]
        for j in jobs
    ]
    print(_table(["#", "FILE", "STATUS", "TRIES", "SIZE", "ERROR"], rows))
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    with open_app(args.database_url, on_status=_err) as app, app.database.connect() as connection:
        stats = batch_queries.batch_stats(connection)
    if args.json:
        _print_json(stats.as_json())
        return 0
    for key, value in stats.as_json().items():
        print(f"{key.replace('_', ' ')}: {value:,}")
    return 0


def _confirm(prompt: str) -> bool:
    if not sys.stdin.isatty():
        raise UsageError("Refusing to delete without confirmation: add --yes.")
    answer = input(f"{prompt} [y/N] ").strip().lower()
    return answer in {"y", "yes"}


def cmd_delete(args: argparse.Namespace) -> int:
    with open_app(args.database_url, on_status=_err) as app:
        with app.database.connect() as connection:
            batches = [batch_queries.find_batch(connection, ref) for ref in args.batches]
        unique = list({b.id: b for b in batches}.values())
        if not args.yes:
            listed = ", ".join(
                f"{b.base_directory_name} ({plural(b.total_files, 'file')})" for b in unique
            )
            if not _confirm(f"Delete {listed}, with their jobs and stored files?"):
                _err("Nothing deleted.")
                return 1
        for batch in unique:
            with app.database.begin() as connection:
                deleted = batch_queries.delete_batch(connection, batch.id)
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
    return 0


def cmd_db(args: argparse.Namespace) -> int:
    handler = {
        "upgrade": _db_upgrade,
        "status": _db_status,
        "check": _db_check,
        "repair": _db_repair,
        "timezone": _db_timezone,
    }[args.db_command]
    return handler(args)


def _db_upgrade(args: argparse.Namespace) -> int:
    with open_app(args.database_url, upgrade=False, on_status=_err) as app:
        before = migrations_runner.schema_status(app.database)
        after = migrations_runner.upgrade(app.database)
        if before.current == after.current:
            print(f"The schema of the {app.database.description} is {after.describe()}.")
        else:
            print(
                f"Upgraded the {app.database.description} from revision "
                f"{before.current or 'none'} to {after.current}."
            )
    return 0


def _db_status(args: argparse.Namespace) -> int:
    with open_app(args.database_url, upgrade=False, on_status=_err) as app:
        status = migrations_runner.schema_status(app.database)
        if args.json:
            _print_json(
                {
                    "database": app.database.description,
                    "embedded": app.database.is_embedded,
                    "current_revision": status.current,
                    "head_revision": status.head,
                    "up_to_date": status.is_current,
                }
            )
        else:
            kind = "embedded" if app.database.is_embedded else "server"
            print(f"Database: {app.database.description} ({kind})")
            print(f"Schema: {status.describe()}")
    return 0 if status.is_current else 1


def _db_check(args: argparse.Namespace) -> int:
    with open_app(args.database_url, on_status=_err) as app, app.database.connect() as connection:
        drifted = batch_queries.drifted_batches(connection)
    if not drifted:
        print("All batch counts agree with their jobs.")
        return 0
    for name in drifted:
        print(f"{name}: counts disagree with its jobs")
    _err(f"{plural(len(drifted), 'batch', 'batches')} drifted: run `batchdesk db repair`.")
    return 1


def _db_repair(args: argparse.Namespace) -> int:
    with open_app(args.database_url, on_status=_err) as app:
        with app.database.connect() as connection:
            drifted = batch_queries.drifted_batches(connection)
            found = [batch_queries.find_batch(connection, name) for name in drifted]
        repaired = 0
        for batch in found:
            with app.database.begin() as connection:
                repaired += batch_queries.recount_batch(connection, batch.id)
    print(f"Recounted {plural(repaired, 'batch', 'batches')}.")
    return 0


def _db_timezone(args: argparse.Namespace) -> int:
    with open_app(args.database_url, on_status=_err) as app, app.database.begin() as connection:
        raw = connection.connection.driver_connection
        assert raw is not None
        if args.zone:
            if args.zone == "server":
                raw.execute("DELETE FROM studio_settings WHERE key = 'time_zone'")
            else:
                known = raw.execute(
                    "SELECT 1 FROM pg_timezone_names WHERE name = %s", (args.zone,)
                ).fetchone()
                if not known:
                    raise InvalidRequest(
                        f"Unknown time zone {args.zone!r}: use a name like Europe/London."
                    )
                raw.execute(
                    "INSERT INTO studio_settings (key, value) VALUES ('time_zone', %s) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (args.zone,),
                )
        row = raw.execute(
            "SELECT coalesce((SELECT value FROM studio_settings WHERE key = 'time_zone'), "
            "current_setting('TimeZone') || ' (the server''s zone)'), batchdesk_today()"
        ).fetchone()
    print(f"Batch dates follow {row[0]}; today is {row[1].isoformat()}.")
    return 0


COMMANDS: dict[str | None, Callable[[argparse.Namespace], int]] = {
    None: cmd_gui,
    "gui": cmd_gui,
    "submit": cmd_submit,
    "list": cmd_list,
    "show": cmd_show,
    "stats": cmd_stats,
    "delete": cmd_delete,
    "db": cmd_db,
}


def _exit_on_sigterm(_signum: int, _frame: object) -> None:
    raise SystemExit(143)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit code."""
    logging.basicConfig(level=os.environ.get("BATCHDESK_LOG_LEVEL", "WARNING").upper())
    # A polite kill (service stop, logout) unwinds like Ctrl+C, so the embedded server is let go.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except KnownError as exc:
        _err(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        _err("Interrupted; nothing was left half done.")
        return 130
    except BrokenPipeError:
        # `batchdesk list | head`: the reader left; that is not an error.
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
