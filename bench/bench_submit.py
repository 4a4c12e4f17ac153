"""Benchmark: submitting 1,000 PNGs of ~1 MB, against a bare COPY or `cp` of the same bytes.

Two cases, each against its own baseline measured in the same run:

- `database` (foundation issue): submission takes at most 1.5x the time of one bare
  `COPY ... FROM STDIN (FORMAT BINARY)` of the same files into a scratch table on the same
  server, and the submitting process's peak memory stays under 200 MB.
- `store` (issue 17): with a folder file store, submission takes at most 1.3x the time of `cp`
  of the same files into a folder beside the store plus `sync`, and the database grows by less
  than 1 MB per 1,000 files.

Each round starts from empty databases: one with a scratch table (name text, data bytea with
STORAGE EXTERNAL, like blob_chunks) for the baseline, one freshly migrated for batchdesk. Both
timed parts read the files from disk (the page cache, after generation) and end with a commit;
a CHECKPOINT before each keeps one part from paying for the other's dirty buffers, and the order
alternates between rounds. The submission runs in a child process of its own (select_files,
SubmissionRequest, submit), which reports its time and its peak resident memory (VmHWM).

The store case works the same way with a fresh store folder and a fresh `cp` folder per round,
side by side under `--store-parent` (default: a new folder in /var/tmp, on the local disk); an
`os.sync()` before each timed part keeps one part from paying for the other's dirty pages.

    .venv/bin/python bench/bench_submit.py [--case database|store|both] [--files N]
        [--repeat K] [--database-url URL] [--store-parent FOLDER]
"""

import argparse
import json
import os
import resource
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

import psycopg
from PIL import Image

from batchdesk.domain.file_selection import select_files
from batchdesk.storage import file_bytes
from batchdesk.storage.database import Database
from batchdesk.storage.file_bytes import FileStoreSetting
from batchdesk.storage.submission import SubmissionRequest, submit
from benchsupport import BenchServer, bench_server, median, seconds, verdict

TARGET_RATIO = 1.5
TARGET_PEAK_MB = 200.0
TARGET_STORE_RATIO = 1.3
TARGET_GROWTH_MB_PER_1000 = 1.0
# 600 x 560 RGB noise stored with compress_level=0: 1,008,000 bytes of pixels, ~1.01 MB a file.
WIDTH, HEIGHT = 600, 560
MB = 1_000_000
CHILD_CONNINFO = "BATCHDESK_BENCH_CONNINFO"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def noise_png(width: int, height: int) -> bytes:
    """Return an RGB PNG of random noise, stored without compression (like compress_level=0).

    Written directly rather than with Pillow, whose filter search takes ~40 ms a file here.
    """
    stride = width * 3 + 1
    raw = bytearray(os.urandom(height * stride))
    raw[0::stride] = bytes(height)  # filter type 0 (None) at the start of every row
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(bytes(raw), 0))
        + _chunk(b"IEND", b"")
    )


def generate_pngs(folder: Path, count: int) -> int:
    """Write `count` distinct noise PNGs of ~1 MB into `folder`; return their total size."""
    total = 0
    for index in range(count):
        path = folder / f"BENCH_PNG_render_{index:05d}.png"
        path.write_bytes(noise_png(WIDTH, HEIGHT))
        total += path.stat().st_size
    with Image.open(folder / "BENCH_PNG_render_00000.png") as image:
        image.load()  # a PNG that Pillow decodes completely, as a job would
        assert image.size == (WIDTH, HEIGHT)
    return total


