"""Benchmark: exporting ~1 GB of PNG outputs as a zip, against copying the same bytes to files.

Targets (export issue): `export_zip` reaches at least 0.8x the throughput of a bare copy of the
same stored bytes out of the database into files, measured in the same run (ratio = copy time /
export time), and the exporting process's peak memory stays under 150 MB.

The batch is built once per run, not timed: distinct RGB noise PNGs of ~10 MB (incompressible,
like renders) are submitted with `submit()` and run by a real 2-thread `Runner` on the default
`original` pipeline, which stores each input unchanged as the job's output. Then each round,
in alternating order, each part after a CHECKPOINT and an `os.sync()` (so neither pays for the
other's writes), and each part's files removed as soon as it is done:

- copy: one psycopg connection lists the batch's `job_outputs` and, for each, streams
  `SELECT data FROM blob_chunks WHERE sha256 = %s ORDER BY chunk_index` in binary format into a
  file of its own; then every file and the folder are fsynced, as the export fsyncs its zip;
- export: `export_zip(database, batch_id, target)` into the same temporary folder.

Both connect before the clock starts. The fsync calls of both parts are timed separately: the
ratio is printed with them and without them, and the verdict is on the lower of the two. The
first round checks every byte (sha256 of each copied file and each zip entry against the stored
hash). Peak memory is that of a real `batchdesk export BATCH -o FILE` process (VmHWM, sampled
while it runs).

With `--case store` (issue 17: >= 0.8x of a plain file copy of the same bytes), the batch is
built with a folder file store (a folder on the local disk, beside the work folder), so inputs
and outputs are files in the store, and the copy part is a plain file copy of each stored
output (`shutil.copyfile`: sendfile, in the kernel) instead of streaming it from the database.

    .venv/bin/python bench/bench_export.py [--case database|store] [--megabytes N] [--repeat K]
        [--database-url URL]
"""

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg

from batchdesk.export.zip_export import export_zip
from batchdesk.jobs.runner import Runner, RunnerConfig
from batchdesk.storage import file_bytes, folder_store
from batchdesk.storage.database import Database
from batchdesk.storage.file_bytes import FileStoreSetting
from bench_submit import noise_png
from benchsupport import (
    BenchServer,
    MachineCpu,
    at_least,
    backend_cpu,
    below,
    bench_server,
    install_pipelines,
    median,
    seconds,
    submit_paths,
)

TARGET_RATIO = 0.8
TARGET_PEAK_MB = 150.0
# 2000 x 1666 RGB noise, stored uncompressed: 9,997,666 bytes of pixel rows, ~10.0 MB a file.
WIDTH, HEIGHT = 2000, 1666
MB = 1_000_000
RUN_TIMEOUT = 1800.0  # seconds for the runner to produce the outputs
OUTPUTS_QUERY = (
    "SELECT o.name, o.sha256, o.size FROM job_outputs o JOIN jobs j ON j.id = o.job_id "
    "WHERE j.batch_id = %s ORDER BY j.position, o.name"
)
CHUNKS_QUERY = "SELECT data FROM blob_chunks WHERE sha256 = %s ORDER BY chunk_index"


