"""The `batchdesk db ...` commands: schema, health, unused stored files and the time zone."""

import argparse
from pathlib import Path

from batchdesk.app import AppContext, open_app
from batchdesk.cli.output import ProgressLine, err, print_json, visible
from batchdesk.domain.units import format_size, plural
from batchdesk.errors import InvalidRequest
from batchdesk.storage import (
    batch_queries,
    blob_store,
    farm_controls,
    file_bytes,
    folder_store,
    job_attempts,
    migrations_runner,
    store_gc,
    store_identity,
)
from batchdesk.storage.blob_store import BlobCount, UnreferencedBlobs
from batchdesk.storage.file_bytes import FileStoreSetting
from batchdesk.storage.file_moves import FileMover, MoveTally
from batchdesk.storage.folder_store import StoreUnavailable
from batchdesk.storage.pool import only_row
from batchdesk.storage.store_gc import StoreGarbage


def cmd_db(args: argparse.Namespace) -> int:
    handler = {
        "upgrade": _db_upgrade,
        "status": _db_status,
        "check": _db_check,
        "repair": _db_repair,
        "gc": _db_gc,
        "timezone": _db_timezone,
        "file-store": _db_file_store,
        "move-files": _db_move_files,
        "priority": _db_priority,
    }[args.db_command]
    return handler(args)


def _db_upgrade(args: argparse.Namespace) -> int:
    with open_app(args.database_url, upgrade=False, on_status=err) as app:
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
    with open_app(args.database_url, upgrade=False, on_status=err) as app:
        status = migrations_runner.schema_status(app.database)
        setting = None
        if status.is_current:
            with app.database.connect() as connection:
                setting = file_bytes.read_setting(connection)
        if args.json:
            print_json(
                {
                    "database": app.database.description,
                    "embedded": app.database.is_embedded,
                    "current_revision": status.current,
                    "head_revision": status.head,
                    "up_to_date": status.is_current,
                    "file_store": None if setting is None else _file_store_json(app, setting),
                }
            )
        else:
            kind = "embedded" if app.database.is_embedded else "server"
            print(f"Database: {app.database.description} ({kind})")
            print(f"Schema: {status.describe()}")
            if setting is not None:
                print(f"Files: {setting.describe()}")
    # Behind or empty is not a failure (any command upgrades it); a newer schema is.
    return 1 if status.is_newer else 0


def _db_check(args: argparse.Namespace) -> int:
    with open_app(args.database_url, on_status=err) as app, app.database.connect() as connection:
        drifted = batch_queries.drifted_batches(connection)
        unused = blob_store.unreferenced(connection)
        unmatched = job_attempts.unmatched_attempts(connection)
        damaged = (
            list(file_bytes.damaged_store_files(connection, app.database.share_paths))
            if args.files
            else []
        )
    for problem in damaged:
        print(problem)
    if args.files and not damaged:
        print("Every file in the file store is there and matches its hash.")
    if not drifted:
        print("All batch counts agree with their jobs.")
    for name in drifted:
        print(f"{name}: counts disagree with its jobs")
    if unmatched:
        print(
            f"{plural(unmatched, 'job')} disagree with their attempts (a running job has one "
            "open attempt, no other job has one)."
        )
    else:
        print("Every running job has its open attempt, and no other job has one.")
    print(_unused_files(unused))  # harmless, so no failure: `db gc` is the remedy
    if damaged:
        err(f"{plural(len(damaged), 'stored file')} missing or damaged: restore from a backup.")
    if not drifted and not unmatched:
        return 1 if damaged else 0
    if drifted:
        err(f"{plural(len(drifted), 'batch', 'batches')} drifted: run `batchdesk db repair`.")
    else:
        err("Attempts disagree with their jobs: run `batchdesk db repair`.")
    return 1


def _files(count: int, size: int) -> str:
    return f"{plural(count, 'stored file')} ({format_size(size)})"


def _unused_files(unused: UnreferencedBlobs) -> str:
    """One sentence on the stored files no job uses (an interrupted submission's, say)."""
    if not unused.files:
        return "Every stored file is used by a job."
    old = unused.files - unused.recent_files
    parts = []
    if old:
        parts.append(f"{old:,} over an hour old, which `batchdesk db gc --yes` deletes")
    if unused.recent_files:
        parts.append(
            f"{unused.recent_files:,} uploaded in the last hour, which a submission may still "
            "be using"
        )
    verb = "is" if unused.files == 1 else "are"
    return f"{_files(unused.files, unused.bytes)} {verb} used by no job: {' and '.join(parts)}."