def copy_baseline(server: BenchServer, name: str, files: list[Path]) -> dict[str, Any]:
    """Time one COPY of the files' bytes into a scratch table, commit included."""
    with psycopg.connect(server.conninfo(name)) as conn:
        conn.execute("CREATE TABLE scratch (name text NOT NULL, data bytea NOT NULL)")
        conn.execute("ALTER TABLE scratch ALTER COLUMN data SET STORAGE EXTERNAL")
        conn.commit()
        server.checkpoint()
        cpu_start = time.process_time()
        start = time.perf_counter()
        with (
            conn.cursor() as cursor,
            cursor.copy("COPY scratch (name, data) FROM STDIN (FORMAT BINARY)") as copy,
        ):
            copy.set_types(["text", "bytea"])
            for path in files:
                copy.write_row((path.name, path.read_bytes()))
        conn.commit()
        elapsed = time.perf_counter() - start
        cpu = time.process_time() - cpu_start
        row = conn.execute(
            "SELECT count(*), coalesce(sum(octet_length(data)), 0), "
            "pg_total_relation_size('scratch') FROM scratch"
        ).fetchone()
    assert row is not None
    return {"seconds": elapsed, "cpu": cpu, "rows": row[0], "bytes": int(row[1]), "on_disk": row[2]}


def submit_in_child(server: BenchServer, name: str, folder: Path) -> dict[str, Any]:
    """Run the submission in a fresh process so its peak memory is its own."""
    server.checkpoint()
    with psycopg.connect(server.conninfo(name)) as conn:
        size_before = _database_size(conn)
    completed = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", folder],
        # In the environment rather than the arguments, where `ps` would show a password.
        env={**os.environ, CHILD_CONNINFO: server.conninfo(name)},
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        sys.stderr.write(completed.stderr)
        raise SystemExit(f"the submitting child process failed (exit {completed.returncode})")
    report: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    with psycopg.connect(server.conninfo(name)) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM blob_chunks), "
            "(SELECT coalesce(sum(octet_length(data)), 0) FROM blob_chunks), "
            "(SELECT sum(total_files) FROM batches), "
            "pg_total_relation_size('blob_chunks'), "
            "(SELECT coalesce(sum(size), 0) FROM blobs WHERE location = 'store')"
        ).fetchone()
        growth = _database_size(conn) - size_before
    assert row is not None
    report.update(
        chunks=row[0],
        bytes=int(row[1]),
        jobs=int(row[2] or 0),
        on_disk=row[3],
        store_bytes=int(row[4]),
        growth=growth,
    )
    return report


def _database_size(conn: psycopg.Connection[Any]) -> int:
    """The database's size on disk: relations grow their files as pages are added."""
    row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
    assert row is not None
    return int(row[0])