class FsyncClock:
    """Sums the time spent in os.fsync while installed (the export's and the copy's alike)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.calls = 0

    @contextmanager
    def installed(self) -> Iterator["FsyncClock"]:
        real = os.fsync

        def timed(fd: Any) -> None:
            began = time.perf_counter()
            try:
                real(fd)
            finally:
                self.seconds += time.perf_counter() - began
                self.calls += 1

        os.fsync = timed
        try:
            yield self
        finally:
            os.fsync = real


def sync_disk() -> None:
    """Write back dirty pages now, so the next timed part does not pay for earlier writes."""
    os.sync()


def fsync_path(path: Path, flags: int = os.O_RDONLY) -> None:
    descriptor = os.open(path, flags)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


# -- building the batch (not timed) -------------------------------------------------------------


def build_batch(
    server: BenchServer, name: str, workdir: Path, megabytes: int, store: Path | None
) -> dict[str, Any]:
    """Submit noise PNGs, run them on the `original` pipeline; return the batch and its outputs.

    With `store`, the database keeps file bytes in that folder store.
    """
    inputs = workdir / "inputs"
    inputs.mkdir()
    sample = noise_png(WIDTH, HEIGHT)
    count = max(1, round(megabytes * MB / len(sample)))
    print(f"Generating {count:,} noise PNGs of {len(sample) / MB:.1f} MB ...", flush=True)
    started = time.perf_counter()
    paths = []
    for index in range(count):
        path = inputs / f"BENCH_EXPORT_render_{index:04d}.png"
        path.write_bytes(sample if index == 0 else noise_png(WIDTH, HEIGHT))
        paths.append(path)
    generated = time.perf_counter() - started
    database = server.open(name)
    try:
        install_pipelines(database)
        if store is not None:
            store.mkdir()
            with database.begin() as connection:
                setting = FileStoreSetting(file_bytes.STORE, str(store))
                file_bytes.write_setting(connection, setting)
        started = time.perf_counter()
        batch = submit_paths(database, paths, "original")
        submitted = time.perf_counter() - started
        shutil.rmtree(inputs)  # stored now: the disk and the page cache need them no more
        started = time.perf_counter()
        work = workdir / "runner"
        work.mkdir()
        runner = Runner(database, RunnerConfig(threads=2, poll_interval=0.5, work_dir=work))
        runner.start()
        try:
            if not runner.drained.wait(RUN_TIMEOUT):
                raise RuntimeError(f"the runner did not finish {count} jobs in {RUN_TIMEOUT} s")
        finally:
            runner.stop()
        ran = time.perf_counter() - started
    finally:
        database.close()
    with psycopg.connect(server.conninfo(name), autocommit=True) as conn:
        status = conn.execute(
            "SELECT count(*) FILTER (WHERE status = 'completed'), count(*) FROM jobs "
            "WHERE batch_id = %s",
            (batch.id,),
        ).fetchone()
        outputs = conn.execute(OUTPUTS_QUERY, (batch.id,)).fetchall()
        # Hint bits and visibility now, so the first timed read does not write pages.
        for table in ("blob_chunks", "blobs", "jobs", "job_outputs"):
            conn.execute(f"VACUUM ANALYZE {table}")
        stored = conn.execute("SELECT pg_total_relation_size('blob_chunks')").fetchone()
    assert status is not None
    assert stored is not None
    if status[0] != count or len(outputs) != count:
        raise RuntimeError(
            f"{status[0]} of {status[1]} jobs completed with {len(outputs)} outputs; "
            f"expected {count} of each"
        )
    total = sum(int(row[2]) for row in outputs)
    print(
        f"  {count:,} files, {total / MB:,.0f} MB of outputs ({stored[0] / MB:,.0f} MB in "
        f"blob_chunks): generated in {generated:.1f} s, submitted in {submitted:.1f} s, "
        f"run in {ran:.1f} s (not timed)",
        flush=True,
    )
    return {
        "id": batch.id,
        "name": batch.base_directory_name,
        "outputs": [(str(n), bytes(sha), int(size)) for n, sha, size in outputs],
        "bytes": total,
    }


# -- the two timed parts ----------------------------------------------------------------------


def copy_baseline(
    server: BenchServer, name: str, batch_id: UUID, folder: Path, store: Path | None
) -> dict[str, Any]:
    """Stream every output of the batch into a file of its own, then fsync them all.

    With `store`, copy each output's file in the store instead (a plain file copy).
    """
    conninfo = server.conninfo(name)
    folder.mkdir()
    written = 0
    paths: list[Path] = []
    with psycopg.connect(conninfo) as conn:
        conn.execute("SELECT 1")
        conn.rollback()
        server_cpu = backend_cpu(conninfo)
        machine = MachineCpu()
        clock = FsyncClock()
        with clock.installed():
            cpu_start = time.process_time()
            start = time.perf_counter()
            cursor = conn.cursor()
            for file_name, sha256, size in conn.execute(OUTPUTS_QUERY, (batch_id,)).fetchall():
                path = folder / file_name
                if store is not None:
                    shutil.copyfile(store / folder_store.relative_path(bytes(sha256)), path)
                    written += size
                    paths.append(path)
                    continue
                with path.open("wb") as out:
                    for (data,) in cursor.stream(CHUNKS_QUERY, (sha256,), binary=True):
                        out.write(data)
                        written += len(data)
                paths.append(path)
            for path in paths:
                fsync_path(path)
            fsync_path(folder, os.O_RDONLY | os.O_DIRECTORY)
            conn.rollback()
            elapsed = time.perf_counter() - start
            cpu = time.process_time() - cpu_start
        busy = machine.busy_seconds()
        server_after = backend_cpu(conninfo)
    return {
        "seconds": elapsed,
        "fsync": clock.seconds,
        "cpu": cpu,
        "server_cpu": _difference(server_after, server_cpu),
        "machine_cpu": busy,
        "bytes": written,
        "files": len(paths),
    }


def export_part(server: BenchServer, name: str, batch_id: UUID, target: Path) -> dict[str, Any]:
    """Time export_zip of the batch to `target`, the way the CLI and the window call it."""
    conninfo = server.conninfo(name)
    target.parent.mkdir()
    database: Database = server.open(name)
    try:
        with database.connect() as connection:  # connect before the clock starts
            connection.execute("SELECT 1")
        server_cpu = backend_cpu(conninfo)
        machine = MachineCpu()
        clock = FsyncClock()
        with clock.installed():
            cpu_start = time.process_time()
            start = time.perf_counter()
            summary = export_zip(database, batch_id, target)
            elapsed = time.perf_counter() - start
            cpu = time.process_time() - cpu_start
        busy = machine.busy_seconds()
        server_after = backend_cpu(conninfo)
    finally:
        database.close()
    return {
        "seconds": elapsed,
        "fsync": clock.seconds,
        "cpu": cpu,
        "server_cpu": _difference(server_after, server_cpu),
        "machine_cpu": busy,
        "bytes": summary.bytes,
        "files": summary.files,
        "zip_size": target.stat().st_size,
    }


def _difference(after: float | None, before: float | None) -> float | None:
    return None if after is None or before is None else after - before


# -- checks (not timed) -----------------------------------------------------------------------


def _sha256_of(stream: Any) -> bytes:
    digest = hashlib.sha256()
    while chunk := stream.read(1 << 20):
        digest.update(chunk)
    return digest.digest()


def check_copy(folder: Path, outputs: list[tuple[str, bytes, int]]) -> list[str]:
    problems = []
    for file_name, sha256, size in outputs:
        path = folder / file_name
        with path.open("rb") as stream:
            if path.stat().st_size != size or _sha256_of(stream) != sha256:
                problems.append(f"copy of {file_name} differs from the stored file")
    return problems


def check_zip(target: Path, batch_name: str, outputs: list[tuple[str, bytes, int]]) -> list[str]:
    problems = []
    with zipfile.ZipFile(target) as archive:
        names = set(archive.namelist())
        expected = {f"{batch_name}/{file_name}" for file_name, _, _ in outputs}
        if not expected <= names or len(names) != len(expected) + 1:  # + manifest.csv
            problems.append(f"the zip holds {len(names)} entries, not {len(expected)} + manifest")
        for file_name, sha256, size in outputs:
            entry = f"{batch_name}/{file_name}"
            if entry not in names:
                continue
            info = archive.getinfo(entry)
            if info.compress_type != zipfile.ZIP_STORED:
                problems.append(f"{entry} is compressed; PNGs should be stored")
            with archive.open(entry) as stream:  # reading checks the CRC too
                if info.file_size != size or _sha256_of(stream) != sha256:
                    problems.append(f"{entry} differs from the stored file")
    return problems


# -- peak memory of a real `batchdesk export` process ----------------------------------------


def _vm_hwm_kb(pid: int) -> int | None:
    """The process's peak resident memory so far (VmHWM), in KiB; None once it has exited."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def run_cli(argv: list[str], folder: Path, conninfo: str) -> dict[str, Any]:
    """Run `python -m batchdesk ARGV`; return its exit code, time, CPU, output and peak RSS.

    The peak is VmHWM, sampled every 10 ms while the process runs (a high-water mark, so only
    growth in its last 10 ms could be missed). Not ru_maxrss from wait4(): on Linux a child
    started by fork or vfork + exec inherits the parent's RSS into it, so it would report this
    benchmark's own memory whenever that is larger.
    """
    home, tmp = folder / "home", folder / "tmp"
    home.mkdir(exist_ok=True)
    tmp.mkdir(exist_ok=True)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("PG") and key not in {"BATCHDESK_DATABASE_URL", "BATCHDESK_HOME"}
    }
    # In the environment rather than --database-url, where `ps` would show a password.
    env |= {"BATCHDESK_HOME": str(home), "BATCHDESK_DATABASE_URL": conninfo, "TMPDIR": str(tmp)}
    out_path, err_path = folder / "cli.out", folder / "cli.err"
    peak_kb = 0
    with out_path.open("wb") as out, err_path.open("wb") as err:
        start = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "-m", "batchdesk", *argv],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            env=env,
            cwd=folder,
        )
        try:
            while True:
                # Read before reaping: once wait4() returns, /proc/PID is gone.
                peak_kb = max(peak_kb, _vm_hwm_kb(process.pid) or 0)
                pid, status, usage = os.wait4(process.pid, os.WNOHANG)
                if pid:
                    break
                time.sleep(0.01)
        except BaseException:  # Ctrl+C or a bug here: leave no export running
            process.kill()
            process.wait()
            raise
        process.returncode = os.waitstatus_to_exitcode(status)
        elapsed = time.perf_counter() - start
    return {
        "returncode": process.returncode,
        "seconds": elapsed,
        "cpu": usage.ru_utime + usage.ru_stime,
        "peak_rss_mb": peak_kb * 1024 / MB,
        "stdout": out_path.read_text(errors="replace"),
        "stderr": err_path.read_text(errors="replace"),
    }


