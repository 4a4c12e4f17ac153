"""Benchmark: time from SIGKILL of a worker mid-job to its job running on another worker.

Target (job-engine issue): under 45 s with the default settings (liveness timeout 30 s,
heartbeat every 5 s).

Each round starts from a freshly migrated database with one batch of one small PNG whose
pipeline's first step is an external tool that sleeps for ten minutes (like the integration
tests' slow pipeline), so the job is still running whenever it is killed:

1. A real `batchdesk worker --threads 1` process starts (its own BATCHDESK_HOME and TMPDIR in
   the benchmark's temporary folder, the database given by BATCHDESK_DATABASE_URL) and claims
   the job; the script waits until the job is processing under that worker and the tool runs.
2. A second worker, a `Runner` in this process with the default RunnerConfig (`--liveness-
   timeout` aside), starts. Its reaper runs at once and then every other heartbeat, every 10 s;
   the kill comes 0.5 s plus a fraction of those 10 s later, spread evenly over the rounds so
   that they sample the reaper's whole cycle. (The second worker itself starts a varying
   fraction of a heartbeat after the first claimed the job, so the age of the first worker's
   last heartbeat at the kill varies too.)
3. SIGKILL to the first worker. The script polls the jobs and workers tables every 0.1 s and
   reports the time until the dead worker's row was removed (reaped) and until the job was
   processing again under the second worker.

Afterwards the second worker is stopped (the job goes back to the queue) and the dead worker's
external tool, which a SIGKILL leaves running on its own, is killed by its process id.

    .venv/bin/python bench/bench_recovery.py [--repeat 3] [--liveness-timeout 30]
        [--database-url URL]
"""

import argparse
import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg
from PIL import Image

from batchdesk.jobs.runner import Runner, RunnerConfig
from batchdesk.storage.database import Database
from benchsupport import BenchServer, below, bench_server, install_pipelines, median, submit_paths

TARGET_SECONDS = 45.0
HEARTBEAT = RunnerConfig().heartbeat_interval
REAP_EVERY = 2 * HEARTBEAT  # the runner reaps on every other heartbeat
POLL = 0.1
GOLDEN = 0.618034
TOOL_SECONDS = 600
SLOW_COPY = "\n".join(
    [
        "import shutil, sys, time",
        "time.sleep(float(sys.argv[3]))",
        "shutil.copy(sys.argv[1], sys.argv[2])",
    ]
)
SLOW_PIPELINE = {
    "name": "bench-slow",
    "description": "an external tool that sleeps, then copies (benchmark)",
    "version": 1,
    "steps": [
        {
            "op": "external",
            "args": [sys.executable, "-c", SLOW_COPY, "{input}", "{output}", str(TOOL_SECONDS)],
            "timeout": 3600,
        },
        {"op": "output", "format": "png"},
    ],
}


def wait_for(condition: Any, what: str, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"gave up waiting for {what} after {timeout:.0f} s")
        time.sleep(POLL)


def children_of(pid: int) -> list[int]:
    """Process ids whose parent is `pid` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def cmdline(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def kill_tool(pid: int, marker: str) -> bool:
    """Kill a dead worker's leftover tool (its own process group) if it still runs; True if so."""
    if marker not in cmdline(pid):  # gone, or the id now belongs to someone else
        return False
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    return True


def worker_environment(home: Path, tmp: Path, conninfo: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("PG") and key not in {"BATCHDESK_DATABASE_URL", "BATCHDESK_HOME"}
    }
    return env | {
        "BATCHDESK_HOME": str(home),
        "BATCHDESK_DATABASE_URL": conninfo,
        "TMPDIR": str(tmp),
    }


