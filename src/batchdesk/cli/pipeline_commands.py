"""The pipelines commands: list, add, show, export, history, retire, restore, try."""

import argparse
import json
from datetime import datetime
from pathlib import Path
from typing import Any

from batchdesk.app import open_app
from batchdesk.cli.output import err, print_json, short, table, visible
from batchdesk.domain.units import format_size
from batchdesk.errors import InvalidRequest
from batchdesk.export.atomic_file import atomic_target
from batchdesk.jobs.pipeline_document import check_row, document_json, read_document
from batchdesk.jobs.pipeline_trial import try_pipeline
from batchdesk.storage import pipeline_store
from batchdesk.storage.pipeline_store import PipelineRow
from batchdesk.storage.submission import current_user


def _problem(row: PipelineRow) -> str | None:
    """The sentence that says why a stored pipeline cannot run, or None when it can."""
    try:
        check_row(row)
    except InvalidRequest as exc:
        return str(exc)
    return None


def _when(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _row_json(row: PipelineRow) -> dict[str, Any]:
    return document_json(row) | {
        "retired": row.retired,
        "retired_at": _when(row.retired_at),
        "problem": _problem(row),
    }


def cmd_pipelines(args: argparse.Namespace) -> int:
    action = args.pipelines_command
    if action is None:
        return _list(args)
    command = {
        "add": _add,
        "show": _show,
        "export": _export,
        "history": _history,
        "retire": _retire,
        "restore": _restore,
        "try": _try,
    }[action]
    return command(args)


def _list(args: argparse.Namespace) -> int:
    with open_app(args.database_url, on_status=err) as app, app.database.connect() as connection:
        rows = pipeline_store.list_pipelines(connection)
    if args.json:
        print_json([_row_json(row) for row in rows])
        return 0
    lines = []
    for row in rows:
        problem = _problem(row)
        if problem is not None:
            steps = f"INVALID: {problem}"
        else:
            steps = ", ".join(step["op"] for step in row.steps) or "(as submitted)"
        status = "retired" if row.retired else "offered"
        lines.append(
            [
                visible(row.name),
                str(row.version),
                status,
                short(visible(steps), 50),
                short(visible(row.description), 60),
            ]
        )
    print(table(["NAME", "VERSION", "STATUS", "STEPS", "DESCRIPTION"], lines))
    return 0


def _add(args: argparse.Namespace) -> int:
    document = read_document(Path(args.file))  # checked before the database is even opened
    with open_app(args.database_url, on_status=err) as app:
        app.database.require_write("adding pipelines")
        with app.database.begin() as connection:
            stored = pipeline_store.store_pipeline(
                connection,
                document.name,
                document.description,
                document.steps,
                replace=args.replace,
                created_by=current_user(),
            )
            retired = pipeline_store.load_pipeline(connection, document.name).retired
    if args.json:
        print_json(
            {
                "name": stored.name,
                "version": stored.version,
                "created": stored.created,
                "changed": stored.changed,
                "retired": retired,
            }
        )
        return 0
    if stored.created:
        print(f"Added pipeline {stored.name} (version 1).")
    elif stored.changed:
        print(f"Stored pipeline {stored.name} as version {stored.version}.")
    else:
        print(
            f"Pipeline {stored.name} is unchanged: version {stored.version} has the same "
            "description and steps."
        )
    if retired:
        print(f"It is retired: `batchdesk pipelines restore {stored.name}` offers it again.")
    return 0


def _load(args: argparse.Namespace) -> PipelineRow:
    with open_app(args.database_url, on_status=err) as app, app.database.connect() as connection:
        return pipeline_store.load_pipeline(connection, args.name, args.version)


def _show(args: argparse.Namespace) -> int:
    row = _load(args)
    if args.json:
        print_json(_row_json(row))
        return 0
    status = "retired, not offered for new batches" if row.retired else "offered"
    print(visible(f"{row.name}, version {row.version} ({status})"))
    if row.description:
        print(visible(row.description))
    problem = _problem(row)
    if problem is not None:
        print(visible(f"INVALID: {problem}"))
    if not row.steps:
        print("No steps: each input is delivered unchanged as PNG.")
    for number, step in enumerate(row.steps, 1):
        fields = " ".join(
            f"{key}={json.dumps(value, ensure_ascii=False)}"
            for key, value in step.items()
            if key != "op"
        )
        print(visible(f"{number:>3}. {step.get('op')} {fields}".rstrip()))
    return 0


def _export(args: argparse.Namespace) -> int:
    row = _load(args)
    text = json.dumps(document_json(row), indent=2, ensure_ascii=False) + "\n"
    if args.output is None:
        print(text, end="")
        return 0
    target = Path(args.output)
    with atomic_target(target, overwrite=True) as stream:
        stream.write(text.encode("utf-8"))
    err(f"Wrote {row.name} version {row.version} to {target}.")
    return 0


def _history(args: argparse.Namespace) -> int:
    with open_app(args.database_url, on_status=err) as app, app.database.connect() as connection:
        versions = pipeline_store.history(connection, args.name)
    if args.json:
        print_json(
            [
                {
                    "version": v.version,
                    "description": v.description,
                    "steps": v.steps,
                    "created_at": _when(v.created_at),
                    "created_by": v.created_by,
                }
                for v in versions
            ]
        )
        return 0
    lines = [
        [
            str(v.version),
            v.created_at.astimezone().strftime("%Y-%m-%d %H:%M"),
            visible(v.created_by or "-"),
            short(", ".join(str(step.get("op")) for step in v.steps) or "(as submitted)", 60),
        ]
        for v in versions
    ]
    print(table(["VERSION", "STORED", "BY", "STEPS"], lines))
    return 0


def _set_retired(args: argparse.Namespace, *, retired: bool) -> int:
    with open_app(args.database_url, on_status=err) as app:
        app.database.require_write("retiring pipelines" if retired else "restoring pipelines")
        with app.database.begin() as connection:
            changed = pipeline_store.set_retired(connection, args.name, retired=retired)
    if retired:
        print(
            f"Retired pipeline {args.name}: new batches cannot use it; submitted ones still run it."
            if changed
            else f"Pipeline {args.name} was already retired."
        )
    else:
        print(
            f"Restored pipeline {args.name}: it is offered for new batches again."
            if changed
            else f"Pipeline {args.name} is not retired."
        )
    return 0


def _retire(args: argparse.Namespace) -> int:
    return _set_retired(args, retired=True)


def _restore(args: argparse.Namespace) -> int:
    return _set_retired(args, retired=False)


def _try(args: argparse.Namespace) -> int:
    row = _load(args)
    spec = check_row(row)
    folder = Path(args.output) if args.output else Path(f"try-{row.name}")
    trial = try_pipeline(spec, Path(args.image), folder)
    if args.json:
        print_json(
            {
                "pipeline": row.name,
                "version": row.version,
                "seconds": trial.seconds,
                "steps": [
                    {"number": s.number, "op": s.op, "seconds": s.seconds} for s in trial.steps
                ],
                "outputs": [
                    {
                        "name": o.name,
                        "path": str(o.path),
                        "size": o.size,
                        "media_type": o.media_type,
                        "width": o.width,
                        "height": o.height,
                    }
                    for o in trial.outputs
                ],
            }
        )
        return 0
    print(
        visible(
            f"Tried {row.name} (version {row.version}) on {args.image} in {trial.seconds:.2f} s:"
        )
    )
    for step in trial.steps:
        print(f"  step {step.number:>2} {step.op:<15} {step.seconds:8.3f} s")
    print(visible(f"Outputs in {folder}:"))
    print(
        table(
            ["  FILE", "SIZE", "PIXELS"],
            [
                [f"  {visible(o.name)}", format_size(o.size), f"{o.width} × {o.height}"]
                for o in trial.outputs
            ],
        )
    )
    return 0