def measure_memory(
    server: BenchServer, name: str, batch: dict[str, Any], workdir: Path
) -> dict[str, Any]:
    folder = workdir / "cli"
    folder.mkdir()
    conninfo = server.conninfo(name)
    try:
        idle = run_cli(["db", "status", "--json"], folder, conninfo)
        if idle["returncode"] != 0:
            raise RuntimeError(f"batchdesk db status failed: {idle['stderr'].strip()}")
        sync_disk()
        target = folder / "cli-export.zip"
        exported = run_cli(["export", batch["name"], "-o", str(target), "--json"], folder, conninfo)
        if exported["returncode"] != 0:
            raise RuntimeError(f"batchdesk export failed: {exported['stderr'].strip()}")
        report = json.loads(exported["stdout"])
        exported["ok"] = (
            target.is_file()
            and report.get("files") == len(batch["outputs"])
            and report.get("bytes") == batch["bytes"]
        )
        exported["idle_rss_mb"] = idle["peak_rss_mb"]
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return exported


# -- rounds and summary -----------------------------------------------------------------------


def measure_round(
    server: BenchServer,
    name: str,
    batch: dict[str, Any],
    workdir: Path,
    index: int,
    store: Path | None,
) -> dict[str, Any]:
    copy_dir = workdir / "copy"
    export_dir = workdir / "export"
    target = export_dir / f"{batch['name']}.zip"

    problems: list[str] = []

    # Each part's files go as soon as it is done (checked first, in the first round), so the
    # second part writes into the same state of the disk and the page cache as the first.
    def run_copy() -> dict[str, Any]:
        server.checkpoint()
        sync_disk()
        try:
            result = copy_baseline(server, name, batch["id"], copy_dir, store)
            if index == 0:  # every byte, once
                problems.extend(check_copy(copy_dir, batch["outputs"]))
        finally:
            shutil.rmtree(copy_dir, ignore_errors=True)
        return result

    def run_export() -> dict[str, Any]:
        server.checkpoint()
        sync_disk()
        try:
            result = export_part(server, name, batch["id"], target)
            if index == 0:
                problems.extend(check_zip(target, batch["name"], batch["outputs"]))
        finally:
            shutil.rmtree(export_dir, ignore_errors=True)
        return result

    # Alternate which part runs first, so neither always meets a warmer or fuller server.
    if index % 2 == 0:
        copied = run_copy()
        exported = run_export()
    else:
        exported = run_export()
        copied = run_copy()
    count = len(batch["outputs"])
    if copied["bytes"] != batch["bytes"] or copied["files"] != count:
        problems.append(f"the copy wrote {copied['files']} files, {copied['bytes']} bytes")
    if exported["bytes"] != batch["bytes"] or exported["files"] != count:
        problems.append(f"the export wrote {exported['files']} files, {exported['bytes']} bytes")
    ratio = copied["seconds"] / exported["seconds"]
    ratio_unsynced = (copied["seconds"] - copied["fsync"]) / (
        exported["seconds"] - exported["fsync"]
    )
    total = batch["bytes"] / MB
    print(
        f"round {index + 1}: copy {seconds(copied['seconds'])} "
        f"({total / copied['seconds']:,.0f} MB/s, fsync {seconds(copied['fsync'])}), "
        f"export {seconds(exported['seconds'])} "
        f"({total / exported['seconds']:,.0f} MB/s, fsync {seconds(exported['fsync'])}), "
        f"ratio {ratio:.2f} ({ratio_unsynced:.2f} without fsync); client CPU: copy "
        f"{seconds(copied['cpu'])}, export {seconds(exported['cpu'])}; server CPU: copy "
        f"{_cpu(copied['server_cpu'])}, export {_cpu(exported['server_cpu'])}; machine busy: "
        f"copy {_cpu(copied['machine_cpu'])}, export {_cpu(exported['machine_cpu'])}"
        + ("" if not problems else "  [" + "; ".join(problems) + "]"),
        flush=True,
    )
    return {
        "copy": copied,
        "export": exported,
        "ratio": ratio,
        "ratio_unsynced": ratio_unsynced,
        "problems": problems,
    }