def measure_round(
    server: BenchServer, folder: Path, args: argparse.Namespace, index: int
) -> dict[str, Any]:
    name = server.create_migrated_database("recovery")
    conninfo = server.conninfo(name)
    round_dir = Path(tempfile.mkdtemp(prefix=f"round{index + 1}-", dir=folder))
    home, tmp = round_dir / "home", round_dir / "tmp"
    home.mkdir()
    tmp.mkdir()
    database = server.open(name)
    doomed: subprocess.Popen[bytes] | None = None
    rescuer: Runner | None = None
    rescuer_db: Database | None = None
    tools: list[int] = []
    try:
        install_pipelines(database, [SLOW_PIPELINE])
        png = round_dir / "BENCH_RECOVERY_render_0000.png"
        Image.new("RGB", (64, 64), (200, 30, 30)).save(png)
        batch = submit_paths(database, [png], str(SLOW_PIPELINE["name"]))
        with psycopg.connect(conninfo) as conn:
            row = conn.execute("SELECT id FROM jobs WHERE batch_id = %s", (batch.id,)).fetchone()
        assert row is not None
        job_id = row[0]

        argv = [sys.executable, "-m", "batchdesk", "worker", "--threads", "1"]
        argv += ["--liveness-timeout", str(args.liveness_timeout)]
        with (round_dir / "worker.log").open("wb") as log:
            doomed = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=worker_environment(home, tmp, conninfo),
                cwd=round_dir,
            )
        pid = doomed.pid

        def doomed_holds_job() -> str | None:
            if doomed is not None and doomed.poll() is not None:
                log_text = (round_dir / "worker.log").read_text(errors="replace")
                raise RuntimeError(f"the worker exited ({doomed.returncode}): {log_text}")
            with psycopg.connect(conninfo) as conn:
                found = conn.execute(
                    "SELECT j.worker FROM jobs j JOIN workers w ON w.id = j.worker "
                    "WHERE j.id = %s AND j.status = 'processing' AND w.pid = %s",
                    (job_id, pid),
                ).fetchone()
            return None if found is None else str(found[0])

        doomed_id = wait_for(doomed_holds_job, "the worker process to claim the job", 60)
        tools = wait_for(lambda: children_of(pid), "the worker to start the slow tool", 30)
        marker = str(tmp)

        # Shift the first worker's heartbeat phase too, by a different stride than the kill's.
        time.sleep(HEARTBEAT * ((index + 1) * GOLDEN % 1))
        rescuer_db = server.open(name)
        config = RunnerConfig(liveness_timeout=args.liveness_timeout, work_dir=tmp)
        rescuer = Runner(rescuer_db, config, worker_name="bench-rescuer")
        rescuer.start()
        delay = 0.5 + REAP_EVERY * (index + 0.5) / args.repeat
        time.sleep(delay)

        with psycopg.connect(conninfo) as conn:
            age_row = conn.execute(
                "SELECT extract(epoch FROM now() - heartbeat_at) FROM workers WHERE id = %s",
                (doomed_id,),
            ).fetchone()
        beat_age = float(age_row[0]) if age_row else float("nan")
        cpu_start = time.process_time()
        killed = time.perf_counter()
        doomed.send_signal(signal.SIGKILL)
        doomed.wait()
        tools_alive = [t for t in tools if marker in cmdline(t)]

        reaped: float | None = None
        running: float | None = None
        deadline = killed + args.liveness_timeout + 4 * REAP_EVERY + 30
        with psycopg.connect(conninfo, autocommit=True) as conn:
            while running is None and time.perf_counter() < deadline:
                state = conn.execute(
                    "SELECT j.status, j.worker, "
                    "EXISTS (SELECT 1 FROM workers WHERE id = %s) FROM jobs j WHERE j.id = %s",
                    (doomed_id, job_id),
                ).fetchone()
                now = time.perf_counter() - killed
                assert state is not None
                if reaped is None and not state[2]:
                    reaped = now
                if state[0] == "processing" and state[1] == rescuer.worker_id:
                    running = now
                    break
                time.sleep(POLL)
        waiting_cpu = time.process_time() - cpu_start
        # The dead worker's temporary folder (its job's input, partial outputs) stays behind.
        left_folders = [
            p for p in tmp.glob("batchdesk-worker-*") if p.name not in str(rescuer._work_dir)
        ]
        stop_began = time.perf_counter()
        rescuer.stop()
        stopped = time.perf_counter() - stop_began
        rescuer = None
    finally:
        if rescuer is not None:
            rescuer.stop()
        if rescuer_db is not None:
            rescuer_db.close()
        if doomed is not None and doomed.poll() is None:
            tools = tools or children_of(doomed.pid)  # interrupted before they were noted
            doomed.kill()
            doomed.wait()
        leftovers = [t for t in tools if kill_tool(t, str(tmp))]
        database.close()
        server.drop_database(name)
        shutil.rmtree(round_dir, ignore_errors=True)
    result = {
        "delay": delay,
        "beat_age": beat_age,
        "reaped": reaped,
        "running": running,
        "cpu": waiting_cpu,
        "stop": stopped,
        "tools_alive": len(tools_alive),
        "leftovers": len(leftovers),
        "left_folders": len(left_folders),
    }
    print(
        f"round {index + 1}: kill {delay:.1f} s after the second worker started, the dead "
        f"worker's last heartbeat {beat_age:.1f} s old; reaped after {_s(reaped)}, running "
        f"elsewhere after {_s(running)}; "
        f"the second worker's process used {waiting_cpu:.2f} s CPU meanwhile; "
        f"the dead worker's tool outlived it: {'yes' if tools_alive else 'no'}, its "
        f"temporary folder was left behind: {'yes' if left_folders else 'no'}",
        flush=True,
    )
    return result


