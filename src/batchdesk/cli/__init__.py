"""The `batchdesk` command line: a stable contract that scripts and tests rely on.

Exit codes: 0 success, 1 failure (the environment or the data said no), 2 usage. Errors are one
sentence on stderr; `--json` output goes to stdout and nothing else does. Warnings and log lines
(Python's, Pillow's, psycopg's, batchdesk's own) go to the log file, `cli.log` in the logs
folder, not around that sentence. Command modules are imported only when their command runs, so
`--help`, `--version` and usage errors answer at once.
"""

import argparse
import importlib
import logging
import logging.handlers
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from batchdesk import __version__
from batchdesk.cli.output import err
from batchdesk.domain.batch_query import SORT_COLUMNS
from batchdesk.errors import KnownError
from batchdesk.redaction import RedactingFormatter

if TYPE_CHECKING:
    from batchdesk.settings import AppPaths

log = logging.getLogger(__name__)

LOG_FILE_NAME = "cli.log"  # the window's is batchdesk.log, in the same folder
_LOG_FILE_BYTES = 5 * 1024 * 1024
_LOG_FILES_KEPT = 3
# The commands that open the window, which logs to a file of its own (gui/crash_handler.py).
_WINDOW_COMMANDS = (None, "gui")


class UsageError(KnownError):
    exit_code = 2


def _thread_count(text: str) -> int:
    from batchdesk.settings import MAX_WORKER_THREADS, threads_problem

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be a whole number from 1 to {MAX_WORKER_THREADS}, not {text!r}"
        ) from None
    problem = threads_problem(value)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return value


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help).")