def _cpu(value: float | None) -> str:
    return "n/a" if value is None else seconds(value)


def _median_cpu(rounds: list[dict[str, Any]], part: str, key: str) -> float | None:
    values = [r[part][key] for r in rounds if r[part][key] is not None]
    return median(values) if values else None


def summarise(
    server: BenchServer, rounds: list[dict[str, Any]], batch: dict[str, Any], cli: dict[str, Any]
) -> bool:
    total = batch["bytes"] / MB
    copy_s = median([r["copy"]["seconds"] for r in rounds])
    export_s = median([r["export"]["seconds"] for r in rounds])
    copy_fsync = median([r["copy"]["fsync"] for r in rounds])
    export_fsync = median([r["export"]["fsync"] for r in rounds])
    ratio = median([r["ratio"] for r in rounds])
    unsynced = median([r["ratio_unsynced"] for r in rounds])
    # The copy fsyncs each of its files, the export its one zip: with fsync the copy pays a
    # little more, without it the export's share of the disk flush is left out. Judge on both.
    judged = min(ratio, unsynced)
    how = "the lower"
    if batch["kept_in"] != "database":
        # A plain copy without its fsync never leaves the page cache: judge durable against
        # durable, as bench_submit judges cp + sync.
        judged, how = ratio, "with fsync"
    peak = cli["peak_rss_mb"]
    print()
    print(
        f"Export benchmark: {len(batch['outputs']):,} PNG outputs, {total:,.0f} MB, "
        f"{len(rounds)} round(s), files kept in the {batch['kept_in']}"
    )
    print(f"  server                  {server.description}")
    print(
        f"  copy to files (median)  {seconds(copy_s)}  ({total / copy_s:,.0f} MB/s; "
        f"fsync {seconds(copy_fsync)})"
    )
    print(
        f"  export_zip (median)     {seconds(export_s)}  ({total / export_s:,.0f} MB/s; "
        f"fsync {seconds(export_fsync)}; zip {rounds[-1]['export']['zip_size'] / MB:,.0f} MB)"
    )
    print(
        f"  client CPU (median)     copy {seconds(median([r['copy']['cpu'] for r in rounds]))}, "
        f"export {seconds(median([r['export']['cpu'] for r in rounds]))}; server CPU: copy "
        f"{_cpu(_median_cpu(rounds, 'copy', 'server_cpu'))}, export "
        f"{_cpu(_median_cpu(rounds, 'export', 'server_cpu'))}"
    )
    per_round = ", ".join(f"{r['ratio']:.2f}" for r in rounds)
    per_round_unsynced = ", ".join(f"{r['ratio_unsynced']:.2f}" for r in rounds)
    print(
        f"  copy / export time      {ratio:.2f}x with each part's fsync ({per_round}), "
        f"{unsynced:.2f}x leaving fsync out of both ({per_round_unsynced}); medians of rounds"
    )
    print(
        f"  verdict ({how})".ljust(26) + f"{judged:.2f}x   target >= {TARGET_RATIO}x   "
        f"{at_least(judged, TARGET_RATIO)}"
    )
    print(
        f"  export peak RSS         {peak:.0f} MB (`batchdesk export` in its own process, "
        f"{seconds(cli['seconds'])} wall, {seconds(cli['cpu'])} CPU; `batchdesk db status`: "
        f"{cli['idle_rss_mb']:.0f} MB)   target < {TARGET_PEAK_MB:.0f} MB   "
        f"{below(peak, TARGET_PEAK_MB)}"
    )
    ok = all(not r["problems"] for r in rounds) and cli["ok"]
    if not ok:
        print("  ERROR: the copied or exported bytes did not match the stored files")
    return ok and judged >= TARGET_RATIO and peak < TARGET_PEAK_MB


