"""Benchmark: runner throughput against a plain thread pool doing the same Pillow calls.

Targets: `--case web-delivery` (the job-engine issue: 40 12-megapixel PNGs) at least 0.85x the
thread pool's throughput; `--case thumbnails` (the throughput issue: 200 4K PNGs, short jobs) at
least 0.9x; both with 2 threads, measured in the same run.

The script generates distinct RGB PNGs once, outside the timed parts: smooth gradients and soft
shapes (a studio render's backdrop and objects) with Gaussian noise on top, so they compress
like renders do, not like pure noise; saved with compress_level=1 to keep generation fast.
Then each round:

- baseline: `run_pipeline(spec, path, work_dir, file_name=...)` for every file on a
  `concurrent.futures.ThreadPoolExecutor(2)`, each in a temporary folder removed afterwards (as
  the runner does), files read from disk (the page cache);
- batchdesk: the files are submitted as one batch with the case's pipeline into a freshly
  migrated database (not timed), then a `Runner(database, RunnerConfig(threads=2))` is timed
  from `start()` until `drained` is set: it claims each job, downloads its input from the
  database, runs the same pipeline and stores the outputs with the job's completion.

A CHECKPOINT runs before each timed part and the order alternates between rounds. The script
checks that both parts produced the same outputs (names, pixel sizes and byte sizes). The
verdict is the median over rounds of the CPU ratio, pool over runner, each this process's CPU
plus the server's (the machine is shared: other processes move wall times, not CPU-seconds);
the wall-time ratio is reported beside it, and is the verdict when the server runs elsewhere.

With `--store` (issue 17: worker throughput with a folder file store unchanged against raw
Pillow, >= 0.9x), the batch's database keeps file bytes in a fresh folder store on the local
disk: the runner reads each input from the store and writes its outputs there (flushed before
the completion commits); the baseline is the same thread pool.

    .venv/bin/python bench/bench_runner.py [--case thumbnails] [--store] [--files N]
        [--repeat 1] [--database-url URL]
"""

import argparse
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageOps

from batchdesk.jobs import job_execution as execution_module
from batchdesk.jobs.default_pipelines import default_pipelines
from batchdesk.jobs.image_pipeline import run_pipeline
from batchdesk.jobs.job_execution import JobEvent
from batchdesk.jobs.pipeline_spec import PipelineSpec, parse_pipeline
from batchdesk.jobs.runner import Runner, RunnerConfig
from batchdesk.storage import file_bytes
from batchdesk.storage.file_bytes import FileStoreSetting
from benchsupport import (
    BenchServer,
    MachineCpu,
    at_least,
    backend_cpu,
    bench_server,
    install_pipelines,
    median,
    seconds,
    submit_paths,
)

THREADS = 2
NOISE_SIGMA = 3.0  # grey levels: a path-traced render's grain
MB = 1_000_000
DRAIN_TIMEOUT = 3600.0

Outputs = dict[str, tuple[int, int, int]]  # name -> (width, height, bytes)


@dataclass(frozen=True)
class Case:
    """What a run measures: which pipeline over which files, and the ratio it must reach."""

    pipeline: str
    width: int
    height: int
    files: int  # the default number of files
    outputs_per_file: int
    target: float


CASES = {
    # The job-engine issue's case: long jobs, where the runner's own costs hardly show.
    "web-delivery": Case("web-delivery", 4000, 3000, 40, 3, 0.85),
    # The throughput issue's case: short jobs (two JPEG thumbnails of a 4K frame), where the
    # input's download and the completion are a large part of each job.
    "thumbnails": Case("thumbnails", 3840, 2160, 200, 2, 0.9),
}


def pipeline_spec(case: Case) -> PipelineSpec:
    raw = next(p for p in default_pipelines() if p["name"] == case.pipeline)
    return parse_pipeline(raw["name"], raw["description"], raw["version"], raw["steps"])


# -- the files -------------------------------------------------------------------------------


