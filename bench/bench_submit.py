"""Benchmark: submitting 1,000 PNGs of ~1 MB, against a bare COPY of the same bytes.

Targets (foundation issue): submission takes at most 1.5x the time of one bare
`COPY ... FROM STDIN (FORMAT BINARY)` of the same files into a scratch table on the same server
in the same run, and the submitting process's peak memory stays under 200 MB.

Each round starts from empty databases: one with a scratch table (name text, data bytea with
STORAGE EXTERNAL, like blob_chunks) for the baseline, one freshly migrated for batchdesk. Both
timed parts read the files from disk (the page cache, after generation) and end with a commit;
a CHECKPOINT before each keeps one part from paying for the other's dirty buffers, and the order
alternates between rounds. The submission runs in a child process of its own (select_files,
SubmissionRequest, submit), which reports its time and its peak resident memory (VmHWM).

    .venv/bin/python bench/bench_submit.py [--files N] [--repeat K] [--database-url URL]
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
from batchdesk.storage.submission import SubmissionRequest, submit
from benchsupport import BenchServer, bench_server, median, seconds, verdict

TARGET_RATIO = 1.5
TARGET_PEAK_MB = 200.0
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
            "pg_total_relation_size('blob_chunks')"
        ).fetchone()
    assert row is not None
    report.update(chunks=row[0], bytes=int(row[1]), jobs=int(row[2] or 0), on_disk=row[3])
    return report


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
    real_upload = file_bytes.upload

    def timed_upload(*args: Any, **kwargs: Any) -> int:
        began = time.perf_counter()
        try:
            return real_upload(*args, **kwargs)
        finally:
            uploads.append((began, time.perf_counter()))

    file_bytes.upload = timed_upload  # type: ignore[assignment]
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
    file_bytes.upload = real_upload  # type: ignore[assignment]
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
        with bench_server(args.database_url) as server:
            print(f"Server: {server.description}")
            if not server.can_checkpoint:
                print("  (no CHECKPOINT privilege: timed parts may pay for earlier writes)")
            rounds = [measure_round(server, workdir, files, index) for index in range(args.repeat)]
            ok = summarise(server, rounds, len(files), total)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if ok else 1


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=1000, help="how many PNGs (default 1000)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; medians are reported")
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