def run(args: argparse.Namespace) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="batchdesk-bench-export-", dir="/tmp"))
    try:
        with bench_server(args.database_url) as server:
            print(f"Server: {server.description}")
            if not server.can_checkpoint:
                print("  (no CHECKPOINT privilege: timed parts may pay for earlier writes)")
            name = server.create_migrated_database("export")
            store = workdir / "store" if args.case == "store" else None
            batch = build_batch(server, name, workdir, args.megabytes, store)
            batch["kept_in"] = f"folder store {store}" if store else "database"
            print(f"  load average: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
            rounds = [
                measure_round(server, name, batch, workdir, index, store)
                for index in range(args.repeat)
            ]
            print("Peak memory: `batchdesk export` in a process of its own ...", flush=True)
            cli = measure_memory(server, name, batch, workdir)
            ok = summarise(server, rounds, batch, cli)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--megabytes",
        type=int,
        default=1000,
        help="size of the batch's outputs in MB (default 1000, files of ~10 MB)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="rounds; medians are reported")
    parser.add_argument(
        "--case",
        choices=("database", "store"),
        default="database",
        help="where the batch's files are kept: the database (against streaming them out) or "
        "a folder store on the local disk (against a plain file copy)",
    )
    parser.add_argument(
        "--database-url",
        help="server to use (databases are created and dropped on it); default: a temporary "
        "embedded server",
    )
    args = parser.parse_args()
    if args.megabytes < 1 or args.repeat < 1:
        parser.error("--megabytes and --repeat must be at least 1")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