def _peak_rss_kb() -> int:
    """The process's peak resident memory so far, in KiB (VmHWM on Linux)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def child_main(conninfo: str, folder: Path) -> None:
    """The submission as the CLI and the GUI do it; prints one JSON line."""
    database = Database(conninfo, "bench database")
    with database.connect() as connection:  # connect before the clock starts, as COPY does
        connection.execute("SELECT 1")
    rss_before_kb = _peak_rss_kb()
    # Time the phases by wrapping the upload step submit() calls (at call time, so the
    # wrapper is what it finds): before it, selecting the files; during it, hashing (on a
    # thread of its own, one step ahead) and storing; after it, the batch's own transaction.
    uploads: list[tuple[float, float]] = []
    real_upload = file_bytes.upload_files

    def timed_upload(*args: Any, **kwargs: Any) -> Any:
        began = time.perf_counter()
        try:
            return real_upload(*args, **kwargs)
        finally:
            uploads.append((began, time.perf_counter()))

    file_bytes.upload_files = timed_upload
    cpu_start = time.process_time()
    start = time.perf_counter()
    selection = select_files([folder])
    request = SubmissionRequest(
        files=selection.files,
        source_paths=(folder,),
        description="benchmark",
        created_by="bench@bench",
    )
    result = submit(database, request)
    end = time.perf_counter()
    cpu = time.process_time() - cpu_start
    file_bytes.upload_files = real_upload
    database.close()
    upload_first = uploads[0][0] if uploads else end
    upload_last = uploads[-1][1] if uploads else end
    report = {
        "seconds": end - start,
        "cpu": cpu,
        "select": upload_first - start,
        "upload": upload_last - upload_first,
        "create_batch": end - upload_last,
        "files": len(selection.files),
        "batches": [b.base_directory_name for b in result.batches],
        "rss_before_mb": rss_before_kb * 1024 / MB,
        "peak_rss_mb": _peak_rss_kb() * 1024 / MB,
    }
    print(json.dumps(report))


def run(args: argparse.Namespace) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="batchdesk-bench-pngs-", dir="/tmp"))
    try:
        print(f"Generating {args.files:,} noise PNGs in {workdir} ...", flush=True)
        started = time.perf_counter()
        total = generate_pngs(workdir, args.files)
        files = sorted(workdir.iterdir())
        took = time.perf_counter() - started
        print(f"  {len(files):,} files, {total / MB:,.0f} MB, in {took:.1f} s (not timed)")
        print(f"  load average before: {_load_average()}")
        ok = True
        with bench_server(args.database_url) as server:
            print(f"Server: {server.description}")
            if not server.can_checkpoint:
                print("  (no CHECKPOINT privilege: timed parts may pay for earlier writes)")
            if args.case in ("database", "both"):
                rounds = [measure_round(server, workdir, files, i) for i in range(args.repeat)]
                ok = summarise(server, rounds, len(files), total) and ok
            if args.case in ("store", "both"):
                ok = run_store_case(server, args, workdir, files, total) and ok
        print(f"  load average after: {_load_average()}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if ok else 1


def _load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def measure_round(
    server: BenchServer, folder: Path, files: list[Path], index: int
) -> dict[str, Any]:
    copy_db = server.create_database("copy")
    submit_db = server.create_migrated_database("submit")
    try:
        # Alternate which part runs first, so neither always meets a warmer or fuller server.
        if index % 2 == 0:
            baseline = copy_baseline(server, copy_db, files)
            submitted = submit_in_child(server, submit_db, folder)
        else:
            submitted = submit_in_child(server, submit_db, folder)
            baseline = copy_baseline(server, copy_db, files)
    finally:
        server.drop_database(copy_db)
        server.drop_database(submit_db)
    ratio = submitted["seconds"] / baseline["seconds"]
    ok = (
        baseline["rows"] == len(files)
        and submitted["jobs"] == len(files)
        and submitted["bytes"] == baseline["bytes"]
    )
    print(
        f"round {index + 1}: COPY {seconds(baseline['seconds'])}, "
        f"submit {seconds(submitted['seconds'])} "
        f"(select {seconds(submitted['select'])}, "
        f"hash+upload {seconds(submitted['upload'])}, "
        f"create batch {seconds(submitted['create_batch'])}), "
        f"ratio {ratio:.2f}; client CPU: COPY {seconds(baseline['cpu'])}, "
        f"submit {seconds(submitted['cpu'])}; submit peak RSS {submitted['peak_rss_mb']:.0f} MB"
        + ("" if ok else "  [STORED BYTES DO NOT MATCH]"),
        flush=True,
    )
    return {"copy": baseline, "submit": submitted, "ratio": ratio, "ok": ok}


def summarise(server: BenchServer, rounds: list[dict[str, Any]], count: int, total: int) -> bool:
    copy_s = median([r["copy"]["seconds"] for r in rounds])
    submit_s = median([r["submit"]["seconds"] for r in rounds])
    ratio = median([r["ratio"] for r in rounds])
    peak = max(r["submit"]["peak_rss_mb"] for r in rounds)
    before = median([r["submit"]["rss_before_mb"] for r in rounds])
    selecting = median([r["submit"]["select"] for r in rounds])
    upload = median([r["submit"]["upload"] for r in rounds])
    create = median([r["submit"]["create_batch"] for r in rounds])
    copy_cpu = median([r["copy"]["cpu"] for r in rounds])
    submit_cpu = median([r["submit"]["cpu"] for r in rounds])
    last = rounds[-1]
    print()
    print(f"Submit benchmark: {count:,} PNGs, {total / MB:,.0f} MB, {len(rounds)} round(s)")
    print(f"  server                  {server.description}")
    print(f"  bare COPY (median)      {seconds(copy_s)}  ({total / MB / copy_s:,.0f} MB/s)")
    print(
        f"  submit() (median)       {seconds(submit_s)}  ({total / MB / submit_s:,.0f} MB/s; "
        f"select {seconds(selecting)}, hash+upload {seconds(upload)}, "
        f"create batch {seconds(create)})"
    )
    print(
        f"  client CPU (median)     COPY {seconds(copy_cpu)}, submit() {seconds(submit_cpu)} "
        "(Python process only; the server's work is not in it)"
    )
    print(
        f"  stored on disk          scratch {last['copy']['on_disk'] / MB:,.0f} MB, "
        f"blob_chunks {last['submit']['on_disk'] / MB:,.0f} MB"
    )
    print(
        f"  submit / COPY           {ratio:.2f}x (median of per-round ratios)   "
        f"target <= {TARGET_RATIO}x   {verdict(ratio, TARGET_RATIO)}"
    )
    print(
        f"  submit peak RSS         {peak:.0f} MB (max over rounds; {before:.0f} MB before "
        f"submitting)   target < {TARGET_PEAK_MB:.0f} MB   {verdict(peak, TARGET_PEAK_MB)}"
    )
    stored_ok = all(r["ok"] for r in rounds)
    if not stored_ok:
        print("  ERROR: the stored bytes or job counts did not match the files")
    return stored_ok and ratio <= TARGET_RATIO and peak < TARGET_PEAK_MB


# -- the folder store case (issue 17) -----------------------------------------------------------


def run_store_case(
    server: BenchServer, args: argparse.Namespace, folder: Path, files: list[Path], total: int
) -> bool:
    parent = Path(
        args.store_parent or tempfile.mkdtemp(prefix="batchdesk-bench-store-", dir="/var/tmp")
    )
    parent.mkdir(parents=True, exist_ok=True)
    print(f"Store case: store and cp folders under {parent} ({_file_system(parent)})", flush=True)
    try:
        rounds = [
            measure_store_round(server, parent, folder, files, index)
            for index in range(args.repeat)
        ]
    finally:
        # Only now: deleting 2 GB makes the disk discard it (mounted with `discard` here) while
        # whatever runs next writes, and that would be the next round's first part.
        for index in range(args.repeat):
            shutil.rmtree(parent / f"store-{index}", ignore_errors=True)
            shutil.rmtree(parent / f"cp-{index}", ignore_errors=True)
        if not args.store_parent:
            shutil.rmtree(parent, ignore_errors=True)
    return summarise_store(rounds, len(files), total)


def _file_system(folder: Path) -> str:
    """The type of the file system holding `folder` (GNU stat), e.g. ext2/ext3 for ext4."""
    done = subprocess.run(["stat", "-f", "-c", "%T", str(folder)], capture_output=True, text=True)
    return done.stdout.strip() or "file system unknown"


def cp_baseline(target: Path, files: list[Path]) -> dict[str, Any]:
    """Time `cp` of the files into an empty folder plus `sync`, as a shell script would."""
    target.mkdir()
    os.sync()  # the previous part's dirty pages are not this part's to write
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(["cp", "--", *map(str, files), str(target)], check=True)
    copied = time.perf_counter()
    subprocess.run(["sync"], check=True)
    end = time.perf_counter()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    size = sum(p.stat().st_size for p in target.iterdir())
    return {
        "seconds": end - start,
        "cp": copied - start,
        "sync": end - copied,
        "bytes": size,
        "cpu": cpu,
    }


def measure_store_round(
    server: BenchServer, parent: Path, folder: Path, files: list[Path], index: int
) -> dict[str, Any]:
    store = parent / f"store-{index}"
    copies = parent / f"cp-{index}"
    store.mkdir()
    submit_db = server.create_migrated_database("store")
    try:
        database = server.open(submit_db)
        try:
            with database.begin() as connection:
                file_bytes.write_setting(connection, FileStoreSetting(file_bytes.STORE, str(store)))
        finally:
            database.close()
        if index % 2 == 0:
            baseline = cp_baseline(copies, files)
            os.sync()
            submitted = submit_in_child(server, submit_db, folder)
        else:
            os.sync()
            submitted = submit_in_child(server, submit_db, folder)
            baseline = cp_baseline(copies, files)
        in_store = [p for p in store.rglob("*") if p.is_file()]
        leftovers = [p for p in in_store if p.name.startswith(".")]
        stored_bytes = sum(p.stat().st_size for p in in_store)
    finally:
        server.drop_database(submit_db)
    ratio = submitted["seconds"] / baseline["seconds"]
    ok = (
        submitted["jobs"] == len(files)
        and submitted["chunks"] == 0
        and submitted["store_bytes"] == baseline["bytes"] == stored_bytes
        and not leftovers
    )
    print(
        f"round {index + 1}: cp+sync {seconds(baseline['seconds'])} "
        f"(cp {seconds(baseline['cp'])}, sync {seconds(baseline['sync'])}), "
        f"submit {seconds(submitted['seconds'])} "
        f"(select {seconds(submitted['select'])}, "
        f"hash+store {seconds(submitted['upload'])}, "
        f"create batch {seconds(submitted['create_batch'])}), "
        f"ratio {ratio:.2f}; database grew {submitted['growth'] / MB:.2f} MB; "
        f"CPU: cp+sync {seconds(baseline['cpu'])}, submit {seconds(submitted['cpu'])}; "
        f"load {_load_average()}" + ("" if ok else "  [STORED FILES DO NOT MATCH]"),
        flush=True,
    )
    return {"cp": baseline, "submit": submitted, "ratio": ratio, "ok": ok}


def summarise_store(rounds: list[dict[str, Any]], count: int, total: int) -> bool:
    cp_s = median([r["cp"]["seconds"] for r in rounds])
    submit_s = median([r["submit"]["seconds"] for r in rounds])
    ratio = median([r["ratio"] for r in rounds])
    growth = max(r["submit"]["growth"] for r in rounds) / MB * 1000 / count
    upload = median([r["submit"]["upload"] for r in rounds])
    create = median([r["submit"]["create_batch"] for r in rounds])
    print()
    print(
        f"Submit with a folder store: {count:,} PNGs, {total / MB:,.0f} MB, {len(rounds)} round(s)"
    )
    print(f"  cp + sync (median)      {seconds(cp_s)}  ({total / MB / cp_s:,.0f} MB/s)")
    print(
        f"  submit() (median)       {seconds(submit_s)}  ({total / MB / submit_s:,.0f} MB/s; "
        f"hash+store {seconds(upload)}, create batch {seconds(create)})"
    )
    cpu_cp = median([r["cp"]["cpu"] for r in rounds])
    cpu_submit = median([r["submit"]["cpu"] for r in rounds])
    print(
        f"  CPU (median)            cp + sync {seconds(cpu_cp)}, submit() {seconds(cpu_submit)} "
        "(cp's is the kernel copying for it; submit's includes its threads; not the verdict)"
    )
    print(
        f"  submit / (cp + sync)    {ratio:.2f}x (median of per-round ratios; rounds "
        + ", ".join(f"{r['ratio']:.2f}" for r in rounds)
        + f")   target <= {TARGET_STORE_RATIO}x   {verdict(ratio, TARGET_STORE_RATIO)}"
    )
    print(
        f"  database growth         {growth:.2f} MB per 1,000 files (largest round)   "
        f"target < {TARGET_GROWTH_MB_PER_1000:.0f} MB   "
        f"{verdict(growth, TARGET_GROWTH_MB_PER_1000)}"
    )
    stored_ok = all(r["ok"] for r in rounds)
    if not stored_ok:
        print("  ERROR: the stored files or job counts did not match the files")
    return stored_ok and ratio <= TARGET_STORE_RATIO and growth < TARGET_GROWTH_MB_PER_1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=1000, help="how many PNGs (default 1000)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; medians are reported")
    parser.add_argument(
        "--case",
        choices=("database", "store", "both"),
        default="both",
        help="files kept in the database (against COPY), in a folder store (against cp + sync), "
        "or both (default)",
    )
    parser.add_argument(
        "--store-parent",
        metavar="FOLDER",
        help="where the store and cp folders are made (default: a new folder in /var/tmp)",
    )
    parser.add_argument(
        "--database-url",
        help="server to use (databases are created and dropped on it); default: a temporary "
        "embedded server",
    )
    parser.add_argument("--child", metavar="FOLDER", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_main(os.environ[CHILD_CONNINFO], Path(args.child))
        return 0
    if args.files < 1 or args.repeat < 1:
        parser.error("--files and --repeat must be at least 1")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
