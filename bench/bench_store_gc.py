"""Benchmark: what `db gc`'s guard costs an upload, and how fast `db gc` walks a file store.

Two measurements, each against a baseline timed in the same round (no target in issue 17; these
say what the guard and the walk cost):

- `hold`: the guard an upload takes in the transaction that commits its rows (`store_gc.hold`:
  the folders' shared advisory locks, then one open per file to see it is there), timed alone
  over the files of a finished upload, group by group as the upload calls it, against
  `file_bytes.upload` of the same files into a fresh folder store (which includes it). Reported:
  hold / upload, the median of the per-round ratios.
- `walk`: `store_gc.collect` as a dry run over a store of `--walk-files` small files, every one
  named by a row, against listing and stat'ing the same tree with `os.walk` in the same round (the
  least any walk does). Reported: collect / os.walk, the median of the per-round ratios, and
  collect's files per second.

Each round makes a fresh migrated database and fresh store folders under `--store-parent`
(default: a new folder in /var/tmp, on the local disk). An `os.sync()` before each timed part;
the order of the walk's two parts alternates between rounds, both on a warm page cache.

    .venv/bin/python bench/bench_store_gc.py [--files N] [--walk-files M] [--repeat K]
        [--database-url URL] [--store-parent FOLDER]
"""

import argparse
import hashlib
import os
import shutil
import tempfile
import time
from pathlib import Path

from batchdesk.storage import blob_store, file_bytes, folder_store, store_gc, store_identity
from batchdesk.storage.blob_store import FileDigest
from batchdesk.storage.database import Database
from batchdesk.storage.file_bytes import FileStoreSetting
from benchsupport import BenchServer, bench_server, median, seconds

MB = 1 << 20


def use_store(database: Database, root: Path) -> None:
    with database.begin() as connection:
        store_identity.claim(connection, root)
        file_bytes.write_setting(connection, FileStoreSetting(file_bytes.STORE, str(root)))


def make_sources(folder: Path, count: int) -> list[tuple[Path, FileDigest]]:
    folder.mkdir(parents=True)
    items = []
    for index in range(count):
        path = folder / f"file-{index:05d}.bin"
        path.write_bytes(os.urandom(MB))
        items.append((path, blob_store.hash_file(path)))
    return items


def hold_round(
    server: BenchServer, parent: Path, items: list[tuple[Path, FileDigest]], index: int
) -> tuple[float, float]:
    """Time an upload into a fresh store, then the guard alone over the same files."""
    name = server.create_migrated_database(f"hold{index}")
    database = server.open(name)
    root = parent / f"store-{index}"
    root.mkdir()
    try:
        use_store(database, root)
        os.sync()
        started = time.perf_counter()
        file_bytes.upload(database, items, sum(d.size for _, d in items))
        upload = time.perf_counter() - started
        os.sync()
        started = time.perf_counter()
        for group in blob_store.transaction_groups(items):
            with database.begin() as connection:
                store_gc.hold(connection, root, group)
        hold = time.perf_counter() - started
        assert len(list(root.rglob("*"))) >= len(items)
        return upload, hold
    finally:
        database.close()
        server.drop_database(name)
        shutil.rmtree(root, ignore_errors=True)


def make_walk_store(database: Database, root: Path, count: int) -> None:
    """A store of `count` small files, each named by a row (so a dry run deletes nothing)."""
    hashes = []
    for index in range(count):
        content = index.to_bytes(8, "big")
        sha256 = hashlib.sha256(content).digest()
        target = root / folder_store.relative_path(sha256)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        hashes.append(sha256)
    with database.begin() as connection:
        connection.execute(
            "INSERT INTO blobs (sha256, size, location) "
            "SELECT h, 8, 'store' FROM unnest(%s::bytea[]) AS h",
            (hashes,),
        )


def plain_walk(root: Path) -> int:
    seen = 0
    for folder, _dirs, files in os.walk(root):
        for name in files:
            os.stat(os.path.join(folder, name), follow_symlinks=False)
            seen += 1
    return seen


def walk_round(server: BenchServer, parent: Path, count: int, index: int) -> tuple[float, float]:
    """Time a dry-run collect and a plain os.walk over the same store; return both."""
    name = server.create_migrated_database(f"walk{index}")
    database = server.open(name)
    root = parent / f"walk-{index}"
    root.mkdir()
    try:
        use_store(database, root)
        make_walk_store(database, root, count)
        timings: dict[str, float] = {}
        order = ["collect", "walk"] if index % 2 == 0 else ["walk", "collect"]
        for part in order:
            os.sync()
            started = time.perf_counter()
            if part == "collect":
                found = store_gc.collect(database, root, delete=False)
                assert found.problem is None, found.problem
                assert found.files == 0, found
            else:
                assert plain_walk(root) == count + 1  # and the marker
            timings[part] = time.perf_counter() - started
        return timings["collect"], timings["walk"]
    finally:
        database.close()
        server.drop_database(name)
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000, help="1 MiB files uploaded per round")
    parser.add_argument("--walk-files", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--database-url")
    parser.add_argument("--store-parent", type=Path, default=None)
    args = parser.parse_args()
    parent = Path(tempfile.mkdtemp(prefix="bench-store-gc-", dir=args.store_parent or "/var/tmp"))
    print(f"load average at start: {os.getloadavg()[0]:.2f}; folders under {parent}")
    try:
        with bench_server(args.database_url) as server:
            print(f"server: {server.description}")
            items = make_sources(parent / "sources", args.files)
            holds = []
            for index in range(args.repeat):
                upload, hold = hold_round(server, parent, items, index)
                holds.append(hold / upload)
                print(
                    f"round {index + 1}: upload {seconds(upload)}, hold {seconds(hold)} "
                    f"({hold / upload:.4f}x)"
                )
            walks = []
            rates = []
            for index in range(args.repeat):
                collect, walk = walk_round(server, parent, args.walk_files, index)
                walks.append(collect / walk)
                rates.append(args.walk_files / collect)
                print(
                    f"round {index + 1}: collect {seconds(collect)}, os.walk {seconds(walk)} "
                    f"({collect / walk:.2f}x, {args.walk_files / collect:,.0f} files/s)"
                )
    finally:
        shutil.rmtree(parent, ignore_errors=True)
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    print(f"hold / upload of {args.files:,} x 1 MiB (median of rounds): {median(holds):.4f}x")
    print(
        f"collect / os.walk over {args.walk_files:,} files (median of rounds): "
        f"{median(walks):.2f}x, {median(rates):,.0f} files/s"
    )


if __name__ == "__main__":
    main()