def _db_gc(args: argparse.Namespace) -> int:
    with open_app(args.database_url, on_status=err) as app:
        found = blob_store.collect_garbage(app.database, delete=args.yes)
        with app.database.connect() as connection:
            left = blob_store.unreferenced(connection)
            setting = file_bytes.read_setting(connection)
        root = file_bytes.local_folder(setting, app.database.share_paths)
        store = None if root is None else _store_gc(app, root, delete=args.yes)
    if args.json:
        print_json(
            {
                "deleted": args.yes,
                "files": found.files,
                "bytes": found.bytes,
                "recent_files": left.recent_files,
                "recent_bytes": left.recent_bytes,
                "file_store": None
                if store is None
                else {"folder": setting.folder, "folder_here": str(root)} | store.as_json(),
            }
        )
    else:
        _print_gc(args.yes, found, left)
        if store is not None and root is not None and (store.problem is None or store.files):
            _print_store_gc(args.yes, root, store)
    if store is not None and store.problem:
        err(store.problem)
        return 1
    return 0


def _store_gc(app: AppContext, root: Path, *, delete: bool) -> StoreGarbage:
    line = ProgressLine(counting="folders")
    try:
        return store_gc.collect(
            app.database,
            root,
            delete=delete,
            progress=lambda done, total: line("Looking through the file store", done, total),
        )
    finally:
        line.finish()


def _print_gc(delete: bool, found: BlobCount, left: UnreferencedBlobs) -> None:
    if delete:
        print(f"Deleted {_files(found.files, found.bytes)} no job used.")
    elif found.files:
        print(
            f"Would delete {_files(found.files, found.bytes)} no job uses, uploaded over an "
            "hour ago; `batchdesk db gc --yes` deletes them."
        )
    else:
        print("Nothing to delete: every stored file over an hour old is used by a job.")
    if left.recent_files:
        print(
            f"Kept {_files(left.recent_files, left.recent_bytes)} no job uses yet, uploaded in "
            "the last hour: a submission may still be using them."
        )


def _print_store_gc(delete: bool, root: Path, store: StoreGarbage) -> None:
    what = f"{plural(store.files, 'file')} ({format_size(store.bytes)}) from the file store {root}"
    half = ""
    if store.temporary_files == 1:
        half = " (one of them left half written by an interrupted upload)"
    elif store.temporary_files:
        half = f" ({store.temporary_files:,} of them left half written by interrupted uploads)"
    if delete:
        print(f"Deleted {what} that no stored file used{half}.")
    elif store.files:
        print(
            f"Would delete {what} that no stored file uses, written over an hour ago{half}; "
            "`batchdesk db gc --yes` deletes them."
        )
    else:
        print(f"Nothing to delete in the file store {root}: every file over an hour old is used.")
    if store.busy_files:
        print(
            f"Left {plural(store.busy_files, 'file')} ({format_size(store.busy_bytes)}) in the "
            "file store that uploads were taking up at that moment: the next `batchdesk db gc "
            "--yes` looks at them again."
        )
    if store.recent_files:
        print(
            f"Kept {plural(store.recent_files, 'file')} ({format_size(store.recent_bytes)}) in "
            "the file store no stored file uses yet, written in the last hour: an upload may "
            "still be using them."
        )


def _db_repair(args: argparse.Namespace) -> int:
    with open_app(args.database_url, on_status=err) as app:
        with app.database.connect() as connection:
            drifted = batch_queries.drifted_batches(connection)
            found = [batch_queries.find_batch(connection, name) for name in drifted]
        repaired = 0
        for batch in found:
            with app.database.begin() as connection:
                repaired += batch_queries.recount_batch(connection, batch.id)
        with app.database.begin() as connection:
            attempts = job_attempts.repair_attempts(connection)
    print(f"Recounted {plural(repaired, 'batch', 'batches')}.")
    if attempts:
        print(f"Fixed {plural(attempts, 'attempt')} that disagreed with their jobs.")
    return 0


def _db_timezone(args: argparse.Namespace) -> int:
    with open_app(args.database_url, on_status=err) as app, app.database.begin() as connection:
        if args.zone:
            if args.zone == "server":
                connection.execute("DELETE FROM studio_settings WHERE key = 'time_zone'")
            else:
                known = connection.execute(
                    "SELECT 1 FROM pg_timezone_names WHERE name = %s", (args.zone,)
                ).fetchone()
                if not known:
                    raise InvalidRequest(
                        f"Unknown time zone {args.zone!r}: use a name like Europe/London."
                    )
                connection.execute(
                    "INSERT INTO studio_settings (key, value) VALUES ('time_zone', %s) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (args.zone,),
                )
        row = only_row(
            connection.execute(
                "SELECT coalesce((SELECT value FROM studio_settings WHERE key = 'time_zone'), "
                "current_setting('TimeZone') || ' (the server''s zone)'), batchdesk_today()"
            )
        )
    print(f"Batch dates follow {row[0]}; today is {row[1].isoformat()}.")
    return 0


def _file_store_json(app: AppContext, setting: FileStoreSetting) -> dict[str, object]:
    local = file_bytes.local_folder(setting, app.database.share_paths)
    return {
        "new_files": setting.new_files,
        "folder": setting.folder,
        "folder_here": None if local is None else str(local),
    }