def _s(value: float | None) -> str:
    return "NEVER" if value is None else f"{value:.1f} s"


def summarise(server: BenchServer, rounds: list[dict[str, Any]], args: argparse.Namespace) -> int:
    times = [r["running"] for r in rounds]
    recovered = [t for t in times if t is not None]
    worst = max(recovered) if len(recovered) == len(times) else float("inf")
    timeout = args.liveness_timeout
    print()
    print(
        f"Recovery benchmark: SIGKILL of a `batchdesk worker` mid-job, {len(rounds)} round(s), "
        f"liveness timeout {timeout:g} s, heartbeat {HEARTBEAT:g} s (reaper every "
        f"{REAP_EVERY:g} s)"
    )
    print(f"  server                      {server.description}")
    if recovered:
        print(
            f"  kill -> running elsewhere   median {median(recovered):.1f} s, min "
            f"{min(recovered):.1f} s, max {max(recovered):.1f} s"
        )
        reaped = [r["reaped"] for r in rounds if r["reaped"] is not None]
        if reaped:
            print(
                f"  kill -> dead worker reaped  median {median(reaped):.1f} s (then the second "
                "worker claims it at once)"
            )
    print(
        f"  expected range              {timeout - HEARTBEAT:g} to {timeout + REAP_EVERY:g} s: "
        "the last heartbeat is 0-5 s old at the kill, the worker counts as dead "
        f"{timeout:g} s after it, and the reaper looks every {REAP_EVERY:g} s"
    )
    print(
        f"  second worker's stop        median {median([r['stop'] for r in rounds]):.1f} s "
        "(its running job given back, its tool killed)"
    )
    outlived = sum(1 for r in rounds if r["tools_alive"])
    print(
        f"  dead worker's tool          outlived the SIGKILL in {outlived} of {len(rounds)} "
        "round(s) (killed by the benchmark afterwards)"
    )
    left = sum(1 for r in rounds if r["left_folders"])
    print(
        f"  dead worker's temp folder   left behind in {left} of {len(rounds)} round(s) (removed "
        "by the benchmark afterwards)"
    )
    print(
        f"  worst kill -> running       {_s(worst if worst != float('inf') else None)}   "
        f"target < {TARGET_SECONDS:g} s   {below(worst, TARGET_SECONDS)}"
    )
    return 0 if worst < TARGET_SECONDS else 1


def run(args: argparse.Namespace) -> int:
    # The second worker's own warnings (the reaper giving the job back), indented like ours.
    logging.basicConfig(format="  second worker's log: %(message)s", level=logging.WARNING)
    folder = Path(tempfile.mkdtemp(prefix="batchdesk-bench-recovery-", dir="/tmp"))
    try:
        with bench_server(args.database_url) as server:
            print(f"Server: {server.description}")
            rounds = [measure_round(server, folder, args, index) for index in range(args.repeat)]
            return summarise(server, rounds, args)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="rounds (default 3)")
    parser.add_argument(
        "--liveness-timeout",
        type=float,
        default=RunnerConfig().liveness_timeout,
        help="seconds of silence after which the second worker counts the first as dead "
        "(default 30, as batchdesk runs)",
    )
    parser.add_argument(
        "--database-url",
        help="server to use (a database is created and dropped on it); default: a temporary "
        "embedded server",
    )
    args = parser.parse_args()
    if args.repeat < 1 or args.liveness_timeout <= 0:
        parser.error("--repeat must be at least 1 and --liveness-timeout positive")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