def _version_number(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 up, not {text!r}")
    return value


def _add_pipeline_commands(pipelines: argparse.ArgumentParser) -> None:
    actions = pipelines.add_subparsers(
        dest="pipelines_command", metavar="ACTION", parser_class=_Parser
    )
    add = actions.add_parser("add", help="check a pipeline's JSON file and store it")
    add.add_argument("file", metavar="FILE.json")
    add.add_argument(
        "--replace", action="store_true", help="store it as the next version of an existing name"
    )
    add.add_argument("--json", action="store_true")
    show = actions.add_parser("show", help="one pipeline's steps (the newest version)")
    show.add_argument("name", metavar="NAME")
    show.add_argument("--version", type=_version_number, metavar="N", help="an older version")
    show.add_argument("--json", action="store_true")
    export = actions.add_parser("export", help="a pipeline as the JSON file `add` reads")
    export.add_argument("name", metavar="NAME")
    export.add_argument("--version", type=_version_number, metavar="N", help="an older version")
    export.add_argument("-o", "--output", metavar="FILE.json", help="default: stdout")
    history = actions.add_parser("history", help="every version of a pipeline")
    history.add_argument("name", metavar="NAME")
    history.add_argument("--json", action="store_true")
    for name, text in (
        ("retire", "offer a pipeline no more for new batches (submitted ones still run)"),
        ("restore", "offer a retired pipeline again"),
    ):
        action = actions.add_parser(name, help=text)
        action.add_argument("name", metavar="NAME")
    trial = actions.add_parser(
        "try", help="run a pipeline on one PNG here, without the queue, and time each step"
    )
    trial.add_argument("name", metavar="NAME")
    trial.add_argument("image", metavar="IMAGE.png")
    trial.add_argument(
        "-o", "--output", metavar="FOLDER", help="where the outputs go (default: ./try-NAME)"
    )
    trial.add_argument("--version", type=_version_number, metavar="N", help="an older version")
    trial.add_argument("--json", action="store_true")


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
    parser.add_argument(
        "--self-test",
        action="store_true",
        help="check this installation end to end (window offscreen, embedded database in a "
        "temporary home, one job, a zip) and exit 0 if it works",
    )
    parser.add_argument(
        "--no-error-dialogs",
        action="store_true",
        help="window: log bugs and print them instead of showing a dialog (for tests)",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    commands.add_parser("gui", help="open the window (the default)")

    submit = commands.add_parser("submit", help="files or folders of PNGs -> batch(es)")
    submit.add_argument("paths", nargs="+", metavar="PATH")
    submit.add_argument("-d", "--description", default="", help="batch description")
    submit.add_argument("-p", "--pipeline", help="pipeline name (default from settings)")
    submit.add_argument("--split-by-prefix", action="store_true", help="one batch per customer")
    submit.add_argument("--json", action="store_true", help="print the result as JSON")

    listing = commands.add_parser("list", help="list batches, newest first")
    listing.add_argument(
        "--status",
        action="append",
        default=[],
        help="queued, processing, paused, completed, failed or cancelled (repeat for several)",
    )
    listing.add_argument("--customer", metavar="PREFIX", help="customer prefix, e.g. PL_DXB")
    listing.add_argument("--text", help="text in the name, the description or a file name")
    listing.add_argument("--created-by", metavar="USER@HOST", help="who submitted, e.g. ann@ws-3")
    listing.add_argument("--pipeline", metavar="NAME", help="the batch's pipeline")
    listing.add_argument(
        "--since", metavar="DATE", help="created on or after, e.g. 2026-11-28 or 2026-11-28T14:00"
    )
    listing.add_argument(
        "--until", metavar="DATE", help="created up to the end of this day (or before this time)"
    )
    listing.add_argument(
        "--finished-since",
        metavar="DATE",
        help="finished (completed, failed or cancelled) on or after, whenever created",
    )
    listing.add_argument(
        "--sort-by", default="created_at", metavar="COL", help=", ".join(SORT_COLUMNS)
    )
    listing.add_argument("--order", default="desc", help="asc or desc (default desc)")
    listing.add_argument("--limit", type=int, default=100, help="batches per page (100)")
    listing.add_argument("--offset", type=int, default=0, help="skip this many batches")
    listing.add_argument("--json", action="store_true")

    show = commands.add_parser("show", help="one batch and its jobs")
    show.add_argument("batch", metavar="BATCH", help="batch id or base directory name")
    show.add_argument("--json", action="store_true")

    stats = commands.add_parser("stats", help="dashboard figures")
    stats.add_argument("--json", action="store_true")

    delete = commands.add_parser("delete", help="delete batches with their jobs and files")
    delete.add_argument("batches", nargs="+", metavar="BATCH")
    delete.add_argument("--yes", action="store_true", help="do not ask for confirmation")

    export = commands.add_parser("export", help="write a batch as BASE_NAME.zip, or a job's files")
    export.add_argument("batch", metavar="BATCH", help="batch id or base directory name")
    export.add_argument(
        "-o",
        "--output",
        metavar="PATH",
        help="the zip file, or a folder to put BASE_NAME.zip in (default: here); "
        "with --job, the folder for the job's files",
    )
    export.add_argument(
        "--job", metavar="FILE_NAME", help="write only this job's outputs (its file name or id)"
    )
    export.add_argument(
        "--include-inputs", action="store_true", help="add the submitted PNGs under originals/"
    )
    export.add_argument("--force", action="store_true", help="replace files that exist")
    export.add_argument("--json", action="store_true", help="print the result as JSON")

    deliver = commands.add_parser("deliver", help="write a batch's outputs to FOLDER/BASE_NAME/")
    deliver.add_argument("batch", metavar="BATCH", help="batch id or base directory name")
    deliver.add_argument("--to", metavar="FOLDER", help="default: delivery_folder in settings")
    deliver.add_argument("--json", action="store_true", help="print the result as JSON")

    worker = commands.add_parser("worker", help="run jobs headless (a render node)")
    worker.add_argument(
        "--threads", type=_thread_count, help="jobs at once, 1 to 64 (default from settings: 2)"
    )
    worker.add_argument(
        "--drain", action="store_true", help="exit once nothing is queued or running"
    )
    worker.add_argument("--json", action="store_true", help="JSON event lines on stderr")
    worker.add_argument(
        "--deliver-to",
        metavar="FOLDER",
        help="also write each batch that completes to FOLDER/BASE_NAME/ "
        "(default: delivery_folder in settings)",
    )
    worker.add_argument(
        "--liveness-timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="silence after which another worker counts as dead (30)",
    )

    retry = commands.add_parser(
        "retry", help="put a batch's failed jobs (or with --job, the jobs named) back in the queue"
    )
    retry.add_argument("batch", metavar="BATCH", help="batch id or base directory name")
    cancel = commands.add_parser("cancel", help="cancel a batch's unfinished jobs")
    cancel.add_argument("batch", metavar="BATCH", help="batch id or base directory name")
    retry.add_argument(
        "--job",
        dest="jobs",
        action="append",
        metavar="FILE_NAME",
        help="only this job (its file name or id; repeat for several): a failed, completed "
        "or cancelled job goes back to the queue with fresh attempts",
    )

    priority = commands.add_parser(
        "priority", help="set batches' priority, 0-100: workers take higher ones first"
    )
    priority.add_argument("items", nargs="+", metavar="BATCH... N", help="batches, then N")
    for name, text in (
        ("pause", "pause batches: no new job of theirs starts; running ones finish"),
        ("resume", "let paused batches' jobs run again"),
    ):
        action = commands.add_parser(name, help=text)
        action.add_argument("batches", nargs="+", metavar="BATCH")

    workers = commands.add_parser(
        "workers", help="the studio's live workers; pause or resume one, or a host's"
    )
    workers.add_argument("--json", action="store_true")
    steering = workers.add_subparsers(
        dest="workers_command", metavar="ACTION", parser_class=_Parser
    )
    for name, text in (
        ("pause", "finish running jobs, take no new ones"),
        ("resume", "take jobs again"),
    ):
        action = steering.add_parser(name, help=text)
        action.add_argument("worker", metavar="WORKER|HOST", help="a worker id or a host name")

    pipelines = commands.add_parser(
        "pipelines", help="list the studio's pipelines; add, show, export, retire, try one"
    )
    pipelines.add_argument("--json", action="store_true")
    _add_pipeline_commands(pipelines)

    db = commands.add_parser("db", help="database schema and health")
    actions = db.add_subparsers(dest="db_command", metavar="ACTION", parser_class=_Parser)
    actions.required = True
    actions.add_parser("upgrade", help="bring the schema up to this version")
    status = actions.add_parser("status", help="which database, which schema revision")
    status.add_argument("--json", action="store_true")
    check = actions.add_parser(
        "check", help="find batches whose counts disagree with their jobs, and unused files"
    )
    check.add_argument(
        "--files",
        action="store_true",
        help="also read every file kept in the file store and check it against its hash",
    )
    actions.add_parser("repair", help="recount the batches that `check` finds")
    gc = actions.add_parser(
        "gc",
        help="show (or with --yes delete) stored files no job uses, and file store files no "
        "stored file uses, over an hour old",
    )
    gc.add_argument("--yes", action="store_true", help="delete them (default: only show)")
    gc.add_argument("--json", action="store_true")
    file_store = actions.add_parser(
        "file-store", help="show or set where file bytes are kept: the database or a folder"
    )
    file_store.add_argument(
        "where",
        nargs="?",
        metavar="PATH|database",
        help="a folder on the studio's share (as the studio names it), or 'database'",
    )
    move_files = actions.add_parser(
        "move-files",
        help="move every stored file's bytes to the file store or into the database; "
        "stop it at any time and run it again to go on",
    )
    move_files.add_argument(
        "--to", required=True, choices=("store", "database"), help="where the bytes go"
    )
    move_files.add_argument("--json", action="store_true", help="print the summary as JSON")
    timezone = actions.add_parser("timezone", help="show or set the zone that decides 'today'")
    timezone.add_argument("zone", nargs="?", help="e.g. Europe/London; 'server' for the default")
    default_priority = actions.add_parser(
        "priority", help="show or set the priority new batches get (50 unless set)"
    )
    default_priority.add_argument("priority", nargs="?", metavar="N", help="0 to 100")
    return parser


# Command -> (module, function); the module is imported when the command runs.
COMMANDS: dict[str | None, tuple[str, str]] = {
    None: ("batchdesk.cli.batch_commands", "cmd_gui"),
    "gui": ("batchdesk.cli.batch_commands", "cmd_gui"),
    "self-test": ("batchdesk.cli.batch_commands", "cmd_self_test"),
    "submit": ("batchdesk.cli.batch_commands", "cmd_submit"),
    "list": ("batchdesk.cli.batch_commands", "cmd_list"),
    "show": ("batchdesk.cli.batch_commands", "cmd_show"),
    "stats": ("batchdesk.cli.batch_commands", "cmd_stats"),
    "delete": ("batchdesk.cli.batch_commands", "cmd_delete"),
    "export": ("batchdesk.cli.export_commands", "cmd_export"),
    "deliver": ("batchdesk.cli.export_commands", "cmd_deliver"),
    "worker": ("batchdesk.cli.job_commands", "cmd_worker"),
    "retry": ("batchdesk.cli.job_commands", "cmd_retry"),
    "cancel": ("batchdesk.cli.job_commands", "cmd_cancel"),
    "pipelines": ("batchdesk.cli.pipeline_commands", "cmd_pipelines"),
    "priority": ("batchdesk.cli.farm_commands", "cmd_priority"),
    "pause": ("batchdesk.cli.farm_commands", "cmd_pause"),
    "resume": ("batchdesk.cli.farm_commands", "cmd_resume"),
    "workers": ("batchdesk.cli.farm_commands", "cmd_workers"),
    "db": ("batchdesk.cli.db_commands", "cmd_db"),
}


def _check_self_test_alone(args: argparse.Namespace) -> None:
    # It checks this installation on an embedded database of its own; anything else given with
    # it would be silently ignored, and a check of something else believed done.
    extra = args.command or ("--database-url" if args.database_url else None)
    if extra:
        raise UsageError(
            f"batchdesk: --self-test runs alone, on a temporary embedded database of its own; "
            f"leave out {extra!r} (see batchdesk --help)."
        )


def _interrupted(command: str | None) -> str:
    """What Ctrl+C left behind, truly: a submission's stored files stay until `db gc`."""
    if command == "submit":
        return (
            "Interrupted; a batch is created whole or not at all, and the files it had "
            "already stored are removed by `batchdesk db gc` once they are an hour old."
        )
    return "Interrupted; nothing was left half done."


def _exit_on_sigterm(_signum: int, _frame: object) -> None:
    raise SystemExit(143)


def _log_level() -> int:
    level = logging.getLevelName(os.environ.get("BATCHDESK_LOG_LEVEL", "WARNING").upper())
    return level if isinstance(level, int) else logging.WARNING


def route_logs(paths: "AppPaths") -> Path | None:
    """Send Python's warnings and every logger's lines to the log file; return its path.

    stderr is for the sentences a person reads (and the worker's event lines): a Pillow
    `UserWarning`, psycopg's "error ignored terminating Copy" or batchdesk's own
    `WARNING:batchdesk...` line printed around them would only confuse. When the log folder
    cannot be written, the lines go to stderr after all: seen is better than lost.
    """
    log_file: Path | None = paths.log_dir / LOG_FILE_NAME
    handler: logging.Handler
    try:
        paths.log_dir.mkdir(parents=True, exist_ok=True)
        handler = logging.handlers.RotatingFileHandler(
            paths.log_dir / LOG_FILE_NAME,
            maxBytes=_LOG_FILE_BYTES,
            backupCount=_LOG_FILES_KEPT,
            encoding="utf-8",
        )
    except OSError:
        handler = logging.StreamHandler()
        log_file = None
    handler.setFormatter(
        RedactingFormatter("%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(_log_level())
    logging.captureWarnings(True)
    return log_file


def _is_database_error(exc: BaseException) -> bool:
    psycopg = sys.modules.get("psycopg")  # never imported just to ask
    return psycopg is not None and isinstance(exc, psycopg.Error)


def _database_error_sentence(exc: BaseException, log_file: Path | None) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    reason = (lines[0] if lines else type(exc).__name__).rstrip(".")
    where = f" (details in {log_file})" if log_file else ""
    return f"The database answered with an error batchdesk did not expect: {reason}{where}."


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit code."""
    # A polite kill (service stop, logout) unwinds like Ctrl+C, so the embedded server is let go.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    command_name: str | None = None
    log_file: Path | None = None
    try:
        args = build_parser().parse_args(argv)
        command_name = args.command
        if args.self_test:
            _check_self_test_alone(args)
        if args.self_test or args.command in _WINDOW_COMMANDS:
            logging.basicConfig(level=_log_level())
        else:
            from batchdesk.settings import AppPaths

            log_file = route_logs(AppPaths.from_environment())
        module, name = COMMANDS["self-test" if args.self_test else args.command]
        command: Callable[[argparse.Namespace], int] = getattr(
            importlib.import_module(module), name
        )
        return command(args)
    except KnownError as exc:
        err(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        err(_interrupted(command_name))
        return 130
    except BrokenPipeError:
        # `batchdesk list | head`: the reader left; that is not an error.
        sys.stderr.close()
        return 0
    except Exception as exc:
        if not _is_database_error(exc):
            raise  # a bug: its traceback is what fixes it
        # What translate_errors does not know (a statement batchdesk got wrong, most likely):
        # one sentence here, the traceback in the log.
        log.error("unexpected database error", exc_info=exc)
        err(_database_error_sentence(exc, log_file))
        return 1