def _db_file_store(args: argparse.Namespace) -> int:
    with open_app(args.database_url, on_status=err) as app, app.database.begin() as connection:
        current = file_bytes.read_setting(connection)
        paths = app.database.share_paths
        if args.where == file_bytes.DATABASE:
            app.database.require_write("setting where files are kept")
            file_bytes.write_setting(
                connection, FileStoreSetting(file_bytes.DATABASE, current.folder)
            )
        elif args.where:
            if not (args.where.startswith(("/", "\\")) or args.where[1:3] in (":\\", ":/")):
                raise InvalidRequest(
                    f"The file store must be an absolute path on the studio's share, not "
                    f"{args.where!r}."
                )
            app.database.require_write("setting where files are kept")
            in_store = only_row(
                connection.execute("SELECT count(*) FROM blobs WHERE location = 'store'")
            )[0]
            if current.folder and current.folder != args.where and in_store:
                raise InvalidRequest(
                    f"{plural(in_store, 'file')} are kept in the file store {current.folder}; "
                    "move them into the database first (`batchdesk db move-files --to "
                    "database`), or keep that folder."
                )
            folder_store.check_folder(paths.to_local(args.where))  # a sentence if it cannot
            store_identity.claim(connection, paths.to_local(args.where))
            file_bytes.write_setting(connection, FileStoreSetting(file_bytes.STORE, args.where))
        setting = file_bytes.read_setting(connection)
    print(setting.describe())
    mapping = paths.describe()
    if setting.folder and mapping and paths.to_local(setting.folder) != Path(setting.folder):
        print(f"On this machine: {mapping}, so the folder is {paths.to_local(setting.folder)}.")
    return 0


def _db_priority(args: argparse.Namespace) -> int:
    # Checked before the database opens: a priority out of range is a usage error.
    priority = None if args.priority is None else farm_controls.parse_priority(args.priority)
    with open_app(args.database_url, on_status=err) as app, app.database.begin() as connection:
        if priority is not None:
            app.database.require_write("setting the default priority")
            farm_controls.set_default_priority(connection, priority)
        current = farm_controls.default_priority(connection)
    print(f"New batches get priority {current}; batches made before keep theirs.")
    return 0


def _db_move_files(args: argparse.Namespace) -> int:
    line = ProgressLine()

    def show(tally: MoveTally) -> None:
        # Files stored while it runs may be moved too: the totals grow with them.
        files = (tally.done_files, max(tally.total_files, tally.done_files))
        line("Moving", tally.done_bytes, max(tally.total_bytes, tally.done_bytes), files)

    again = f"Run `batchdesk db move-files --to {args.to}` again"
    with open_app(args.database_url, on_status=err) as app:
        mover = FileMover(app.database, args.to, show)
        try:
            tally = mover.run()
        except KeyboardInterrupt:
            line.finish()
            err(f"Stopped {_so_far(mover.tally)} {again} to move the rest.")
            return 130
        except SystemExit:  # a polite kill (SIGTERM) unwinds here too
            line.finish()
            err(f"Stopped {_so_far(mover.tally)} {again} to move the rest.")
            raise
        except StoreUnavailable as exc:
            line.finish()
            if not mover.tally.done_files:
                raise  # refused before anything moved: the sentence says it all
            err(f"{exc} Stopped {_so_far(mover.tally)} {again} once the share is usable.")
            return 1
        finally:
            line.finish()
        with app.database.connect() as connection:
            setting = file_bytes.read_setting(connection)
    if args.json:
        print_json(tally.as_json())
    else:
        where = "into the database" if args.to == file_bytes.DATABASE else f"to {setting.folder}"
        there = "was" if tally.already_there == 1 else "were"
        print(
            visible(
                f"Moved {_files(tally.moved_files, tally.moved_bytes)} {where} in "
                f"{tally.seconds:.1f} s; {tally.already_there:,} {there} there already."
            )
        )
    for problem in tally.problems:
        err(problem)
    if tally.old_copies_left:
        err(
            f"{plural(tally.old_copies_left, 'old copy', 'old copies')} could not be deleted "
            "from the file store; they are unused, and the files are whole in the database."
        )
    if args.to == file_bytes.DATABASE and setting.new_files == file_bytes.STORE:
        err(
            "New files still go to the file store: `batchdesk db file-store database` sends "
            "them to the database."
        )
    if tally.problems:
        err(
            f"{plural(len(tally.problems), 'file')} could not be moved (said above) and "
            "stayed where they were; every other file was moved."
        )
        return 1
    return 0


def _so_far(tally: MoveTally) -> str:
    """What an interrupted move leaves, truly: every file whole in one place or the other."""
    left = max(0, tally.total_files - tally.done_files)
    return (
        f"after moving {_files(tally.moved_files, tally.moved_bytes)}, with {left:,} left; "
        "every file is whole in one place or the other."
    )