def _colour(rnd: random.Random) -> tuple[int, int, int]:
    return (rnd.randrange(256), rnd.randrange(256), rnd.randrange(256))


def render_like(index: int, noise: Image.Image) -> Image.Image:
    """A smooth backdrop with soft shaded shapes, drawn small and scaled up, plus grain."""
    rnd = random.Random(index)
    width, height = noise.size
    small = (width // 4, height // 4)
    ramp = Image.linear_gradient("L").rotate(rnd.uniform(-30, 30), Image.Resampling.BICUBIC)
    ramp = ImageOps.autocontrast(ramp.crop((40, 40, 216, 216))).resize(small)
    picture = ImageOps.colorize(ramp, _colour(rnd), _colour(rnd))
    shade = Image.radial_gradient("L")
    for _ in range(rnd.randrange(4, 9)):
        w, h = rnd.randrange(80, 500), rnd.randrange(80, 500)
        x, y = rnd.randrange(-w // 2, small[0]), rnd.randrange(-h // 2, small[1])
        fill = ImageOps.colorize(shade.resize((w, h)), _colour(rnd), _colour(rnd))
        mask = Image.new("L", (w, h))
        draw = ImageDraw.Draw(mask)
        if rnd.random() < 0.5:
            draw.ellipse((0, 0, w - 1, h - 1), fill=255)
        else:
            draw.rounded_rectangle((0, 0, w - 1, h - 1), radius=min(w, h) // 6, fill=255)
        picture.paste(fill, (x, y), mask.filter(ImageFilter.GaussianBlur(2)))
    picture = picture.resize((width, height), Image.Resampling.BICUBIC)
    grain = ImageChops.offset(noise, rnd.randrange(width), rnd.randrange(height))
    return ImageChops.add(picture, grain, 1.0, -128)


def generate_pngs(folder: Path, count: int, size: tuple[int, int]) -> list[Path]:
    """Write `count` distinct render-like PNGs of `size` into `folder`, two at a time."""
    noise = Image.merge("RGB", [Image.effect_noise(size, NOISE_SIGMA) for _ in range(3)])
    paths = [folder / f"BENCH_RUNNER_render_{index:04d}.png" for index in range(count)]

    def make(index: int) -> None:
        render_like(index, noise).save(paths[index], compress_level=1)

    pool = ThreadPoolExecutor(THREADS)
    try:
        list(pool.map(make, range(count)))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # Ctrl+C: do not make the rest
    with Image.open(paths[0]) as image:
        image.load()
        if image.size != size or image.mode != "RGB":
            raise RuntimeError(f"a generated PNG decodes as {image.mode} {image.size}")
    return paths


# -- the two timed parts ---------------------------------------------------------------------


def baseline(spec: PipelineSpec, paths: list[Path], scratch: Path, conninfo: str) -> dict[str, Any]:
    """The same pipeline calls on a plain thread pool, each in a folder removed afterwards.

    `conninfo` only serves to read the (idle) server's CPU use, for comparison.
    """
    outputs: Outputs = {}
    phases = Phases()
    timed_pipeline = phases.wrap("pipeline", run_pipeline)

    def one(path: Path) -> None:
        work_dir = Path(tempfile.mkdtemp(prefix="job-", dir=scratch))
        try:
            for out in timed_pipeline(spec, path, work_dir, file_name=path.name):
                outputs[out.name] = (out.width, out.height, out.size)
        finally:
            shutil.rmtree(work_dir, ignore_errors=True)

    server_cpu_start = backend_cpu(conninfo, background=True)
    machine = MachineCpu()
    cpu_start = time.process_time()
    start = time.perf_counter()
    pool = ThreadPoolExecutor(THREADS)
    try:
        list(pool.map(one, paths))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # Ctrl+C: do not run the rest
    elapsed = time.perf_counter() - start
    return {
        "seconds": elapsed,
        "cpu": time.process_time() - cpu_start,
        "server_cpu": _difference(server_cpu_start, backend_cpu(conninfo, background=True)),
        "machine_cpu": machine.busy_seconds(),
        "busy_cores": machine.busy_cores(),
        "outputs": outputs,
        "phases": phases,
    }


class Phases:
    """Wall and thread-CPU time of wrapped calls, by phase, from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.times: dict[str, list[tuple[float, float]]] = {}

    def wrap(self, phase: str, call: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            wall, cpu = time.perf_counter(), time.thread_time()
            try:
                return call(*args, **kwargs)
            finally:
                measured = (time.perf_counter() - wall, time.thread_time() - cpu)
                with self._lock:
                    self.times.setdefault(phase, []).append(measured)

        return timed

    def total(self, phase: str, index: int) -> float:
        """Summed wall (index 0) or CPU (index 1) seconds of a phase."""
        return sum(t[index] for t in self.times.get(phase, []))


def _difference(start: float | None, end: float | None) -> float | None:
    return None if start is None or end is None else end - start


def with_runner(server: BenchServer, name: str, scratch: Path) -> dict[str, Any]:
    """Time a 2-thread Runner from start() until the queue is drained."""
    database = server.open(name)
    conninfo = server.conninfo(name)
    events: list[JobEvent] = []
    lock = threading.Lock()

    def on_event(event: JobEvent) -> None:
        with lock:
            events.append(event)

    try:
        runner = Runner(
            database,
            RunnerConfig(threads=THREADS, work_dir=scratch),
            on_event=on_event,
            worker_name="bench",
        )
        with database.connect() as connection:  # a pooled connection before the clock starts
            connection.execute("SELECT 1")
        # Where a job's time goes: wrap the whole job, the input's download, the pipeline and
        # the completion (which stores the outputs). What is left is hashing the outputs and
        # tidying up. The runner looks these up when it calls them, so the wrappers are used.
        # (Running one job is job_execution's since the runner was split.)
        phases = Phases()
        execution = runner._execution
        runner._run = phases.wrap("job", runner._run)  # type: ignore[method-assign]
        execution._fetch = phases.wrap("fetch", execution._fetch)  # type: ignore[method-assign]
        execution_module.run_pipeline = phases.wrap("pipeline", run_pipeline)
        execution._complete = phases.wrap("complete", execution._complete)
        server_cpu_start = backend_cpu(conninfo, background=True)
        machine = MachineCpu()
        cpu_start = time.process_time()
        start = time.perf_counter()
        runner.start()
        try:
            drained = runner.drained.wait(DRAIN_TIMEOUT)
            elapsed = time.perf_counter() - start
            cpu = time.process_time() - cpu_start
            busy = machine.busy_cores()
            machine_cpu = machine.busy_seconds()
            server_cpu_end = backend_cpu(conninfo, background=True)
        finally:
            runner.stop()
            execution_module.run_pipeline = run_pipeline
        if not drained:
            raise RuntimeError(f"the runner did not drain the queue within {DRAIN_TIMEOUT:.0f} s")
        with psycopg.connect(conninfo) as conn:
            statuses = dict(conn.execute("SELECT status, count(*) FROM jobs GROUP BY status"))
            rows = conn.execute("SELECT name, width, height, size FROM job_outputs").fetchall()
    finally:
        database.close()
    return {
        "seconds": elapsed,
        "cpu": cpu,
        "server_cpu": _difference(server_cpu_start, server_cpu_end),
        "machine_cpu": machine_cpu,
        "busy_cores": busy,
        "statuses": statuses,
        "outputs": {row[0]: (row[1], row[2], row[3]) for row in rows},
        "job_seconds": [e.seconds for e in events if e.kind == "completed"],
        "phases": phases,
        "other_events": [
            f"{e.kind} {e.file_name}: {e.message}"
            for e in events
            if e.kind
            not in (
                "started",
                "completed",
            )
        ],
    }


def measure_round(
    server: BenchServer,
    case: Case,
    spec: PipelineSpec,
    paths: list[Path],
    folder: Path,
    index: int,
    store: bool,
) -> dict[str, Any]:
    name = server.create_migrated_database("runner")
    scratch = Path(tempfile.mkdtemp(prefix="work-", dir=folder))
    store_folder = Path(tempfile.mkdtemp(prefix="store-", dir=folder))
    try:
        database = server.open(name)
        try:
            install_pipelines(database)
            if store:
                with database.begin() as connection:
                    setting = FileStoreSetting(file_bytes.STORE, str(store_folder))
                    file_bytes.write_setting(connection, setting)
            submitted = time.perf_counter()
            submit_paths(database, paths, case.pipeline)
            submitted = time.perf_counter() - submitted
        finally:
            database.close()
        parts: dict[str, dict[str, Any]] = {}
        order = ("baseline", "runner") if index % 2 == 0 else ("runner", "baseline")
        load: dict[str, float] = {}
        for part in order:
            server.checkpoint()
            load[part] = os.getloadavg()[0]
            if part == "baseline":
                parts[part] = baseline(spec, paths, scratch, server.conninfo(name))
            else:
                parts[part] = with_runner(server, name, scratch)
    finally:
        server.drop_database(name)
        shutil.rmtree(scratch, ignore_errors=True)
        shutil.rmtree(store_folder, ignore_errors=True)
    base, run = parts["baseline"], parts["runner"]
    ratio = base["seconds"] / run["seconds"]
    cpu_ratio = _cpu_ratio(base, run)
    adjusted = _ours(base) / _ours(run) if _ours(base) and _ours(run) else None
    expected = case.outputs_per_file * len(paths)
    same = base["outputs"] == run["outputs"] and len(base["outputs"]) == expected
    completed = run["statuses"] == {"completed": len(paths)}
    print(
        f"round {index + 1} ({order[0]} first): thread pool {seconds(base['seconds'])}, "
        f"runner {seconds(run['seconds'])}, throughput ratio {ratio:.3f}; "
        f"submission (not timed) {seconds(submitted)}; load average before each part: "
        f"pool {load['baseline']:.2f}, runner {load['runner']:.2f}"
        + ("" if same else "  [OUTPUTS DIFFER]")
        + ("" if completed else f"  [JOBS NOT ALL COMPLETED: {run['statuses']}]"),
        flush=True,
    )
    print(f"  CPU seconds: thread pool {_cpu(base)}; runner {_cpu(run)}", flush=True)
    if cpu_ratio is not None:
        print(f"  CPU ratio (client + server, pool / runner): {cpu_ratio:.3f}", flush=True)
    if adjusted is not None:
        print(
            f"  ratio adjusted for other processes' CPU use: {adjusted:.3f} (each time scaled "
            "by the share of the machine's busy CPU that was the benchmark's and its server's)"
        )
    print(f"  {_breakdown(base['phases'], run['phases'])}", flush=True)
    for line in run["other_events"]:
        print(f"  runner event: {line}")
    return {
        "baseline": base,
        "runner": run,
        "ratio": ratio,
        "cpu_ratio": cpu_ratio,
        "adjusted": adjusted,
        "ok": same and completed,
        "submit": submitted,
    }


def run(args: argparse.Namespace) -> int:
    case = CASES[args.case]
    width, height = case.width, case.height
    files = args.files or case.files
    folder = Path(tempfile.mkdtemp(prefix="batchdesk-bench-runner-", dir="/tmp"))
    try:
        print(
            f"Generating {files} render-like {width} x {height} PNGs in {folder} ...",
            flush=True,
        )
        started = time.perf_counter()
        paths = generate_pngs(folder, files, (width, height))
        total = sum(p.stat().st_size for p in paths)
        print(
            f"  {len(paths)} files, {total / MB:,.0f} MB ({total / len(paths) / MB:.1f} MB each, "
            f"{total / len(paths) / (width * height * 3):.0%} of the raw pixels), in "
            f"{time.perf_counter() - started:.1f} s (not timed)",
            flush=True,
        )
        spec = pipeline_spec(case)
        with bench_server(args.database_url) as server:
            print(f"Server: {server.description}")
            if not server.can_checkpoint:
                print("  (no CHECKPOINT privilege: timed parts may pay for earlier writes)")
            if args.store:
                print(f"  files kept in a folder store under {folder} (local disk)")
            rounds = [
                measure_round(server, case, spec, paths, folder, index, args.store)
                for index in range(args.repeat)
            ]
            return summarise(server, case, rounds, len(paths), total)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _cpu_ratio(base: dict[str, Any], run: dict[str, Any]) -> float | None:
    """The pool's CPU-seconds over the runner's, each this process plus the server's.

    Other engineers' processes do not count in it, so rounds agree where wall times do not;
    the server's background processes run in both parts and count in both. None when the
    server's CPU cannot be read (not on this machine).
    """
    if base["server_cpu"] is None or run["server_cpu"] is None:
        return None
    return float((base["cpu"] + base["server_cpu"]) / (run["cpu"] + run["server_cpu"]))


def _ours(part: dict[str, Any]) -> float | None:
    """The part's time scaled by the share of the busy CPU that was ours (client + server)."""
    if part["server_cpu"] is None or not part["machine_cpu"]:
        return None
    share = min(1.0, (part["cpu"] + part["server_cpu"]) / part["machine_cpu"])
    return float(part["seconds"] * share)


def _pipeline_share(phases: Phases) -> float:
    job = phases.total("job", 0)
    return phases.total("pipeline", 0) / job if job else 0.0


def _breakdown(pool: Phases, runner: Phases) -> str:
    """Summed seconds of each phase in the runner's job threads, wall / thread CPU."""
    job = (runner.total("job", 0), runner.total("job", 1))
    named = {k: (runner.total(k, 0), runner.total(k, 1)) for k in ("fetch", "pipeline", "complete")}
    rest = tuple(job[i] - sum(v[i] for v in named.values()) for i in (0, 1))
    parts = [f"{k} {w:.1f}/{c:.1f}" for k, (w, c) in {**named, "hashing and rest": rest}.items()]
    return (
        f"job threads, wall/CPU s summed over jobs: thread pool: pipeline "
        f"{pool.total('pipeline', 0):.1f}/{pool.total('pipeline', 1):.1f}; runner: "
        + ", ".join(parts)
        + f" (whole jobs {job[0]:.1f}/{job[1]:.1f})"
    )


def _median_of(rounds: list[dict[str, Any]], part: str, key: str) -> float | None:
    values = [r[part][key] for r in rounds]
    return None if None in values else median(values)


def _cpu(part: dict[str, Any]) -> str:
    """This process, the database server (our backends and its background processes), and
    every process on the machine (the rest is the kernel and other users)."""
    return (
        f"client {part['cpu']:.1f}, server {_optional(part['server_cpu'], '.1f')}, "
        f"machine {_optional(part['machine_cpu'], '.1f')}"
    )


def _optional(value: float | None, fmt: str) -> str:
    return "n/a" if value is None else format(value, fmt)


def summarise(
    server: BenchServer, case: Case, rounds: list[dict[str, Any]], count: int, total: int
) -> int:
    base_s = median([r["baseline"]["seconds"] for r in rounds])
    run_s = median([r["runner"]["seconds"] for r in rounds])
    ratio = median([r["ratio"] for r in rounds])
    job_seconds = [s for r in rounds for s in r["runner"]["job_seconds"]]
    print()
    print(
        f"Runner benchmark: {count} PNGs of {case.width} x {case.height} ({total / MB:,.0f} MB), "
        f"pipeline {case.pipeline}, {THREADS} threads, {len(rounds)} round(s)"
    )
    print(f"  server                      {server.description}")
    print(f"  thread pool (median)        {seconds(base_s)}  ({count / base_s * 60:.1f} files/min)")
    print(
        f"  runner (median)             {seconds(run_s)}  ({count / run_s * 60:.1f} files/min; "
        f"a job took {seconds(median(job_seconds))} median, claim to completion)"
    )
    cpu = {
        part: {key: _median_of(rounds, part, key) for key in ("cpu", "server_cpu", "machine_cpu")}
        for part in ("baseline", "runner")
    }
    print(
        f"  CPU seconds (medians)       thread pool: {_cpu(cpu['baseline'])}; runner: "
        f"{_cpu(cpu['runner'])} (server = our backends + its background processes)"
    )
    print(
        f"  machine busy (medians)      thread pool "
        f"{_optional(_median_of(rounds, 'baseline', 'busy_cores'), '.2f')} cores, runner "
        f"{_optional(_median_of(rounds, 'runner', 'busy_cores'), '.2f')} cores "
        f"(of {MachineCpu().cores})"
    )
    per_round = ", ".join(f"{r['ratio']:.3f}" for r in rounds)
    cpu_ratios = [r["cpu_ratio"] for r in rounds]
    # The verdict: the CPU ratio where the server's CPU can be read (other processes on a
    # shared machine move wall times by up to 1.8x between rounds, not CPU-seconds), else wall.
    by_cpu = None not in cpu_ratios
    verdict = median(cpu_ratios) if by_cpu else ratio
    print(
        f"  throughput runner / pool    {ratio:.3f}x wall (median of per-round ratios pool time / "
        f"runner time: {per_round})"
        + ("" if by_cpu else f"   target >= {case.target}x   {at_least(ratio, case.target)}")
    )
    if by_cpu:
        print(
            f"  CPU ratio (the verdict)     {verdict:.3f}x (median; per round "
            f"{', '.join(f'{c:.3f}' for c in cpu_ratios)}; pool client + server CPU-seconds / "
            f"runner client + server CPU-seconds)   target >= {case.target}x   "
            f"{at_least(verdict, case.target)}"
        )
    shares = [_pipeline_share(r["runner"]["phases"]) for r in rounds]
    print(
        f"  pipeline share of job time  {median(shares):.3f} (median; per round "
        f"{', '.join(f'{x:.3f}' for x in shares)}; of the runner's job threads' wall time, the "
        "part in run_pipeline: the ratio to expect when the Pillow work runs equally fast "
        "in both parts)"
    )
    adjusted = [r["adjusted"] for r in rounds if r["adjusted"] is not None]
    if len(adjusted) == len(rounds):
        print(
            f"  adjusted for other load     {median(adjusted):.3f}x (median; per round "
            f"{', '.join(f'{a:.3f}' for a in adjusted)}; an estimate of the ratio on a machine "
            "of our own, not the verdict)"
        )
    ok = all(r["ok"] for r in rounds)
    if not ok:
        print("  ERROR: the runner's outputs or job statuses did not match the thread pool's")
    return 0 if ok and verdict >= case.target else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--case",
        choices=sorted(CASES),
        default="web-delivery",
        help="web-delivery over 12-megapixel PNGs (default), or thumbnails over 4K PNGs",
    )
    parser.add_argument(
        "--files", type=int, help="how many PNGs (default 40 for web-delivery, 200 for thumbnails)"
    )
    parser.add_argument("--repeat", type=int, default=1, help="rounds (default 1: it is slow)")
    parser.add_argument(
        "--store",
        action="store_true",
        help="keep the batch's file bytes in a folder store on the local disk, not the database",
    )
    parser.add_argument(
        "--database-url",
        help="server to use (a database is created and dropped on it); default: a temporary "
        "embedded server",
    )
    args = parser.parse_args()
    if (args.files is not None and args.files < 1) or args.repeat < 1:
        parser.error("--files and --repeat must be at least 1")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
