"""The export commands: export (a zip, or one job's outputs) and deliver (to a folder)."""

import argparse
from collections.abc import Callable
from pathlib import Path

from batchdesk.app import open_app
from batchdesk.cli.output import ProgressLine, err, print_json, visible
from batchdesk.domain.units import format_size, plural
from batchdesk.errors import InvalidRequest
from batchdesk.export.atomic_file import TargetExists
from batchdesk.export.folder_export import deliver_batch, export_job
from batchdesk.export.summary import ExportSummary
from batchdesk.export.transfer import ExportProgress
from batchdesk.export.zip_export import default_zip_name, export_zip
from batchdesk.storage import batch_queries


def _progress(line: ProgressLine, phase: str) -> Callable[[ExportProgress], None]:
    return lambda progress: line(phase, progress.done_bytes, progress.total_bytes)


def _report(summary: ExportSummary, as_json: bool, what: str) -> int:
    if as_json:
        print_json(summary.as_json())
        return 0
    for warning in summary.warnings:
        err(f"Warning: {warning}")
    print(
        visible(
            f"{what} {summary.batch} to {summary.path}: "
            f"{plural(summary.files, 'file')}, {format_size(summary.bytes)}."
        )
    )
    return 0


def _zip_target(output: str | None, base_directory_name: str) -> Path:
    """-o FILE.zip, -o FOLDER (the zip goes inside), or nothing (here, named after the batch)."""
    if output is None:
        return Path.cwd() / default_zip_name(base_directory_name)
    path = Path(output).expanduser()
    if path.is_dir():
        return path / default_zip_name(base_directory_name)
    return path


def cmd_export(args: argparse.Namespace) -> int:
    line = ProgressLine()
    with open_app(args.database_url, on_status=err) as app:
        try:
            if args.job is not None:
                if args.include_inputs:
                    raise InvalidRequest("--include-inputs goes with a zip export, not --job.")
                folder = Path(args.output).expanduser() if args.output else Path.cwd()
                summary = export_job(
                    app.database,
                    args.batch,
                    args.job,
                    folder,
                    overwrite=args.force,
                    progress=_progress(line, "Writing"),
                )
            else:
                with app.database.connect() as connection:
                    batch = batch_queries.find_batch(connection, args.batch)
                summary = export_zip(
                    app.database,
                    batch.id,
                    _zip_target(args.output, batch.base_directory_name),
                    include_inputs=args.include_inputs,
                    overwrite=args.force,
                    progress=_progress(line, "Exporting"),
                )
        except TargetExists as exc:
            names = ", ".join(str(path) for path in exc.paths)
            verb = "exists" if len(exc.paths) == 1 else "exist"
            message = f"{names} already {verb}; pass --force to replace."
            raise TargetExists(message, exc.paths) from None
        finally:
            line.finish()
    return _report(summary, args.json, "Exported")


def cmd_deliver(args: argparse.Namespace) -> int:
    line = ProgressLine()
    with open_app(args.database_url, on_status=err) as app:
        app.database.require_write("delivering")  # it records when and where the batch went
        folder = args.to or app.settings.delivery_folder
        if not folder:
            raise InvalidRequest(
                "Say where to deliver: --to FOLDER, or set delivery_folder in "
                f"{app.paths.settings_file}."
            )
        try:
            summary = deliver_batch(
                app.database,
                args.batch,
                Path(folder).expanduser(),
                progress=_progress(line, "Delivering"),
            )
        finally:
            line.finish()
    return _report(summary, args.json, "Delivered")
